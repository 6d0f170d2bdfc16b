"""The alert bus on one node: publish, store, scopes, live feed with resume, workflow."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import socket
import struct
from typing import Any

import aiohttp
import pytest
from PIL import Image

from camsim import CameraSimulator, MountSpec
from relay.bus.bus import AlertBus
from relay.bus.events import new_event
from relay.bus.feeds import WRITE_ROOM, EventFeed
from relay.web.events import BUS
from relay.web.keys import DB
from tests.conftest import ADMIN, NodeFactory, users_yaml
from tests.helpers import wait_until

CONFIG = (
    "node: {id: v1, name: V1}\n"
    "sites:\n"
    "  - {id: station, name: Station}\n"
    "  - {id: east, name: East, parent: station}\n"
    "  - {id: west, name: West, parent: station}\n"
    "cameras:\n"
    "  - {id: e1, name: E1, site: east, main: 'synthetic://320x180?fps=10&keyframe_interval=1'}\n"
    "  - {id: w1, name: W1, site: west, main: 'synthetic://320x180?fps=10'}\n"
    + users_yaml(
        ("officer", "officer", "station"),
        ("east-op", "operator", "east"),
        ("west-op", "operator", "west"),
        ("watcher", "viewer", "east"),
    )
)


def bearer(name: str) -> dict[str, str]:
    return ADMIN if name == "admin" else {"Authorization": f"Bearer {name}-token"}


async def post(http: aiohttp.ClientSession, who: str, body: Any) -> tuple[int, Any]:
    async with http.post("/api/events", json=body, headers=bearer(who)) as r:
        text = await r.text()
        return r.status, (json.loads(text) if r.content_type == "application/json" else text)


async def next_events(ws: aiohttp.ClientWebSocketResponse, count: int) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    async with asyncio.timeout(5):
        while len(got) < count:
            got.extend(json.loads((await ws.receive()).data))
    return got


async def test_alarm_reaches_the_feeds_that_may_see_it(start_node: NodeFactory) -> None:
    node = await start_node(CONFIG)
    e1 = node.hub.channel("e1")
    assert e1 is not None
    await wait_until(lambda: bool(e1.gop()), 10, "a picture to snapshot")
    async with aiohttp.ClientSession(node.url) as http:
        officer = await http.ws_connect("/api/events", headers=bearer("officer"))
        west = await http.ws_connect("/api/events", headers=bearer("west-op"))
        status, alarm = await post(
            http,
            "east-op",
            {"type": "alarm", "camera": "e1", "reason": "有人翻墙 someone over the wall"},
        )
        assert status == 201, alarm
        assert alarm["state"] == "open" and alarm["site"] == "east" and alarm["by"] == "east-op"
        (seen,) = await next_events(officer, 1)
        assert seen["id"] == alarm["id"] and seen["seq"] == alarm["seq"]
        _, west_alarm = await post(http, "west-op", {"type": "alarm", "camera": "w1"})
        (first_for_west,) = await next_events(west, 1)
        assert first_for_west["id"] == west_alarm["id"], "the east alarm never reached west"
        async with http.get(alarm["image"], headers=bearer("officer")) as r:
            assert r.status == 200 and (await r.read()).startswith(b"\xff\xd8"), "a snapshot"
        async with http.get(alarm["image"], headers=bearer("west-op")) as r:
            assert r.status == 404
        async with http.get("/api/events?type=alarm", headers=bearer("west-op")) as r:
            assert [e["id"] for e in await r.json()] == [west_alarm["id"]]
        async with http.get("/api/events?camera=e1&state=open", headers=bearer("officer")) as r:
            assert [e["id"] for e in await r.json()] == [alarm["id"]]
        await officer.close()
        await west.close()


async def test_feed_resumes_from_the_last_seq(start_node: NodeFactory) -> None:
    node = await start_node(CONFIG)
    async with aiohttp.ClientSession(node.url) as http:
        ws = await http.ws_connect("/api/events", headers=bearer("officer"))
        await post(http, "east-op", {"type": "alarm", "camera": "e1"})
        (first,) = await next_events(ws, 1)
        await ws.close()
        for _ in range(3):  # raised while the wall was away
            await post(http, "east-op", {"type": "alarm", "camera": "e1"})
        ws = await http.ws_connect(f"/api/events?after={first['seq']}", headers=bearer("officer"))
        missed = await next_events(ws, 3)
        assert [e["seq"] for e in missed] == [first["seq"] + i for i in (1, 2, 3)]
        await post(http, "east-op", {"type": "alarm", "camera": "e1"})
        (live,) = await next_events(ws, 1)
        assert live["seq"] == first["seq"] + 4
        await ws.close()


async def test_alarm_workflow_keeps_who_did_what(start_node: NodeFactory) -> None:
    node = await start_node(CONFIG)
    async with aiohttp.ClientSession(node.url) as http:
        _, alarm = await post(http, "east-op", {"type": "alarm", "camera": "e1", "reason": "x"})
        assert (await post(http, "east-op", {"type": "ack", "ref": alarm["id"]}))[0] == 403
        for step, extra, state in (
            ("ack", {}, "acked"),
            ("assign", {"team": "巡逻二组 patrol 2"}, "assigned"),
            ("resolve", {"note": "a cat"}, "resolved"),
        ):
            status, event = await post(http, "officer", {"type": step, "ref": alarm["id"], **extra})
            assert status == 201, event
            assert event["by"] == "officer" and event["ref"] == alarm["id"]
            async with http.get("/api/events?type=alarm", headers=bearer("officer")) as r:
                assert (await r.json())[0]["state"] == state
        async with http.get("/api/events?state=open", headers=bearer("officer")) as r:
            assert await r.json() == []


async def test_lookout_reaches_villages_below_and_sightings_point_back(
    start_node: NodeFactory,
) -> None:
    node = await start_node(CONFIG)
    picture = io.BytesIO()
    Image.new("RGB", (32, 24), "navy").save(picture, "JPEG")
    photo = base64.b64encode(picture.getvalue()).decode()
    async with aiohttp.ClientSession(node.url) as http:
        east = await http.ws_connect("/api/events", headers=bearer("east-op"))
        status, lookout = await post(
            http,
            "officer",
            {
                "type": "lookout",
                "text": "寻找走失老人 lost: old man, blue coat",
                "area": {"site": "station"},
                "photo": photo,
                "expires_in": 3600,
            },
        )
        assert status == 201, lookout
        (seen,) = await next_events(east, 1)
        assert seen["id"] == lookout["id"] and seen["image"]
        status, sighting = await post(
            http,
            "east-op",
            {
                "type": "sighting",
                "ref": lookout["id"],
                "camera": "e1",
                "note": "passed the gate",
            },
        )
        assert status == 201 and sighting["ref"] == lookout["id"], sighting
        await east.close()


async def test_bad_input_is_refused_and_never_stored(start_node: NodeFactory) -> None:
    node = await start_node(CONFIG)
    big_photo = base64.b64encode(b"\xff\xd8" + bytes(600_000)).decode()
    cases = [
        ("east-op", {"type": "fire"}, 400, "type must be one of"),
        ("east-op", {"type": "alarm", "camera": "w1"}, 404, "no such camera"),
        ("east-op", {"type": "alarm", "camera": "nope"}, 404, "no such camera"),
        ("east-op", {"type": "alarm", "camera": "e1", "reason": "x" * 201}, 413, "reason"),
        ("east-op", {"type": "alarm", "camera": "e1", "reason": 7}, 400, "reason must be text"),
        ("watcher", {"type": "alarm", "camera": "e1"}, 403, "viewer may not"),
        ("east-op", {"type": "lookout", "text": "x"}, 403, "may not publish lookout"),
        ("officer", {"type": "lookout", "text": "x" * 2001}, 413, "text"),
        (
            "officer",
            {"type": "lookout", "text": "x", "area": {"site": "mars"}},
            404,
            "no such site",
        ),
        ("officer", {"type": "lookout", "text": "x", "photo": big_photo}, 413, "photo"),
        ("officer", {"type": "lookout", "text": "x", "photo": "bm90IGEganBlZw=="}, 400, "JPEG"),
        ("officer", {"type": "lookout", "text": "x", "expires_in": True}, 400, "expires_in"),
        ("officer", {"type": "ack", "ref": "nope"}, 404, "no such alarm"),
        ("officer", {"type": "assign", "ref": 5}, 400, "ref must be"),
    ]
    async with aiohttp.ClientSession(node.url) as http:
        for who, body, status, reason in cases:
            got, text = await post(http, who, body)
            assert (got, reason in str(text)) == (status, True), (body, got, text)
        async with http.post(
            "/api/events", data="{", headers={**ADMIN, "Content-Type": "application/json"}
        ) as r:
            assert r.status == 400
    assert await node.app[BUS].store.query({}) == []


@pytest.mark.slow
async def test_flapping_camera_is_a_few_events_a_real_outage_is_two(
    start_node: NodeFactory,
) -> None:
    with CameraSimulator([MountSpec("cam", width=160, height=120, fps=5)]) as sim:
        node = await start_node(
            "node: {id: v1, name: V1}\n"
            "sites: [{id: east, name: East}]\n"
            "bus: {offline_debounce: 2}\n"
            "cameras:\n"
            f"  - {{id: gate, name: Gate, site: east, main: '{sim.url('cam')}', backoff_max: 1,"
            " stall_timeout: 2}\n" + users_yaml()
        )
        store = node.app[BUS].store
        gate = node.hub.channel("gate")
        assert gate is not None
        await wait_until(lambda: gate.source.state == "online", 10)
        for _ in range(20):  # the source toggled 20 times in 10 s
            await asyncio.to_thread(sim.stop)
            await asyncio.sleep(0.25)
            await asyncio.to_thread(sim.start)
            await asyncio.sleep(0.25)
        await wait_until(lambda: gate.source.state == "online", 10)
        flaps = [s.event.type for s in await store.query({})]
        assert len(flaps) <= 2, flaps  # at most one offline and its online

        await asyncio.to_thread(sim.stop)  # a real outage, longer than the debounce
        await wait_until(lambda: node.app[BUS].cameras_down == {"gate"}, 10)
        await asyncio.to_thread(sim.start)
        await wait_until(lambda: not node.app[BUS].cameras_down, 10)
    events = [s.event for s in await store.query({})][:2]
    assert [e.type for e in reversed(events)] == ["camera.offline", "camera.online"]
    assert events[1].camera == "gate" and events[1].data["error"]


async def test_concurrent_alarms_share_transactions_and_each_keeps_its_audit_entry(
    start_node: NodeFactory,
) -> None:
    node = await start_node(CONFIG)
    bus = node.app[BUS]
    begun = bus._commits.transactions
    async with aiohttp.ClientSession(node.url) as http:
        east = await http.ws_connect("/api/events", headers=bearer("east-op"))
        watcher = await http.ws_connect("/api/events", headers=bearer("watcher"))
        west = await http.ws_connect("/api/events", headers=bearer("west-op"))
        raised = await asyncio.gather(
            *(
                post(http, who, {"type": "alarm", "camera": camera, "reason": str(i)})
                for i in range(30)
                for who, camera in (("east-op", "e1"), ("west-op", "w1"))
            )
        )
        assert all(status == 201 for status, _ in raised), raised
        transactions = bus._commits.transactions - begun
        assert transactions < 30, "alarms of one loop turn share a transaction"
        ids = {site: [a["id"] for _, a in raised if a["site"] == site] for site in ("east", "west")}
        got = {
            name: await next_events(ws, 30)
            for name, ws in (("east", east), ("watcher", watcher), ("west", west))
        }
        assert [e["id"] for e in got["east"]] == [e["id"] for e in got["watcher"]]
        assert {e["id"] for e in got["east"]} == set(ids["east"])
        assert {e["id"] for e in got["west"]} == set(ids["west"]), "no event crosses scopes"
        for events in got.values():
            assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
        async with http.get("/api/audit?action=alarm.raise", headers=ADMIN) as r:
            audited = [entry["detail"]["event"] for entry in (await r.json())["entries"]]
        assert sorted(audited) == sorted(ids["east"] + ids["west"]), "one entry per alarm"
        for ws in (east, watcher, west):
            await ws.close()


async def test_a_feed_that_keeps_up_is_written_to_and_one_that_does_not_read_is_closed_1013(
    start_node: NodeFactory,
) -> None:
    """A caught-up feed gets each frame straight from the log, its task left asleep.
    A feed whose connection stops reading is closed with 1013 once its connection
    holds more than WRITE_ROOM unsent (not cut by the heartbeat half a minute
    later): what the node holds for it stays bounded, the others go on, and the
    subscriber finds the close after what it was sent, once it reads again."""
    node = await start_node(CONFIG)
    bus = node.app[BUS]
    async with aiohttp.ClientSession(node.url) as http:
        watcher = await http.ws_connect("/api/events", headers=bearer("watcher"))
        stuck = await stuck_feed(node.url, "officer")
        try:
            feed, officer = feed_of(bus, "watcher"), feed_of(bus, "officer")
            await wait_until(lambda: feed._waiter is not None, 5, "the feed to wait for events")
            asleep = feed._waiter
            assert asleep is not None
            _, alarm = await post(http, "east-op", {"type": "alarm", "camera": "e1"})
            (seen,) = await next_events(watcher, 1)
            assert seen["id"] == alarm["id"]
            assert feed._waiter is asleep and not asleep.done(), "written, its task asleep"

            transport = officer._transport
            assert transport is not None
            # A slow link: the kernel holds little for it, the rest waits in the node.
            transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            lookout = {"type": "lookout", "text": "x" * 1900, "area": {"site": "east"}}
            most = 0
            for i in range(40):  # 800 kB for the stuck feed, which reads none of it
                raised = await asyncio.gather(*(post(http, "officer", lookout) for _ in range(10)))
                assert all(status == 201 for status, _ in raised), raised
                got = await next_events(watcher, 10)
                assert len(got) == 10, f"round {i}: the watcher waited for the stuck feed"
                most = max(most, transport.get_write_buffer_size())
            await wait_until(transport.is_closing, 5, "the stuck feed to be closed")
            assert most < WRITE_ROOM + 100_000, f"{most} bytes held for the stuck feed"
            frames = await read_to_the_end(stuck)
            assert frames[-1][0] == 0x8, "the last frame closes"
            assert struct.unpack("!H", frames[-1][1][:2]) == (1013,)
            assert all(opcode == 0x1 for opcode, _ in frames[:-1])
        finally:
            stuck.close()
        await watcher.close()


async def read_to_the_end(conn: socket.socket) -> list[tuple[int, bytes]]:
    """Every WebSocket frame (opcode, payload) the server sent, until it closed."""
    loop = asyncio.get_running_loop()
    data = b""
    async with asyncio.timeout(10):
        while chunk := await loop.sock_recv(conn, 65536):
            data += chunk
    frames = []
    while data:
        opcode, size, at = data[0] & 0x0F, data[1] & 0x7F, 2
        if size == 126:
            (size,), at = struct.unpack("!H", data[2:4]), 4
        elif size == 127:
            (size,), at = struct.unpack("!Q", data[2:10]), 10
        frames.append((opcode, data[at : at + size]))
        data = data[at + size :]
    return frames


def feed_of(bus: AlertBus, name: str) -> EventFeed:
    (feed,) = (f for log in bus.logs.values() for f in log.feeds if f.user.name == name)
    return feed


async def stuck_feed(url: str, who: str) -> socket.socket:
    """A WebSocket feed that opens, then never reads (a small receive buffer, so
    the node's side fills soon)."""
    host, port = url.removeprefix("http://").split(":")
    conn = socket.socket()
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    conn.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(conn, (host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    auth = bearer(who)["Authorization"]
    await loop.sock_sendall(
        conn,
        (
            f"GET /api/events HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nAuthorization: {auth}\r\n\r\n"
        ).encode(),
    )
    async with asyncio.timeout(5):
        head = await loop.sock_recv(conn, 4096)
    assert head.startswith(b"HTTP/1.1 101"), head
    return conn


async def test_an_event_raised_after_the_database_closed_is_refused_not_hung(
    start_node: NodeFactory,
) -> None:
    node = await start_node(CONFIG)
    await node.app[DB].close()
    with pytest.raises(RuntimeError):
        async with asyncio.timeout(5):
            await node.app[BUS].publish(new_event("village", "alarm", "east", camera="e1"))
