"""The bus across nodes through faults: a NATS store gone, messages a node cannot
use, a receiver that fails, alarm steps made on both sides of a partition, and a
node that stopped with events in flight. A real nats-server each time."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from relay.bus.events import new_event
from relay.bus.nats import site_subject
from relay.config import parse_config
from relay.web.events import BUS, LINK
from tests.conftest import Node, NodeFactory
from tests.helpers import wait_until
from tests.nats_nodes import bearer, node_config, raise_alarm, two_nodes
from tests.natsserver import NatsServer


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    with NatsServer(tmp_path / "nats") as server:
        yield server


async def arrives(node: Node, event_id: str, within: float) -> float:
    """Seconds until `event_id` is in `node`'s store; fails after `within`."""
    store = node.app[BUS].store
    start = time.monotonic()
    async with asyncio.timeout(within):
        while await store.get(event_id) is None:  # noqa: ASYNC110 (another node's store)
            await asyncio.sleep(0.1)
    return time.monotonic() - start


async def post_step(http: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> dict[str, Any]:
    async with http.post(f"{url}/api/events", headers=bearer("officer"), json=body) as r:
        assert r.status == 201, await r.text()
        step: dict[str, Any] = await r.json()
        return step


@pytest.mark.slow
async def test_a_fresh_nats_store_is_set_up_again_and_the_outbox_drains(
    start_node: NodeFactory, nats_server: NatsServer
) -> None:
    """nats-server comes back with its store gone: the village recreates the stream
    (its publishes hear NoStreamResponseError), the station notices its durable
    consumer is gone, and both go on without a restart."""
    village, station = await two_nodes(start_node, nats_server)
    async with aiohttp.ClientSession() as http:
        first = await raise_alarm(http, village.url, "before")
        await arrives(station, first["id"], 10)
        nats_server.kill()
        shutil.rmtree(nats_server.store_dir)
        nats_server.start()
        later = [await raise_alarm(http, village.url, f"after {i}") for i in range(5)]
        for alarm in later:
            await arrives(station, alarm["id"], 20)
    await wait_until(lambda: village.app[LINK].published >= 6, 5, "all six published")
    assert await village.app[BUS].store.pending() == 0, "the outbox drained"


async def test_messages_a_node_cannot_use_are_skipped_once_and_the_rest_arrive(
    start_node: NodeFactory, nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    village, station = await two_nodes(start_node, nats_server)
    good = new_event("elsewhere", "alarm", "east", camera="e1").as_json()
    bad: list[bytes] = [
        json.dumps({**good, "site": ["east"]}).encode(),  # a list where a string belongs
        json.dumps({**good, "id": {"a": 1}}).encode(),
        json.dumps({**good, "time": "noon"}).encode(),
        json.dumps({**good, "data": [1, 2]}).encode(),
        json.dumps({**good, "by": "\ud800"}).encode(),  # not storable as UTF-8
        json.dumps([good]).encode(),
        b"\xff\xfe not json",
    ]
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        for i, payload in enumerate(bad):
            subject = site_subject("TEST.events", None)  # the network's: every node takes it
            await js.publish(subject, payload, headers={"Nats-Msg-Id": f"bad-{i}"})
        caplog.set_level(logging.WARNING, "relay.bus")
        async with aiohttp.ClientSession() as http:
            alarm = await raise_alarm(http, village.url, "after the junk")
            await arrives(station, alarm["id"], 10)
        skipped = [r for r in caplog.records if "cannot use" in r.getMessage()]
        assert len(skipped) == 2 * len(bad), "each node says so once for each"
        info = await js.consumer_info("TEST", "node-station")
        assert info.num_ack_pending == 0 and info.num_redelivered == 0, info
        assert station.app[LINK].inbound.skipped == village.app[LINK].inbound.skipped == len(bad)
    finally:
        await nc.close()


async def test_a_receiver_that_fails_is_logged_and_its_events_come_again(
    start_node: NodeFactory, nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    village, station = await two_nodes(start_node, nats_server)
    inbound = station.app[LINK].inbound
    receive = inbound.receive
    failures = 0

    async def fails_once(events: list[Any]) -> int:
        nonlocal failures
        if failures == 0:
            failures += 1
            raise RuntimeError("disk on fire")
        return await receive(events)

    inbound.receive = fails_once
    caplog.set_level(logging.ERROR, "relay.bus")
    async with aiohttp.ClientSession() as http:
        alarm = await raise_alarm(http, village.url, "through a failure")
        took = await arrives(station, alarm["id"], 10)
    assert failures == 1 and took < 5
    assert any("disk on fire" in (r.exc_text or "") for r in caplog.records), "logged at once"


@pytest.mark.slow
async def test_steps_on_both_sides_of_a_partition_leave_one_alarm_state(
    start_node: NodeFactory, nats_server: NatsServer
) -> None:
    """An ack made at the cut-off village, then an assign at the station: each node
    gets the other's step last, and both say `assigned` (the later step)."""
    village, station = await two_nodes(start_node, nats_server)
    async with aiohttp.ClientSession() as http:
        alarm = await raise_alarm(http, village.url, "partition")
        await arrives(station, alarm["id"], 10)
        nats_server.kill()
        ack = await post_step(http, village.url, {"type": "ack", "ref": alarm["id"]})
        await asyncio.sleep(0.05)  # the assign is the later step, by its time
        assign = await post_step(
            http, station.url, {"type": "assign", "ref": alarm["id"], "team": "patrol 2"}
        )
        assert assign["time"] > ack["time"]
        nats_server.start()
        await arrives(station, ack["id"], 20)
        await arrives(village, assign["id"], 20)
    states = [(await n.app[BUS].store.get(alarm["id"])) for n in (village, station)]
    assert [s.state if s else None for s in states] == ["assigned", "assigned"]


async def test_an_event_in_flight_when_a_node_stopped_comes_first_after_its_restart(
    start_node: NodeFactory, nats_server: NatsServer
) -> None:
    """A node took an event from the stream and died before acknowledging it (here
    a bare client bound to the station's durable consumer, cut off without an ack);
    with 200 events behind it, it reaches the restarted station within seconds,
    not after ack_wait (30 s)."""
    station = await start_node(node_config("station", nats_server.url, station=True))
    async with asyncio.timeout(10):
        await station.app[LINK].connected.wait()
    await station.app[LINK].close()  # the durable consumer exists; nobody is bound to it
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    taken: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def take_no_ack(msg: Any) -> None:
        if not taken.done():
            taken.set_result(None)

    sites = parse_config(node_config("station", nats_server.url, station=True)).sites
    await js.subscribe(
        "TEST.events.>",
        durable="node-station",
        stream="TEST",
        cb=take_no_ack,
        manual_ack=True,
        config=ConsumerConfig(  # as the station makes its own: its sites' subjects
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=30,
            filter_subjects=sorted(
                site_subject("TEST.events", s) for s in (*(s.id for s in sites), None)
            ),
        ),
    )
    east = site_subject("TEST.events", "east")
    in_flight = new_event("village", "alarm", "east", camera="e1")
    await js.publish(east, json.dumps(in_flight.as_json()).encode())
    async with asyncio.timeout(5):
        await taken
    await nc.close()  # gone without an ack, as a killed node
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        for _ in range(200):
            later = new_event("village", "alarm", "east", camera="e1")
            await js.publish(east, json.dumps(later.as_json()).encode())
    finally:
        await nc.close()
    restarted = await start_node(node_config("station", nats_server.url, station=True))
    took = await arrives(restarted, in_flight.id, 25)
    assert took < 8, f"the in-flight event took {took:.1f} s"
