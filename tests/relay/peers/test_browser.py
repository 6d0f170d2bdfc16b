"""Chromium at the station: a wall of cameras held by two village nodes, and the
alarm card of a village's alarm playing and exporting its clip."""

from __future__ import annotations

import asyncio
import functools
import hashlib
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from relay.web.recordings import RECORDINGS
from tests.conftest import ADMIN, ARTIFACTS, PASSWORD
from tests.natsserver import NatsServer
from tests.relay.peers.nodes import LI, Cascade, cascade_of, get_json, wait_states, wait_until_async
from tests.relay.record.common import closed_segments
from tests.wall_pages import DECODING_JS, VIEWPORT

# The recorded wall time the player's clock shows, once frames are decoded.
SHOWN_JS = """() => {
  const tracks = window.playback?.tracks || [];
  const shown = Number(document.getElementById('clock')?.dataset.wall || 0);
  return tracks.length && tracks[0].frames() >= 3 && shown ? shown : null;
}"""
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


async def alarm_at_the_station(net: Cascade) -> dict[str, Any]:
    """An alarm raised at dongcun on its camera gate, once the station has it."""
    async with aiohttp.ClientSession() as http:
        await wait_states(http, net.station, {"dongcun.gate": "online"}, 20)
        async with http.post(
            f"{net.nodes['dongcun'].url}/api/events",
            json={"type": "alarm", "camera": "gate"},
            headers=ADMIN,
        ) as r:
            assert r.status == 201, await r.text()
            alarm: dict[str, Any] = await r.json()
        await wait_until_async(
            functools.partial(get_json, http, f"{net.station.url}/api/events?type=alarm", LI),
            lambda found: [e["id"] for e in found] == [alarm["id"]],
            20,
        )
    return alarm


@pytest.mark.browser
async def test_the_station_alarm_card_plays_and_exports_a_village_alarm_clip(
    tmp_path: Path, browser: Any
) -> None:
    """An alarm raised at a village reaches the station over NATS; its card there
    links the clip and exports it through the village, and the file downloads."""
    with NatsServer(tmp_path / "nats") as nats:
        bus = f"bus: {{nats: {{servers: ['{nats.url}'], stream: CASCADE}}}}\n"
        storage = "storage: {segment_seconds: 5}\n"
        async for net in cascade_of(tmp_path, bus, storage + bus):
            village = net.nodes["dongcun"]
            await closed_segments(village.app[RECORDINGS], "gate", 3)  # 10 s before the alarm
            alarm = await alarm_at_the_station(net)
            page = await browser.new_page(viewport=VIEWPORT, accept_downloads=True)
            login = {"name": "li", "password": PASSWORD}
            response = await page.request.post(f"{net.station.url}/api/login", data=login)
            assert response.ok, await response.text()
            await page.goto(f"{net.station.url}/station")
            card = page.locator(f'#alarms li.alarm[data-id="{alarm["id"]}"]')
            await card.wait_for(timeout=15000)
            clip = await card.locator("a.clip").get_attribute("href")
            assert clip is not None and "camera=dongcun.gate" in clip
            await card.locator("button.export").click()
            link = card.locator("a.export-file")
            await link.wait_for(timeout=30000)
            async with page.expect_download(timeout=15000) as download_info:
                await link.click()
            download = await download_info.value
            data = await asyncio.to_thread(Path(await download.path()).read_bytes)
            async with aiohttp.ClientSession() as http:
                (export,) = await get_json(http, f"{net.station.url}/api/exports", LI)
            assert export["camera"] == "dongcun.gate" and export["state"] == "ready"
            assert hashlib.sha256(data).hexdigest() == export["sha256"]
            # The clip plays in the station's own player, through the village.
            async with page.context.expect_page(timeout=10000) as opened:
                await card.locator("a.clip").click()
            player = await opened.value
            shown = await player.wait_for_function(SHOWN_JS, timeout=20000)
            assert abs(await shown.json_value() - (alarm["time"] - 10)) < 1.5
            await player.close()
            await page.close()
