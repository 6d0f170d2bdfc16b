"""One village network for the operator-experience tests: a station with two
patrol teams, a village of six cameras on a 2x2 wall, a village whose camera is
down; an officer, an operator, a viewer and a patrol login."""

from __future__ import annotations

from typing import Any

import aiohttp

from relay.access.passwords import hash_token
from tests.conftest import ADMIN, PASSWORD, PASSWORD_HASH, Node, users_yaml

PATROL = "p2"


def operator_config(dwell: float = 60, extra: str = "") -> str:
    cameras = "".join(
        f"  - {{id: cam{i}, name: 东村{i}号, site: east,"
        " main: 'synthetic://160x90?fps=5&keyframe_interval=1'}\n"
        for i in range(6)
    )
    cameras += "  - {id: w0, name: 西村桥头, site: west, main: 'rtsp://127.0.0.1:9/none',"
    cameras += " connect_timeout: 1, backoff_max: 1}\n"
    patrol = (
        f"  - {{name: {PATROL}, role: patrol, sites: [station], team: team2,"
        f" password_hash: '{PASSWORD_HASH}', token_hash: '{hash_token(PATROL + '-token')}'}}\n"
    )
    return (
        "node: {id: v1, name: 城关派出所节点}\n"
        "sites:\n  - {id: station, name: 城关派出所}\n"
        "  - {id: east, name: 东村, parent: station}\n"
        "  - {id: west, name: 西村, parent: station}\n"
        "webrtc: {host_addresses: [127.0.0.1]}\n"
        f"cameras:\n{cameras}"
        "walls:\n  - {id: room, name: 东村监控室, site: east, layout: 2x2,"
        f" dwell: {dwell}, cameras: [cam0, cam1, cam2, cam3, cam4, cam5]}}\n"
        "patrol_teams:\n  - {id: team2, name: 巡逻二组, site: station}\n"
        "  - {id: team3, name: 巡逻三组, site: station}\n"
        + extra
        + users_yaml(
            ("officer", "officer", "station"),
            ("east-op", "operator", "east"),
            ("watcher", "viewer", "east"),
        )
        + patrol
    )


def headers(who: str) -> dict[str, str]:
    return ADMIN if who == "admin" else {"Authorization": f"Bearer {who}-token"}


async def post_event(node: Node, who: str, body: dict[str, Any]) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{node.url}/api/events", json=body, headers=headers(who)) as r,
    ):
        assert r.status == 201, await r.text()
        answer: dict[str, Any] = await r.json()
        return answer


async def get_json(node: Node, path: str, who: str = "admin") -> Any:
    async with (
        aiohttp.ClientSession() as http,
        http.get(node.url + path, headers=headers(who)) as r,
    ):
        assert r.status == 200, await r.text()
        return await r.json()


async def ui_login(page: Any, node: Node, name: str) -> None:
    """Through the login page, as a person does (so the landing page is the node's)."""
    await page.goto(f"{node.url}/login")
    await page.fill("input[name=name]", name)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")


async def landed(page: Any, url: Any, within_ms: float = 15000) -> None:
    """`page.wait_for_url`, through navigations a page cut short itself (a login
    page that sends the browser on, a page that sends it on again): Chromium
    reports those as ERR_ABORTED, and the page goes on to where it lands."""
    from playwright.async_api import Error

    for _ in range(5):
        try:
            await page.wait_for_url(url, timeout=within_ms)
            return
        except Error as exc:
            if "ERR_ABORTED" not in str(exc):
                raise
    await page.wait_for_url(url, timeout=within_ms)
