"""GET /metrics: Prometheus' text, parsed by prometheus_client's own parser, that
moves when things happen; never for anonymous callers from anywhere."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from camsim import CameraSimulator, MountSpec
from relay.config import ConfigError, parse_config
from relay.media.hub import Channel
from relay.web.events import BUS, LINK
from relay.web.whep import WHEP
from relay.webrtc.client import WhepClient
from tests.compose_files import documented_metrics
from tests.conftest import ADMIN, Node, NodeFactory, node_yaml, users_yaml
from tests.helpers import wait_until
from tests.nats_nodes import raise_alarm, two_nodes
from tests.natsserver import NatsServer

SYNTHETIC = "synthetic://320x180?fps=15&keyframe_interval=1&bitrate=200"
METRICS_USER = {"Authorization": "Bearer prom-token"}
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def config(cameras: str, extra: str = "") -> str:
    extra_users = users_yaml(("prom", "metrics", ""), ("guard", "viewer", "village"))
    users = "\n".join(extra_users.splitlines()[2:]) + "\n"  # the admin is there already
    return node_yaml(cameras, extra).replace("cameras:\n", users + "cameras:\n", 1)


def camera(cam_id: str, url: str = SYNTHETIC, **more: object) -> str:
    fields = "".join(f", {k}: {v}" for k, v in more.items())
    return f"  - {{id: {cam_id}, name: {cam_id}, site: village, main: '{url}'{fields}}}\n"


async def scrape(http: aiohttp.ClientSession, headers: dict[str, str] = METRICS_USER) -> Samples:
    async with http.get("/metrics", headers=headers) as r:
        assert r.status == 200, await r.text()
        assert r.content_type == "text/plain"
        text = await r.text()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


async def state_reached(node: Node, channel: Channel, *states: str) -> None:
    reached = asyncio.get_running_loop().create_future()

    def changed(ch: Channel) -> None:
        if ch is channel and str(ch.source.state) in states and not reached.done():
            reached.set_result(None)

    node.hub.state_listeners.append(changed)
    try:
        if str(channel.source.state) not in states:
            async with asyncio.timeout(20):
                await reached
    finally:
        node.hub.state_listeners.remove(changed)


async def test_metrics_need_a_metrics_token_or_an_allowed_address(
    start_node: NodeFactory,
) -> None:
    closed = await start_node(config(camera("a")))
    open_here = await start_node(config(camera("b"), "metrics: {allow: [127.0.0.1/32]}\n"))
    async with aiohttp.ClientSession(closed.url) as http:
        async with http.get("/metrics") as r:
            assert r.status == 401, "anonymous, from an address not listed"
        async with http.get("/metrics", headers={"Authorization": "Bearer guard-token"}) as r:
            assert r.status == 403, "a viewer is no metrics reader"
        async with http.get("/api/cameras", headers=METRICS_USER) as r:
            assert r.status == 403, "a metrics token reads /metrics and nothing else"
        own = await scrape(http)
        assert value(own, "villagewatch_stream_up", camera="a", stream="main") in (0.0, 1.0)
        assert not any(labels and ("camera", "b") in labels for _, labels in own), (
            "two nodes in one process share no registry"
        )
        await scrape(http, ADMIN)
    async with aiohttp.ClientSession(open_here.url) as http:
        samples = await scrape(http, {})  # anonymous, from 127.0.0.1: listed
        assert (
            "villagewatch_stream_up",
            frozenset({("camera", "b"), ("stream", "main")}),
        ) in samples
        assert value(samples, "process_resident_memory_bytes") > 1_000_000
        assert value(samples, "process_open_fds") > 3
        assert value(samples, "villagewatch_event_loop_lag_seconds") >= 0


async def test_state_gauge_follows_a_camera_going_offline(start_node: NodeFactory) -> None:
    with CameraSimulator([MountSpec("cam", width=320, height=180, fps=15)]) as sim:
        node = await start_node(config(camera("cam", sim.url("cam"), stall_timeout=2)))
        channel = node.hub.channel("cam")
        assert channel is not None
        async with asyncio.timeout(20):
            await channel.wait_online()
        async with aiohttp.ClientSession(node.url) as http:
            online = await scrape(http)
            sim.stop()
            await state_reached(node, channel, "offline", "stalled")
            offline = await scrape(http)
    assert (
        value(online, "villagewatch_stream_state", camera="cam", stream="main", state="online") == 1
    )
    assert value(online, "villagewatch_stream_up", camera="cam", stream="main") == 1
    assert value(online, "villagewatch_stream_packets_total", camera="cam", stream="main") > 0
    state = str(channel.source.state)
    assert (
        value(offline, "villagewatch_stream_state", camera="cam", stream="main", state=state) == 1
    )
    assert (
        value(offline, "villagewatch_stream_state", camera="cam", stream="main", state="online")
        == 0
    )
    assert value(offline, "villagewatch_stream_up", camera="cam", stream="main") == 0


async def test_a_viewer_joining_raises_viewers_and_rtp_sent(start_node: NodeFactory) -> None:
    node = await start_node(config(camera("a")))
    async with aiohttp.ClientSession(node.url) as http:
        before = await scrape(http)
        viewer = WhepClient(f"{node.url}/whep/a", token="guard-token")
        await viewer.connect(http)
        async with asyncio.timeout(15):
            await viewer.first_frame()
        async with http.post(
            "/api/events", json={"type": "alarm", "camera": "a"}, headers=ADMIN
        ) as r:
            assert r.status == 201, await r.text()
        during = await scrape(http)
        await viewer.close(http)
        after = await scrape(http)
    assert value(before, "villagewatch_camera_viewers", camera="a") == 0
    assert value(during, "villagewatch_camera_viewers", camera="a") == 1
    assert value(during, "villagewatch_viewers") == 1
    assert value(during, "villagewatch_stream_subscribers", camera="a", stream="main") >= 1
    assert value(during, "villagewatch_rtp_sent_packets_total", camera="a") > 0
    assert value(during, "villagewatch_bus_events_raised_total", type="alarm") == 1
    assert value(before, "villagewatch_bus_events_raised_total", type="alarm") == 0
    assert value(during, "villagewatch_viewer_dropped_packets_total", camera="a") >= 0
    whep_posts = {"route": "/whep/{camera_id}", "method": "POST", "status": "201"}
    assert value(during, "villagewatch_http_requests_total", **whep_posts) == 1
    latency = {"route": "/whep/{camera_id}", "method": "POST"}
    assert value(during, "villagewatch_http_request_seconds_count", **latency) == 1
    assert value(after, "villagewatch_camera_viewers", camera="a") == 0
    assert node.app[WHEP].sessions == {}


async def test_bus_metrics_follow_events_across_nats(
    start_node: NodeFactory, tmp_path: Path
) -> None:
    with NatsServer(tmp_path / "nats") as nats:
        village, station = await two_nodes(start_node, nats)
        async with aiohttp.ClientSession() as http:
            alarm = await raise_alarm(http, village.url, "metrics")
            await wait_until(
                lambda: station.app[BUS].received["alarm"] == 1, 15, "the station got the alarm"
            )
            await wait_until(lambda: village.app[LINK].published >= 1, 15, "JetStream took it")
            async with (
                aiohttp.ClientSession(village.url) as v,
                aiohttp.ClientSession(station.url) as s,
            ):
                sent, got = await scrape(v, ADMIN), await scrape(s, ADMIN)
            nats.kill()
            await wait_until(lambda: not village.app[LINK].connected.is_set(), 15, "link down")
            await raise_alarm(http, village.url, "while the link is down")
            async with aiohttp.ClientSession(village.url) as v:
                down = await scrape(v, ADMIN)
    assert alarm["type"] == "alarm"
    assert value(sent, "villagewatch_bus_events_raised_total", type="alarm") == 1
    assert value(sent, "villagewatch_nats_published_events_total") >= 1
    assert value(sent, "villagewatch_nats_connected") == 1
    assert value(sent, "villagewatch_nats_outbox_events") == 0
    assert value(got, "villagewatch_bus_events_received_total", type="alarm") == 1
    assert value(got, "villagewatch_bus_events_raised_total", type="alarm") == 0
    assert value(down, "villagewatch_nats_connected") == 0
    assert value(down, "villagewatch_nats_outbox_events") == 1, "the alarm waits in the outbox"
    names = {name for name, _ in {**sent, **down}}
    documented = documented_metrics()
    exposed = {re.sub(r"_(bucket|count|sum|created|total)$", "", n) for n in names}
    exposed = {n for n in exposed if n.startswith(("villagewatch_", "process_"))}
    documented = {n.removesuffix("_total") for n in documented}
    assert exposed <= documented, f"not in docs/operations.md: {sorted(exposed - documented)}"


def test_metrics_config_names_networks_and_readers_need_no_sites() -> None:
    parse_config(config(camera("a"), "metrics: {allow: [127.0.0.1/32, '::1', 10.0.0.0/8]}\n"))
    bad = config(camera("a"), "metrics: {allow: [localhost]}\n")
    with pytest.raises(ConfigError) as refused:
        parse_config(bad, "node.yaml")
    line = bad.splitlines().index("metrics: {allow: [localhost]}") + 1
    assert refused.value.problems == [
        f"node.yaml:{line}: metrics.allow[0]: must be an address or a network, e.g. 127.0.0.1/32"
    ]
