"""Scopes across the cascade: a station user scoped to one village sees nothing of
the other through any route; a village serves a peer only what it granted."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from relay.app import reload_config
from relay.config import parse_config
from relay.web.keys import HUB
from tests.conftest import ADMIN, PASSWORD
from tests.relay.peers.nodes import (
    LI,
    NODE,
    Cascade,
    cameras_by_id,
    cascade_of,
    get_json,
    village_yaml,
    wait_states,
    wait_until_async,
)

WALL = "walls:\n  - {id: both, site: dongcun, layout: 2x2, cameras: [dongcun.gate, xicun.gate]}\n"


@pytest.fixture
async def net(tmp_path: Path) -> AsyncIterator[Cascade]:
    async for cascade in cascade_of(tmp_path, WALL):
        yield cascade


async def _status(http: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> int:
    async with http.request(method, url, **kw) as response:
        return response.status


async def test_a_user_of_one_village_sees_nothing_of_the_other(net: Cascade) -> None:
    url = net.station.url
    async with aiohttp.ClientSession() as http:
        online = {"dongcun.gate": "online", "xicun.gate": "online"}
        await wait_states(http, net.station, online, 20)
        for camera in ("dongcun.gate", "xicun.gate"):
            async with http.post(
                f"{url}/api/events", json={"type": "alarm", "camera": camera}, headers=ADMIN
            ) as r:
                assert r.status == 201, await r.text()
        cameras = await get_json(http, f"{url}/api/cameras", LI)
        assert {c["id"] for c in cameras} == {"dongcun.gate", "dongcun.well"}
        (root,) = await get_json(http, f"{url}/api/sites", LI)
        assert root["id"] == "dongcun" and root["cameras"] == 2
        wall = await get_json(http, f"{url}/api/walls/both", LI)
        assert [c["id"] for c in wall["cameras"]] == ["dongcun.gate"]
        events = await get_json(http, f"{url}/api/events?type=alarm", LI)
        assert [e["camera"] for e in events] == ["dongcun.gate"]
        assert await _status(http, "GET", f"{url}/api/cameras/xicun.gate", headers=LI) == 404
        offer = {**LI, "Content-Type": "application/sdp"}
        assert await _status(http, "POST", f"{url}/whep/xicun.gate", headers=offer) == 404
        layout = {"name": "x", "layout": "2x2", "cameras": ["xicun.gate"]}
        assert await _status(http, "POST", f"{url}/api/layouts", json=layout, headers=LI) == 400
        # A person's token never reads the raw peer stream, not even of their own village.
        stream = f"{url}/api/cameras/dongcun.gate/stream"
        assert await _status(http, "GET", stream, headers=LI) == 403


async def test_a_village_serves_a_peer_only_its_granted_sites(tmp_path: Path) -> None:
    text = village_yaml("dongcun", [("gate", "dongcun"), ("well", "dongcun-east")])
    text = text.replace("sites: [dongcun], token_hash", "sites: [dongcun-east], token_hash")
    async for net in cascade_of(tmp_path):
        await net.stop("dongcun")
        net.texts["dongcun"] = text
        village = await net.start("dongcun")
        async with aiohttp.ClientSession() as http:
            cameras = await get_json(http, f"{village.url}/api/cameras", NODE)
            assert [c["id"] for c in cameras] == ["well"]
            gate = f"{village.url}/api/cameras/gate/stream?stream=sub"
            assert await _status(http, "GET", gate, headers=NODE) == 404
            login = {"name": "station", "password": PASSWORD}
            assert await _status(http, "POST", f"{village.url}/api/login", json=login) == 401
            layout = {"name": "x", "layout": "2x2", "cameras": ["well"]}
            post = f"{village.url}/api/layouts"
            assert await _status(http, "POST", post, json=layout, headers=NODE) == 403
            tokens = f"{village.url}/api/tokens"
            assert await _status(http, "POST", tokens, json={"name": "t"}, headers=NODE) == 403
            # The station's next catalog poll takes the camera no longer granted away.
            gone = await wait_until_async(
                functools.partial(cameras_by_id, http, net.station),
                lambda found: "dongcun.gate" not in found,
                20,
            )
            assert gone["dongcun.well"]["state"] == "online"


async def test_a_reloaded_scope_holds_while_the_catalog_refreshes(
    net: Cascade,
) -> None:
    url = net.station.url
    app = net.station.app
    async with aiohttp.ClientSession() as http:
        await wait_states(http, net.station, {"xicun.gate": "online"}, 20)
        viewer = app[HUB].channels[("xicun.gate", "main")].subscribe()  # a station viewer
        text = net.texts["station"].replace(
            "sites: [dongcun], password_hash", "sites: [xicun], password_hash"
        )
        await reload_config(app, parse_config(text))
        # A reload that leaves the peers alone leaves their viewers alone: the pull
        # goes on, the viewer's subscription is neither closed nor started over.
        async with asyncio.timeout(10):
            for _ in range(20):
                await viewer.get()
        assert app[HUB].channels[("xicun.gate", "main")] is viewer.fanout
        viewer.close()
        # The peers' cameras are spliced into the reloaded config at once, not at
        # their next change: no wait here.
        cameras = await get_json(http, f"{url}/api/cameras", LI)
        assert {c["id"] for c in cameras} == {"xicun.gate"}, "the reloaded scope holds"
        every = await get_json(http, f"{url}/api/cameras")
        assert len(every) == 3, "the peers' cameras stay for the admin"
