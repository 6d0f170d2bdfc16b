"""Zones and masks drawn in the browser: the API (admin only, every bad
body a 400 with its reason), kept in the database over a restart and a reload."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from relay.app import create_app, reload_config
from relay.config import Config, parse_config
from relay.web.analysis import ANALYSIS
from relay.web.keys import CONFIG, HUB
from tests.conftest import ADMIN, ARTIFACTS, NodeFactory, log_in, users_yaml
from tests.helpers import free_port

CONFIG_TEXT = (
    "node: {id: test, name: Test node}\n"
    "sites: [{id: station, name: Station}, {id: east, name: East, parent: station},"
    " {id: west, name: West, parent: station}]\n"
    + users_yaml(("eastern", "operator", "east"), ("officer", "officer", "station"))
    + "cameras:\n"
    "  - {id: gate, name: Gate, site: east, main: 'synthetic://320x180?fps=10',"
    " motion: {fps: 2, zones: [{name: road, polygon: [[0, 0], [1, 0], [1, 1]]}]}}\n"
    "  - {id: well, name: Well, site: west, main: 'synthetic://320x180?fps=10', motion: {fps: 2}}\n"
    "  - {id: plain, name: Plain, site: east, main: 'synthetic://160x96?fps=5'}\n"
)
DRAWN = {
    "zones": [{"name": "gate", "polygon": [[0.1, 0.4], [0.6, 0.4], [0.6, 1.0], [0.1, 1.0]]}],
    "masks": [[[0.0, 0.0], [1.0, 0.0], [1.0, 0.08], [0.0, 0.08]]],
}
SQUARE = [[0, 0], [1, 0], [1, 1], [0, 1]]
BAD_BODIES: list[tuple[Any, str]] = [
    ({"zones": [], "masks": [[[0, 0], [1, 0]]]}, "masks[0]"),  # two points
    ({"zones": [], "masks": [[[0, 0], [1.5, 0], [1, 1]]]}, "masks[0]"),  # off the picture
    ({"zones": [], "masks": [[[0, -0.1], [1, 0], [1, 1]]]}, "masks[0]"),
    ({"zones": [], "masks": [[[i / 100, 0] for i in range(65)]]}, "masks[0]"),  # too many points
    ({"zones": [], "masks": [SQUARE] * 17}, "masks"),  # too many polygons
    ({"zones": [], "masks": [[["a", 0], [1, 0], [1, 1]]]}, "masks[0]"),
    ({"zones": [], "masks": [[[0, 0, 0], [1, 0], [1, 1]]]}, "masks[0]"),
    ({"zones": [{"name": "a b", "polygon": SQUARE}], "masks": []}, "zones[0].name"),
    ({"zones": [{"name": "", "polygon": SQUARE}], "masks": []}, "zones[0].name"),
    ({"zones": [{"polygon": SQUARE}], "masks": []}, "zones[0].name"),
    ({"zones": [{"name": "a", "polygon": SQUARE}] * 2, "masks": []}, "names must differ"),
    ({"zones": [{"name": "a", "polygon": SQUARE, "colour": "red"}], "masks": []}, "unknown key"),
    ({"zones": [], "masks": [], "armed": ["00:00-24:00"]}, "armed: unknown key"),
    ({"zones": []}, "masks: required"),
    ({"zones": "all", "masks": []}, "zones"),
    ('{"zones": [], "masks": [[[NaN, 0], [1, 0], [1, 1]]]}', "masks[0]"),
    ("[1, 2]", "JSON object"),
    ("{not json", "not valid JSON"),
]


def token(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {name}-token"}


@asynccontextmanager
async def running(config: Config) -> AsyncIterator[tuple[web.Application, str]]:
    """A node on 127.0.0.1; run twice over one data_dir, a restart."""
    app = create_app(config)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    try:
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        yield app, f"http://127.0.0.1:{port}/api/cameras"
    finally:
        await runner.cleanup()


def config_in(tmp_path: Path) -> Config:
    config = parse_config(CONFIG_TEXT)
    node = config.node.model_copy(update={"data_dir": str(tmp_path / "data")})
    return config.model_copy(update={"node": node})


def analysed_motion(app: web.Application, camera: str) -> dict[str, Any]:
    [analysed] = [a for a in app[ANALYSIS].cameras if a.camera.id == camera]
    assert analysed.camera.motion is not None and analysed.detector is not None
    assert analysed.detector.config == analysed.camera.motion, "the detector uses them"
    return analysed.camera.motion.model_dump(include={"zones", "masks"}, mode="json")


async def test_admins_draw_within_their_sites_others_are_refused(tmp_path: Path) -> None:
    async with running(config_in(tmp_path)) as (app, api), aiohttp.ClientSession() as http:
        async with http.get(f"{api}/gate/motion/regions", headers=ADMIN) as answer:
            assert answer.status == 200
            assert await answer.json() == {
                "zones": [{"name": "road", "polygon": [[0, 0], [1, 0], [1, 1]]}],
                "masks": [],
                "source": "config",
            }
        for method in ("GET", "PUT", "DELETE"):
            url = f"{api}/gate/motion/regions"
            for who in ("eastern", "officer"):  # they see the camera, but only admins draw
                async with http.request(method, url, headers=token(who), json=DRAWN) as answer:
                    assert answer.status == 403, (who, method)
            async with http.request(method, url, json=DRAWN) as answer:
                assert answer.status == 401
            async with http.request(method, f"{api}/nowhere/motion/regions", headers=ADMIN) as a:
                assert a.status == 404
        async with http.put(f"{api}/plain/motion/regions", headers=ADMIN, json=DRAWN) as answer:
            assert answer.status == 409 and "motion is off" in await answer.text()
        async with http.put(f"{api}/gate/motion/regions", headers=ADMIN, json=DRAWN) as a:
            assert a.status == 200 and await a.json() == {**DRAWN, "source": "drawn"}
        gate = app[HUB].channel("gate", "main")
        assert gate is not None
        await asyncio.wait_for(gate.wait_online(), 10)
        async with http.get(f"{api}/gate/picture", headers=token("eastern")) as answer:
            assert answer.status == 200 and (await answer.read()).startswith(b"\xff\xd8")
        async with http.get(f"{api}/well/picture", headers=token("eastern")) as answer:
            assert answer.status == 404, "another village's camera does not exist for him"


async def test_every_bad_body_is_a_400_with_its_reason_and_loses_nothing(tmp_path: Path) -> None:
    url_of = "{}/gate/motion/regions"
    async with running(config_in(tmp_path)) as (_app, api), aiohttp.ClientSession() as http:
        url = url_of.format(api)
        async with http.put(url, headers=ADMIN, json=DRAWN) as answer:
            assert answer.status == 200
        for body, reason in BAD_BODIES:
            data = body if isinstance(body, str) else json.dumps(body)
            headers = {**ADMIN, "Content-Type": "application/json"}
            async with http.put(url, headers=headers, data=data) as answer:
                text = (await answer.text()).strip()
                assert answer.status == 400, (body, answer.status, text)
                assert reason in text and "\n" not in text, (body, text)
        async with http.get(url, headers=ADMIN) as answer:
            assert await answer.json() == {**DRAWN, "source": "drawn"}, "nothing was lost"


async def test_drawn_regions_survive_a_restart_and_a_reload(tmp_path: Path) -> None:
    config = config_in(tmp_path)
    async with running(config) as (app, api), aiohttp.ClientSession(headers=ADMIN) as http:
        async with http.put(f"{api}/gate/motion/regions", json=DRAWN) as answer:
            assert answer.status == 200
        assert analysed_motion(app, "gate") == DRAWN, "the analysis follows at once"
    async with running(config) as (app, api), aiohttp.ClientSession(headers=ADMIN) as http:
        assert analysed_motion(app, "gate") == DRAWN, "kept over a restart"
        # the file changes the camera's motion settings (and its zones): drawn ones win
        cameras = [
            c.model_copy(update={"motion": c.motion.model_copy(update={"cooldown": 3.0})})
            if c.id == "gate" and c.motion
            else c
            for c in config.cameras
        ]
        await reload_config(app, app[CONFIG].model_copy(update={"cameras": cameras}))
        assert analysed_motion(app, "gate") == DRAWN
        [gate] = [a for a in app[ANALYSIS].cameras if a.camera.id == "gate"]
        assert gate.camera.motion is not None and gate.camera.motion.cooldown == 3.0
        async with http.get(f"{api}/gate/motion/regions") as answer:
            assert (await answer.json())["source"] == "drawn"
        async with http.delete(f"{api}/gate/motion/regions") as answer:
            assert (await answer.json())["source"] == "config"
        assert analysed_motion(app, "gate")["zones"][0]["name"] == "road", "the file's again"


@pytest.mark.browser
async def test_an_admin_draws_a_mask_and_a_zone_with_the_mouse_and_saves(
    start_node: NodeFactory, browser: Any
) -> None:
    node = await start_node(CONFIG_TEXT)
    page = await browser.new_page()
    await log_in(page, node, "admin")
    await page.goto(f"{node.url}/cameras/gate/motion")
    await page.evaluate("window.regions.ready")
    await page.wait_for_function("document.getElementById('picture').naturalWidth > 0")
    box = await page.locator("#picture").bounding_box()

    async def click(x: float, y: float) -> None:
        await page.mouse.click(box["x"] + x * box["width"], box["y"] + y * box["height"])

    await page.check("input[value=mask]")
    for x, y in [(0.1, 0.1), (0.5, 0.1), (0.5, 0.5), (0.1, 0.1)]:  # back on the first: closed
        await click(x, y)
    await page.check("input[value=zone]")
    await page.fill("#zone-name", "door")
    for x, y in [(0.6, 0.6), (0.9, 0.6), (0.9, 0.9)]:
        await click(x, y)
    await page.click("#finish")
    assert await page.locator("#drawing polygon").count() == 3  # with the file's zone
    await page.click("#save")
    await page.wait_for_selector("#status.ok", timeout=10_000)
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "motion-regions.png"))
    saved = await page.evaluate("fetch('/api/cameras/gate/motion/regions').then((r) => r.json())")
    await page.close()
    assert saved["source"] == "drawn"
    [mask] = saved["masks"]
    road, zone = saved["zones"]
    assert (road["name"], zone["name"]) == ("road", "door")
    assert near(mask, [(0.1, 0.1), (0.5, 0.1), (0.5, 0.5)]), mask
    assert near(zone["polygon"], [(0.6, 0.6), (0.9, 0.6), (0.9, 0.9)]), zone


def near(points: list[list[float]], wanted: list[tuple[float, float]]) -> bool:
    """The same polygon, to a pixel or so of the shown picture."""
    return len(points) == len(wanted) and all(
        abs(x - wx) < 0.01 and abs(y - wy) < 0.01
        for (x, y), (wx, wy) in zip(points, wanted, strict=True)
    )
