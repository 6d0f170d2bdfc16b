"""After login the page goes to `?next=`, but only somewhere on this node."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web

from tests.access_nodes import config_text
from tests.conftest import PASSWORD, NodeFactory
from tests.helpers import free_port

ELSEWHERE = "127.0.0.1:{port}"
LEAVING = (  # each of these, followed as it is, takes a browser to another host
    "//{host}/x",
    "/\\{host}/x",
    "\\\\{host}/x",
    "/\t/{host}/x",
    "/\n/{host}/x",
    "/\r\n/{host}/x",
    "/\t\\{host}/x",
    "http://{host}/x",
    "HTTP:{host}/x",
    "javascript:alert(1)",
    " //{host}/x",
    "/%0a/{host}/x\r\nSet-Cookie: a=b",
    "",
)
STAYING = ("/", "/wall/ew?kiosk=1", "/view/e1#x", "/station?a=%2F%2Fx")


def next_of(page: str) -> str:
    found = re.search(r"new URL\((\"[^\"]*\"), location\.origin\)", page)
    assert found, "the login page names where it goes next"
    value: str = json.loads(found.group(1))
    return value


@pytest.mark.parametrize("value", LEAVING)
async def test_login_page_goes_nowhere_off_the_node(start_node: NodeFactory, value: str) -> None:
    node = await start_node(config_text())
    target = quote(value.format(host="evil.example:8080"), safe="")
    async with aiohttp.ClientSession(node.url) as http, http.get(f"/login?next={target}") as r:
        assert r.status == 200
        assert next_of(await r.text()) == "/"


async def test_login_page_goes_to_a_path_of_the_node(start_node: NodeFactory) -> None:
    node = await start_node(config_text())
    async with aiohttp.ClientSession(node.url) as http:
        for value in STAYING:
            async with http.get(f"/login?next={quote(value, safe='')}") as r:
                assert next_of(await r.text()) == value


@pytest.mark.browser
async def test_the_browser_stays_on_the_node_after_login(
    start_node: NodeFactory, browser: Any
) -> None:
    node = await start_node(config_text())
    visited: list[str] = []

    async def elsewhere(request: web.Request) -> web.Response:
        visited.append(request.path_qs)
        return web.Response(text="elsewhere")

    other = web.Application()
    other.router.add_get("/{tail:.*}", elsewhere)
    runner = web.AppRunner(other)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    host = ELSEWHERE.format(port=port)
    page = await browser.new_page()
    try:
        for value in ("/\t/{host}/x", "/\n/{host}/x", "/\t\\{host}/x", "/wall/ew"):
            target = value.format(host=host)
            await page.goto(f"{node.url}/login?next={quote(target, safe='')}")
            await page.fill("input[name=name]", "admin")
            await page.fill("input[name=password]", PASSWORD)
            async with page.expect_navigation(timeout=10_000):
                await page.click("button[type=submit]")
            want = "/wall/ew" if value == "/wall/ew" else "/"
            assert page.url == node.url + want, (repr(value), page.url)
        assert visited == [], "the browser left the node"
    finally:
        await page.close()
        await runner.cleanup()
