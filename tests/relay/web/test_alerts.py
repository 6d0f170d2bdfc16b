"""The alert bus in real Chromium: walls pop alarms and show lookouts, the station
works its alarm queue; across two nodes through a real nats-server."""

from __future__ import annotations

import asyncio
import base64
import io
from pathlib import Path
from typing import Any

import aiohttp
from PIL import Image

from relay.web.events import LINK
from tests.conftest import ADMIN, ARTIFACTS, NodeFactory, log_in, users_yaml
from tests.natsserver import NatsServer

VIEWPORT = {"width": 960, "height": 540}


def village_config(node_id: str, extra: str = "") -> str:
    cameras = "".join(
        f"  - {{id: cam{i}, name: 摄像机{i}, site: east,"
        f" main: 'synthetic://160x90?fps=5&keyframe_interval=1'}}\n"
        for i in range(6)
    )
    return (
        f"node: {{id: {node_id}, name: {node_id}}}\n"
        "sites:\n  - {id: station, name: 派出所}\n  - {id: east, name: 东村, parent: station}\n"
        "webrtc: {host_addresses: [127.0.0.1]}\n"
        f"cameras:\n{cameras}"
        "walls:\n  - {id: room, site: east, layout: 2x2, dwell: 60,"
        " cameras: [cam0, cam1, cam2, cam3, cam4, cam5]}\n"
        + extra
        + users_yaml(("officer", "officer", "station"), ("east-op", "operator", "east"))
    )


def jpeg() -> str:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 40, 40)).save(out, format="JPEG")
    return base64.b64encode(out.getvalue()).decode()


async def post_event(url: str, who: str, body: dict[str, Any]) -> dict[str, Any]:
    headers = ADMIN if who == "admin" else {"Authorization": f"Bearer {who}-token"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{url}/api/events", json=body, headers=headers) as r,
    ):
        assert r.status == 201, await r.text()
        answer: dict[str, Any] = await r.json()
        return answer


async def test_alarm_pops_on_the_wall_and_the_station_works_it(
    start_node: NodeFactory, browser: Any
) -> None:
    node = await start_node(village_config("v1"))
    wall = await browser.new_page(viewport=VIEWPORT)
    await log_in(wall, node, "east-op")
    await wall.goto(f"{node.url}/wall/room")
    await wall.evaluate("() => window.wall.ready")
    station = await browser.new_page(viewport=VIEWPORT)
    await log_in(station, node, "officer")
    await station.goto(f"{node.url}/station")
    await station.evaluate("() => window.station.alerts")
    assert await wall.evaluate("() => window.wall.page") == 0

    # cam5 is on the wall's second page: the wall turns to it and its tile pulses.
    alarm = await post_event(
        node.url, "east-op", {"type": "alarm", "camera": "cam5", "reason": "翻墙 over the wall"}
    )
    await wall.wait_for_function("() => window.wall.page === 1 && window.wall.held()", timeout=5000)
    pulsing = wall.locator(".tile.alarming")
    await pulsing.wait_for(timeout=5000)
    assert await pulsing.count() == 1
    assert "摄像机5" in await pulsing.inner_text()
    assert "over the wall" in await wall.locator("#alarm-strip").inner_text()

    item = station.locator(f'#alarms li[data-id="{alarm["id"]}"]')
    await item.wait_for(timeout=5000)
    assert "翻墙" in await item.inner_text()
    await station.locator("#alarm-view[open]").wait_for(timeout=5000)  # the pop-up view
    await station.click("#alarm-view-close")
    await item.locator("button.ack").click()
    await station.wait_for_function(
        f"() => document.querySelector('#alarms li[data-id=\"{alarm['id']}\"]')"
        "?.classList.contains('acked')",
        timeout=5000,
    )
    await item.locator("button.assign").click()  # no teams configured: the team is typed
    await station.fill("dialog[open] input[name=team]", "巡逻二组")
    await station.click("dialog[open] button.send")
    await station.wait_for_function(
        f"() => document.querySelector('#alarms li[data-id=\"{alarm['id']}\"]')"
        "?.classList.contains('assigned')",
        timeout=5000,
    )
    ARTIFACTS.mkdir(exist_ok=True)
    await station.screenshot(path=str(ARTIFACTS / "station-alarm-queue.png"))
    await item.locator("button.resolve").click()
    await station.fill("dialog[open] textarea[name=note]", "a cat")
    await station.click("dialog[open] button.send")
    await item.wait_for(state="detached", timeout=5000)
    await wall.locator(".tile.alarming").wait_for(state="detached", timeout=5000)
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{node.url}/api/events?type=assign", headers=ADMIN) as r,
    ):
        (assign,) = await r.json()
    assert (assign["by"], assign["data"]["team"]) == ("officer", "巡逻二组")


async def test_station_lookout_reaches_the_village_wall_as_a_banner(
    start_node: NodeFactory, browser: Any, tmp_path: Path
) -> None:
    with NatsServer(tmp_path / "nats") as nats:
        bus = f"bus: {{nats: {{servers: ['{nats.url}'], stream: ALERTS}}}}\n"
        village = await start_node(village_config("village", bus))
        station = await start_node(village_config("station", bus))
        for node in (village, station):
            async with asyncio.timeout(10):
                await node.app[LINK].connected.wait()
        wall = await browser.new_page(viewport=VIEWPORT)
        await log_in(wall, village, "east-op")
        await wall.goto(f"{village.url}/wall/room")
        await wall.evaluate("() => window.wall.ready")
        lookout = await post_event(
            station.url,
            "officer",
            {
                "type": "lookout",
                "text": "寻找走失老人：男，70岁，蓝色外套",
                "photo": jpeg(),
                "area": {"site": "station"},
                "expires_in": 7200,
            },
        )
        banner = wall.locator(f'#lookouts .lookout[data-id="{lookout["id"]}"]')
        await banner.wait_for(timeout=5000)
        assert "蓝色外套" in await banner.inner_text()
        photo = banner.locator("img.photo")
        await photo.wait_for()
        assert await photo.evaluate("(img) => img.complete && img.naturalWidth") == 64
        ARTIFACTS.mkdir(exist_ok=True)
        await wall.screenshot(path=str(ARTIFACTS / "wall-lookout.png"))
