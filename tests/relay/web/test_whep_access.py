"""WHEP and access: who gets the ICE servers' credentials, and how many places one
viewer's unconnected offers may hold."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import time
from collections import Counter

import aiohttp

from relay.web.keys import AUDIT
from relay.web.whep import WHEP
from relay.webrtc.client import WhepClient
from tests.access_nodes import config_text
from tests.conftest import PASSWORD, NodeFactory
from tests.offers import offer_sdp

ICE = (
    "webrtc: {host_addresses: [127.0.0.1], ice_servers: ["
    "{urls: ['stun:127.0.0.1:3478']},"
    " {urls: ['turn:127.0.0.1:3478'], username: turnuser, credential: s3cret-turn}]}"
)
SECRET = "a-shared-secret-of-coturn"


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {name}-token"}


async def links(http: aiohttp.ClientSession, path: str, headers: dict[str, str]) -> str:
    async with http.options(path, headers=headers) as r:
        assert r.status == 204
        return ", ".join(r.headers.getall("Link", []))


async def test_ice_credentials_go_only_to_who_may_watch(start_node: NodeFactory) -> None:
    node = await start_node(config_text().replace("webrtc: {host_addresses: [127.0.0.1]}", ICE))
    async with aiohttp.ClientSession(node.url) as http:
        for path, headers in (
            ("/whep/e1", {}),  # anonymous
            ("/whep/anything", {}),
            ("/whep/anything", bearer("operator")),
            ("/whep/e1", bearer("outsider")),  # logged in, but East is not theirs
            ("/whep/e1", {"Authorization": "Bearer wrong"}),
        ):
            told = await links(http, path, headers)
            assert "s3cret-turn" not in told and "turnuser" not in told, (path, headers, told)
        told = await links(http, "/whep/e1", bearer("operator"))
        assert 'username="turnuser"; credential="s3cret-turn"' in told


async def test_turn_secret_gives_short_lived_credentials(start_node: NodeFactory) -> None:
    text = config_text().replace("webrtc: {host_addresses: [127.0.0.1]}", ICE)
    node = await start_node(text + f"auth: {{turn_secret: {SECRET}, turn_credential_hours: 2}}\n")
    async with aiohttp.ClientSession(node.url) as http:
        told = await links(http, "/whep/e1", bearer("operator"))
    assert "s3cret-turn" not in told and "turnuser" not in told
    found = re.search(
        r'<turn:127.0.0.1:3478>[^,]*username="(\d+):operator"; credential="([^"]+)"', told
    )
    assert found, told
    expiry, credential = int(found.group(1)), found.group(2)
    assert abs(expiry - (time.time() + 2 * 3600)) < 60
    username = f"{expiry}:operator".encode()
    assert (
        credential
        == base64.b64encode(hmac.new(SECRET.encode(), username, hashlib.sha1).digest()).decode()
    )
    assert "<stun:127.0.0.1:3478>" in told


def limits(extra: str = "") -> str:
    return config_text().replace(
        "webrtc: {host_addresses: [127.0.0.1]}",
        f"webrtc: {{host_addresses: [127.0.0.1], max_viewers_per_camera: 4{extra}}}",
    )


async def post(http: aiohttp.ClientSession, offer: str, headers: dict[str, str]) -> int:
    sdp = {"Content-Type": "application/sdp", **headers}
    async with http.post("/whep/e1", data=offer, headers=sdp) as r:
        return r.status


async def test_one_viewer_cannot_hold_a_camera_with_offers_it_never_connects(
    start_node: NodeFactory,
) -> None:
    node = await start_node(limits())
    offer = await offer_sdp()  # its peer is gone: it never connects
    async with aiohttp.ClientSession(node.url) as http:
        watched = WhepClient(f"{node.url}/whep/e1", token="watcher-token")
        await watched.connect(http)  # connected: it holds a place, but is not pending
        async with asyncio.timeout(10):
            await watched.first_frame()
        async with asyncio.timeout(30):
            statuses = await asyncio.gather(
                *(post(http, offer, bearer("watcher")) for _ in range(10))
            )
        assert Counter(statuses) == {201: 3, 429: 7}, "three pending at most, offers at once too"
        # The camera is full (4). Another viewer, of the same role, waits its turn...
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(node.url, cookie_jar=jar) as other:
            own = {"Origin": node.url}
            login = {"name": "watcher", "password": PASSWORD}
            async with other.post("/api/login", json=login, headers=own) as r:
                assert r.status == 200
            assert await post(other, offer, own) == 503
        # ...but an officer takes the place of the oldest pending one, not of the viewer.
        for _ in range(3):
            assert await post(http, offer, bearer("officer")) == 201
        sessions = node.app[WHEP].sessions.values()
        assert Counter(s.user for s in sessions) == {"officer": 3, "watcher": 1}
        assert watched.pc.connectionState == "connected"
        ends = await node.app[AUDIT].query(action="view.end", user="watcher")
        assert [e["detail"]["reason"] for e in ends] == [
            "place given to a higher role (officer)"
        ] * 3
        await watched.close(http)


async def test_pending_offers_are_bounded_over_all_cameras(start_node: NodeFactory) -> None:
    node = await start_node(limits(", pending_per_credential: 2, pending_per_credential_camera: 5"))
    offer = await offer_sdp()
    async with aiohttp.ClientSession(node.url) as http:
        statuses = [await post(http, offer, bearer("operator")) for _ in range(4)]
        assert statuses == [201, 201, 429, 429]
        sdp = {"Content-Type": "application/sdp", **bearer("operator")}
        async with http.post("/whep/e1", data=offer, headers=sdp) as r:
            assert await r.text() == "too many of your offers are not connected yet\n"
            assert r.headers["Retry-After"]
