"""Recordings across nodes: a station user lists, plays back and exports a village's
camera through the village, both ends audit it, scopes hold at both ends, and a
village that is down is refused at once."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from relay.db import Database
from relay.record.index import Segment
from relay.web.keys import DB
from relay.web.recordings import RECORDINGS
from tests.conftest import ADMIN
from tests.natsserver import NatsServer
from tests.relay.peers.nodes import (
    LI,
    NODE,
    Cascade,
    cascade_of,
    wait_states,
    wait_until_async,
)
from tests.relay.record.common import closed_segments

STORAGE = "storage: {segment_seconds: 5, export_max_minutes: 1}\n"


@pytest.fixture
async def net(tmp_path: Path) -> AsyncIterator[Cascade]:
    async for cascade in cascade_of(tmp_path, village_extra=STORAGE):
        async with aiohttp.ClientSession() as http:
            online = {"dongcun.gate": "online", "xicun.gate": "online"}
            await wait_states(http, cascade.station, online, 20)
        yield cascade


async def call(method: str, url: str, headers: dict[str, str], body: Any = None) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession(headers=headers) as http,
        http.request(method, url, json=body) as r,
    ):
        data = await r.read()
        return r.status, (json.loads(data) if r.content_type == "application/json" else data)


async def recorded(net: Cascade, village: str, camera: str) -> Segment:
    """The first finished file of a village's camera."""
    return (await closed_segments(net.nodes[village].app[RECORDINGS], camera, 1))[0]


async def audit(node_url: str, action: str) -> list[dict[str, Any]]:
    status, found = await call("GET", f"{node_url}/api/audit?action={action}", ADMIN)
    assert status == 200
    return list(found["entries"])


async def locks(db: Database) -> list[tuple[Any, ...]]:
    found = await db.fetch("SELECT camera, kind, ref FROM evidence_locks")
    return [tuple(row) for row in found]


async def ready(url: str, export: dict[str, Any], who: dict[str, str]) -> dict[str, Any]:
    async with asyncio.timeout(30):
        while export["state"] == "building":
            await asyncio.sleep(0.2)
            status, export = await call("GET", f"{url}/api/exports/{export['id']}", who)
            assert status == 200, export
    assert export["state"] == "ready", export
    return export


async def test_a_station_user_plays_back_and_exports_a_village_camera(net: Cascade) -> None:
    url, village = net.station.url, net.nodes["dongcun"].url
    segment = await recorded(net, "dongcun", "gate")
    span = f"since={segment.start - 60:.3f}&until={time.time() + 5:.3f}"
    status, listed = await call("GET", f"{url}/api/cameras/dongcun.gate/recordings?{span}", LI)
    assert status == 200, listed
    assert listed["camera"] == "dongcun.gate" and listed["node"] == "dongcun"
    assert segment.id in [s["id"] for s in listed["segments"]] and listed["spans"]
    at = segment.start + 1
    status, opened = await call("POST", f"{url}/api/cameras/dongcun.gate/playback", LI, {"at": at})
    assert status == 201, opened
    media = f"{url}/api/cameras/dongcun.gate/segments/{segment.id}?from={at}&session="
    status, refused = await call("GET", media + "nope", LI)
    assert status == 403, refused
    async with (
        aiohttp.ClientSession(headers=LI) as http,
        http.get(media + opened["session"]) as r,
    ):
        assert r.status == 200, await r.text()
        assert r.headers["X-Codec"].startswith("avc1") and r.content_type == "video/mp4"
        assert float(r.headers["X-Fragment-Start"]) <= at + 0.001  # to the ms
        assert (await r.read())[4:8] == b"ftyp"
    status, _ = await call("DELETE", f"{url}/api/playback/{opened['session']}", LI)
    assert status == 204
    # Both ends audit the playback: the station its officer, the village the node for him.
    (here,) = await audit(url, "playback.end")
    assert here["user"] == "li" and here["camera"] == "dongcun.gate"
    assert here["detail"]["node"] == "dongcun" and here["detail"]["start"] <= at + 0.001
    (there,) = await audit(village, "playback.start")
    assert there["user"] == "station" and there["camera"] == "gate"
    assert there["detail"]["on_behalf"] == "li"
    (there,) = await audit(village, "playback.end")
    assert there["user"] == "station" and there["detail"]["on_behalf"] == "li"

    ask = {"camera": "dongcun.gate", "start": at, "end": at + 2, "note": "e-bike"}
    status, export = await call("POST", f"{url}/api/exports", LI, ask)
    assert status == 202, export
    assert export["id"].startswith("dongcun.") and export["camera"] == "dongcun.gate"
    export = await ready(url, export, LI)
    status, data = await call("GET", f"{url}{export['file']}", LI)
    assert status == 200 and hashlib.sha256(data).hexdigest() == export["sha256"]
    status, manifest = await call("GET", f"{url}/api/exports/{export['id']}/manifest", LI)
    assert status == 200, manifest
    manifest = json.loads(manifest) if isinstance(manifest, bytes) else manifest
    assert manifest["sha256"] == export["sha256"] and manifest["node"] == "dongcun"
    assert manifest["exporter"] == "li via station" and manifest["note"] == "e-bike"
    status, exports = await call("GET", f"{url}/api/exports", LI)
    assert [e["id"] for e in exports] == [export["id"]]
    (here,) = await audit(url, "export.download")
    assert here["user"] == "li" and here["detail"]["export"] == export["id"]
    assert here["detail"]["sha256"] == export["sha256"] and here["detail"]["node"] == "dongcun"
    (there,) = await audit(village, "export.download")
    assert there["user"] == "station" and there["detail"]["on_behalf"] == "li"
    # The station's admin cannot delete the village's evidence, nor can its node token.
    status, reason = await call("DELETE", f"{url}/api/exports/{export['id']}", ADMIN)
    assert status == 403 and b"deleted there" in reason
    own_id = export["id"].split(".")[1]
    status, _ = await call("DELETE", f"{village}/api/exports/{own_id}", NODE)
    assert status == 403


async def test_an_alarm_clip_at_a_village_is_exported_from_the_station(net: Cascade) -> None:
    url, village = net.station.url, net.nodes["dongcun"].url
    await recorded(net, "dongcun", "gate")
    status, alarm = await call(
        "POST", f"{village}/api/events", ADMIN, {"type": "alarm", "camera": "gate"}
    )
    assert status == 201, alarm
    since = f"since={alarm['time'] - 60:.3f}&until={alarm['time'] + 60:.3f}"
    status, listed = await call("GET", f"{url}/api/cameras/dongcun.gate/recordings?{since}", LI)
    assert status == 200
    (clip,) = [e for e in listed["evidence"] if e["kind"] == "alarm"]
    assert clip["ref"] == alarm["id"] and clip["start"] == pytest.approx(alarm["time"] - 10)
    ask = {"camera": "dongcun.gate", "start": clip["start"], "end": alarm["time"] + 1}
    status, export = await call("POST", f"{url}/api/exports", LI, ask)
    assert status == 202, export
    export = await ready(url, export, LI)
    status, data = await call("GET", f"{url}{export['file']}", LI)
    assert status == 200 and hashlib.sha256(data).hexdigest() == export["sha256"]


async def test_scopes_hold_on_every_recording_route(net: Cascade) -> None:
    url, village = net.station.url, net.nodes["xicun"].url
    segment = await recorded(net, "xicun", "gate")
    at = segment.start + 1
    status, theirs = await call(
        "POST", f"{url}/api/exports", ADMIN, {"camera": "xicun.gate", "start": at, "end": at + 2}
    )
    assert status == 202, theirs
    theirs = await ready(url, theirs, ADMIN)
    cam = f"{url}/api/cameras/xicun.gate"
    for method, path, body in (
        ("GET", f"{cam}/recordings", None),
        ("POST", f"{cam}/playback", {"at": at}),
        ("GET", f"{cam}/segments/{segment.id}?from={at}&session=x", None),
        ("POST", f"{url}/api/exports", {"camera": "xicun.gate", "start": at, "end": at + 2}),
        ("GET", f"{url}/api/exports/{theirs['id']}", None),
        ("GET", f"{url}/api/exports/{theirs['id']}/file", None),
        ("GET", f"{url}/api/exports/{theirs['id']}/manifest", None),
        ("GET", f"{url}/api/exports/xicun.{theirs['id']}", None),  # a malformed id
    ):
        status, reason = await call(method, path, LI, body)
        assert status == 404, (method, path, status, reason)
    status, listed = await call("GET", f"{url}/api/exports", LI)
    assert status == 200 and listed == []
    status, every = await call("GET", f"{url}/api/exports", ADMIN)
    assert [e["id"] for e in every] == [theirs["id"]]
    # The node token does what the cascade needs at the village, and nothing more.
    own_id = theirs["id"].split(".")[1]
    status, _ = await call("GET", f"{village}/api/exports/{own_id}/file", NODE)
    assert status == 200
    changes: tuple[tuple[str, str, Any], ...] = (
        ("DELETE", f"/api/exports/{own_id}", None),
        ("POST", "/api/leads", {"title": "x", "site": "xicun"}),
        ("GET", "/api/leads", None),
        ("PATCH", "/api/leads/1", {"arrests": 1}),
        ("GET", "/api/audit", None),
        ("GET", "/playback", None),
    )
    for method, path, body in changes:
        status, reason = await call(method, village + path, NODE, body)
        assert status == 403, (method, path, status, reason)
    # A person cannot claim to ask for someone else: only a node names its user.
    headers = {**ADMIN, "X-On-Behalf-Of": "nobody"}
    status, _ = await call("GET", f"{village}/api/cameras/gate/recordings", headers)
    assert status == 200
    playback = f"{village}/api/cameras/gate/playback"
    status, _ = await call("POST", playback, headers, {"at": at})
    assert status == 201
    entries = await audit(village, "playback.start")
    assert entries[0]["user"] == "admin" and "on_behalf" not in entries[0]["detail"]


async def test_a_village_serves_the_peer_only_its_granted_sites(net: Cascade) -> None:
    """The station's node token, straight at the village, asks for a camera the
    village did not grant it: 404 on every recording route, as for a person."""
    await net.stop("dongcun")
    net.texts["dongcun"] = net.texts["dongcun"].replace(
        "sites: [dongcun], token_hash", "sites: [dongcun-east], token_hash"
    )
    village = (await net.start("dongcun")).url
    segment = await recorded(net, "dongcun", "gate")
    at = segment.start + 1
    for method, path, body in (
        ("GET", "/api/cameras/gate/recordings", None),
        ("POST", "/api/cameras/gate/playback", {"at": at}),
        ("GET", f"/api/cameras/gate/segments/{segment.id}?from={at}&session=x", None),
        ("POST", "/api/exports", {"camera": "gate", "start": at, "end": at + 2}),
    ):
        status, reason = await call(method, village + path, NODE, body)
        assert status == 404, (method, path, status, reason)
    status, _ = await call("GET", f"{village}/api/cameras/well/recordings", NODE)
    assert status == 200


async def test_a_village_that_is_down_is_refused_at_once(net: Cascade) -> None:
    url = net.station.url
    segment = await recorded(net, "xicun", "gate")
    await net.stop("xicun")
    cam = f"{url}/api/cameras/xicun.gate"
    for method, path, body in (
        ("GET", f"{cam}/recordings", None),
        ("POST", f"{cam}/playback", {"at": segment.start + 1}),
        ("POST", f"{url}/api/exports", {"camera": "xicun.gate", "start": segment.start,
                                         "end": segment.start + 2}),
        ("GET", f"{url}/api/exports/xicun.1", None),
    ):  # fmt: skip
        started = time.monotonic()
        status, reason = await call(method, path, ADMIN, body)
        assert status in (502, 503) and b"village node unreachable" in reason, (status, reason)
        assert time.monotonic() - started < 4, "a refusal, not a wait"
    status, _ = await call("GET", f"{url}/api/exports", ADMIN)
    assert status == 200, "the list leaves the village out, it does not fail"


async def test_a_village_that_stops_answering_is_given_up_in_seconds(net: Cascade) -> None:
    """A village that takes the connection and never answers (a hung node, a
    stalled link): the station answers 502 within its timeout, not never."""
    held: list[asyncio.StreamWriter] = []

    async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    await net.stop("xicun")
    server = await asyncio.start_server(silent, "127.0.0.1", net.ports["xicun"], reuse_address=True)
    try:
        started = time.monotonic()
        url = f"{net.station.url}/api/cameras/xicun.gate/recordings"
        status, reason = await call("GET", url, ADMIN)
        assert status in (502, 503) and b"village node unreachable" in reason, (status, reason)
        assert time.monotonic() - started < 9
    finally:
        for writer in held:
            writer.close()
        server.close()


async def test_an_alarm_raised_at_the_station_locks_its_clip_at_the_village(
    tmp_path: Path,
) -> None:
    """The station's officer raises an alarm on dongcun.gate: it reaches the village
    over NATS, and the village keeps the clip of its camera gate from retention."""
    with NatsServer(tmp_path / "nats") as nats:
        bus = f"bus: {{nats: {{servers: ['{nats.url}'], stream: CASCADE}}}}\n"
        async for net in cascade_of(tmp_path, bus, STORAGE + bus):
            async with aiohttp.ClientSession() as http:
                await wait_states(http, net.station, {"dongcun.gate": "online"}, 20)
            raised = {"type": "alarm", "camera": "dongcun.gate"}
            status, alarm = await call("POST", f"{net.station.url}/api/events", LI, raised)
            assert status == 201, alarm
            village = net.nodes["dongcun"].app[DB]
            found = await wait_until_async(
                functools.partial(locks, village), lambda rows: len(rows) > 0, 20
            )
            assert found == [("gate", "alarm", alarm["id"])]
