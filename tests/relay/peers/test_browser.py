"""Chromium at the station plays a wall of cameras held by two village nodes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import ARTIFACTS, PASSWORD
from tests.relay.peers.nodes import cascade_of, wait_states
from tests.wall_pages import DECODING_JS, VIEWPORT

WALL = (
    "walls:\n  - {id: villages, site: station, layout: 2x2,"
    " cameras: [dongcun.gate, dongcun.well, xicun.gate]}\n"
)


@pytest.mark.browser
async def test_station_wall_decodes_cameras_of_both_villages(tmp_path: Path, browser: Any) -> None:
    async for net in cascade_of(tmp_path, WALL):
        async with aiohttp.ClientSession() as http:
            online = {"dongcun.gate": "online", "dongcun.well": "online", "xicun.gate": "online"}
            await wait_states(http, net.station, online, 20)
        page = await browser.new_page(viewport=VIEWPORT)
        login = {"name": "admin", "password": PASSWORD}
        response = await page.request.post(f"{net.station.url}/api/login", data=login)
        assert response.ok, await response.text()
        await page.goto(f"{net.station.url}/wall/villages")
        decoded_at = await page.evaluate(DECODING_JS, {"count": 3, "within": 15000})
        assert decoded_at is not None, "not every remote tile decoded within 15 s"
        print(f"3 remote tiles decoding {decoded_at:.0f} ms after the page load")
        names = "els => els.map(e => e.textContent)"
        labels = await page.eval_on_selector_all(".tile .name", names)
        assert labels[:3] == ["Gate dongcun", "Well dongcun", "Gate xicun"]
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "cascade-wall.png"))
        await page.goto(f"{net.station.url}/station")
        item = page.locator('li.camera[data-camera="xicun.gate"]')
        await item.wait_for(timeout=10000)
        assert await item.get_attribute("title") == "xicun", "the tree names the holding node"
        assert "online" in (await item.get_attribute("class") or "")
        await page.close()
