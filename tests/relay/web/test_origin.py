"""Changes and WebSocket upgrades come from the node's own origin: the scheme,
the host and the port, not a look-alike."""

from __future__ import annotations

from urllib.parse import urlsplit

import aiohttp
import pytest

from tests.access_nodes import config_text
from tests.conftest import PASSWORD, NodeFactory

FOREIGN = (
    "http://evil.example",
    "https://{host}",  # the same host and port, another scheme
    "ws://{host}",
    "http://127.0.0.1:1",
    "http://localhost:{port}",
    "http://evil@{host}",
    "null",
    "http://{host}.evil.example",
    "http://[::1]:{port}",
    "http://{host}:99999",
)


def foreign(value: str, url: str) -> str:
    parts = urlsplit(url)
    return value.format(host=parts.netloc, port=parts.port)


@pytest.mark.parametrize("origin", FOREIGN)
async def test_foreign_origins_are_refused(start_node: NodeFactory, origin: str) -> None:
    node = await start_node(config_text())
    origin = foreign(origin, node.url)
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(node.url, cookie_jar=jar) as http:
        own = {"Origin": node.url}
        login = {"name": "operator", "password": PASSWORD}
        async with http.post("/api/login", json=login, headers=own) as r:
            assert r.status == 200
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect("/api/events", headers={"Origin": origin})
        assert refused.value.status == 403
        async with http.post("/api/tokens", json={"name": "x"}, headers={"Origin": origin}) as r:
            assert r.status == 403
        bearer = {"Authorization": "Bearer operator-token", "Origin": origin}
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect("/api/events", headers=bearer)
        assert refused.value.status == 403


async def test_the_own_origin_and_programs_without_one_are_served(
    start_node: NodeFactory,
) -> None:
    node = await start_node(config_text())
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(node.url, cookie_jar=jar) as http:
        own = {"Origin": node.url}
        login = {"name": "operator", "password": PASSWORD}
        async with http.post("/api/login", json=login, headers=own) as r:
            assert r.status == 200
        feed = await http.ws_connect("/api/events", headers=own)
        await feed.close()
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:  # a cookie needs one
            await http.ws_connect("/api/events")
        assert refused.value.status == 403
    async with aiohttp.ClientSession(node.url) as http:  # a program with a token
        feed = await http.ws_connect("/api/events", headers={"Authorization": "Bearer peer-token"})
        await feed.close()
