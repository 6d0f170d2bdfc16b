"""When access ends (logout, revocation, expiry, a user removed or changed by a
reload), what was opened with it ends at once: viewing sessions and event feeds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from relay.app import reload_config
from relay.config import parse_config
from relay.web.keys import AUDIT
from relay.web.whep import WHEP
from relay.webrtc.client import WhepClient
from tests.access_nodes import USERS, config_text
from tests.conftest import PASSWORD, Node, NodeFactory
from tests.helpers import wait_until

WAYS = ("logout", "revoke", "removed", "role", "expiry")
SESSION_HOURS = 0.003  # about 11 s: time to start watching, then it expires in use


def own_pages(node: Node) -> aiohttp.ClientSession:
    """A browser on the node's own pages: cookies kept, its Origin sent."""
    return aiohttp.ClientSession(
        node.url, cookie_jar=aiohttp.CookieJar(unsafe=True), headers={"Origin": node.url}
    )


async def end_access(node: Node, http: aiohttp.ClientSession, way: str, token_id: int) -> None:
    if way == "logout":
        async with http.post("/api/logout") as r:
            assert r.status == 200
    elif way == "revoke":
        async with http.delete(f"/api/tokens/{token_id}") as r:
            assert r.status == 200
    elif way == "removed":
        await reload_config(node.app, parse_config(config_text(USERS[:1] + USERS[2:])))
    elif way == "role":
        changed = tuple((n, "viewer" if n == "operator" else r, s) for n, r, s in USERS)
        await reload_config(node.app, parse_config(config_text(changed)))


@pytest.mark.parametrize("way", WAYS)
async def test_access_end_ends_its_sessions_and_feeds(start_node: NodeFactory, way: str) -> None:
    extra = f"auth: {{session_hours: {SESSION_HOURS}}}\n" if way == "expiry" else ""
    node = await start_node(config_text() + extra)
    async with own_pages(node) as http:
        login = {"name": "operator", "password": PASSWORD}
        async with http.post("/api/login", json=login) as r:
            assert r.status == 200
        expires = time.monotonic() + SESSION_HOURS * 3600
        token, token_id, bearer = None, 0, {}
        if way == "revoke":  # watched with a token made by this login
            async with http.post("/api/tokens", json={"name": "wall pc"}) as r:
                created = await r.json()
            token, token_id = created["token"], created["id"]
            bearer = {"Authorization": f"Bearer {token}"}
        client = WhepClient(f"{node.url}/whep/e1", token=token)
        await client.connect(http)
        feed = await http.ws_connect("/api/events", headers=bearer)
        try:
            async with asyncio.timeout(10):
                await client.first_frame()
            assert len(node.app[WHEP].sessions) == 1

            await end_access(node, http, way, token_id)
            ended = time.monotonic() if way != "expiry" else expires
            async with asyncio.timeout(SESSION_HOURS * 3600 + 10):
                closing = await feed.receive()
            assert closing.type == aiohttp.WSMsgType.CLOSE, closing
            assert (closing.data, closing.extra) == (1008, "access ended")
            assert time.monotonic() - ended < 3, "the feed closed at once"
            assert node.app[WHEP].sessions == {}, "the viewing session ended with it"
            await wait_until(
                lambda: client.pc.connectionState in ("closed", "failed"), 10, "video stopped"
            )
            (end,) = await node.app[AUDIT].query(action="view.end", user="operator")
            assert end["detail"]["reason"] == "access ended"
            async with http.get("/api/me", headers=bearer) as r:  # a changed role lives on
                assert r.status == (200 if way == "role" else 401)
        finally:
            await feed.close()
            await client.close(None)


async def test_access_that_ends_while_a_viewer_joins_ends_the_new_session(
    start_node: NodeFactory,
) -> None:
    """An offer that passed the door just before its login ended (its body still
    on the way) makes no session that outlives the login."""
    node = await start_node(config_text())
    client = WhepClient(f"{node.url}/whep/e1")
    await client.prepare()
    offer = client.pc.localDescription.sdp.encode()
    rest_may_go = asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield offer[:100]
        await rest_may_go.wait()
        yield offer[100:]

    async with own_pages(node) as http:
        async with http.post("/api/login", json={"name": "operator", "password": PASSWORD}) as r:
            assert r.status == 200
        sdp = {"Content-Type": "application/sdp"}
        joining = asyncio.create_task(http.post("/whep/e1", data=slow_body(), headers=sdp))
        await wait_until(lambda: bool(node.app[WHEP].places.opening), 10, "the offer came in")
        async with http.post("/api/logout") as r:
            assert r.status == 200
        rest_may_go.set()
        async with asyncio.timeout(10):
            async with await joining as r:
                assert (r.status, await r.text()) == (401, "access ended: log in again\n")
        assert node.app[WHEP].sessions == {}
        ends = await node.app[AUDIT].query(action="view.end", user="operator")
        assert [e["detail"]["reason"] for e in ends] == ["access ended"]
    await client.close(None)


async def test_tokens_are_made_only_by_a_person_logged_in(start_node: NodeFactory) -> None:
    """A token cannot make tokens: none could outlive its own revocation."""
    node = await start_node(config_text())
    async with own_pages(node) as http:
        async with http.post("/api/login", json={"name": "operator", "password": PASSWORD}) as r:
            assert r.status == 200
        async with http.post("/api/tokens", json={"name": "parent"}) as r:
            assert r.status == 201
            parent = await r.json()
    async with aiohttp.ClientSession(node.url) as http:
        bearer = {"Authorization": f"Bearer {parent['token']}"}
        async with http.post("/api/tokens", json={"name": "child"}, headers=bearer) as r:
            assert r.status == 403
            assert await r.text() == "tokens are made by a person logged in with a password\n"
        async with http.get("/api/tokens", headers=bearer) as r:
            assert [t["name"] for t in await r.json()] == ["parent"]
