"""`GET /metrics` in Prometheus' text format, from a registry of the app's own.

Each app has its own CollectorRegistry (no global one: two nodes in one process
never mix). Collectors of the rooms (relay/media/metrics.py, relay/webrtc/metrics.py,
relay/bus/metrics.py) read live state at scrape time; what only a request sees
(HTTP counts and latency) is counted by the middleware here. Another subsystem adds
its own with `app[METRICS].add(collector, refresh)`, in its lifecycle.

Who may read: an admin or a user of role `metrics` (a Bearer token), or anyone
connecting from an address in `metrics.allow`; nobody else.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry

from relay.bus.metrics import BusCollector
from relay.media.metrics import HubCollector
from relay.web.events import BUS, LINK
from relay.web.guard import Handler, Rule, add_route
from relay.web.keys import CONFIG, HUB
from relay.web.whep import WHEP
from relay.webrtc.metrics import WhepCollector

LAG_EVERY = 0.25  # s between the loop-lag probe's wake-ups
LAG_WINDOW = 10.0  # s: the gauge is the worst lag seen this long back
Refresh = Callable[[], Awaitable[None]]


class NodeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.refreshers: list[Refresh] = []
        ProcessCollector(registry=self.registry)  # CPU, RSS, open fds, from /proc
        self.requests = Counter(
            "villagewatch_http_requests",
            "HTTP requests answered",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "villagewatch_http_request_seconds",
            "time to answer an HTTP request (WebSockets left out)",
            ["route", "method"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.loop_lag = Gauge(
            "villagewatch_event_loop_lag_seconds",
            f"worst lateness of a {LAG_EVERY} s timer on the event loop, last {LAG_WINDOW:.0f} s",
            registry=self.registry,
        )
        self.reloads = Counter(
            "villagewatch_config_reloads",
            "config reloads, by result",
            ["result"],
            registry=self.registry,
        )
        self.restart_needed = Gauge(
            "villagewatch_config_restart_needed",
            "1 while a reloaded change waits for a restart",
            registry=self.registry,
        )

    def add(self, collector: Collector, refresh: Refresh | None = None) -> None:
        self.registry.register(collector)
        if refresh is not None:
            self.refreshers.append(refresh)

    def remove(self, collector: Collector, refresh: Refresh | None = None) -> None:
        self.registry.unregister(collector)
        if refresh is not None:
            self.refreshers.remove(refresh)


METRICS = web.AppKey("metrics", NodeMetrics)


def allowed_address(request: web.Request) -> bool:
    """The request comes from an address `metrics.allow` lists."""
    allow = request.app[CONFIG].metrics.allow
    if not allow or request.remote is None:
        return False
    try:
        address = ipaddress.ip_address(request.remote)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net) for net in allow)


READERS = Rule(frozenset(("admin", "metrics")), allow_from=allowed_address)


def setup(app: web.Application) -> None:
    app[METRICS] = NodeMetrics()
    add_route(app, "GET", "/metrics", metrics, READERS)


async def metrics(request: web.Request) -> web.Response:
    node = request.app[METRICS]
    for refresh in node.refreshers:
        await refresh()
    body = generate_latest(node.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


@web.middleware
async def http_metrics(request: web.Request, handler: Handler) -> web.StreamResponse:
    node = request.app.get(METRICS)
    if node is None:
        return await handler(request)
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "(unmatched)"
    started = time.monotonic()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        node.requests.labels(route, request.method, str(status)).inc()
        if status != 101:  # an open WebSocket is not a slow answer
            node.latency.labels(route, request.method).observe(time.monotonic() - started)


async def collectors(app: web.Application) -> AsyncIterator[None]:
    """After the hub, the bus and the viewers exist: their collectors, and the
    loop-lag probe."""
    node = app[METRICS]
    bus = BusCollector(app[BUS], app.get(LINK))
    added: list[tuple[Collector, Refresh | None]] = [
        (HubCollector(app[HUB]), None),
        (WhepCollector(app[WHEP]), None),
        (bus, bus.refresh),
    ]
    for collector, refresh in added:
        node.add(collector, refresh)
    probe = asyncio.create_task(_probe_lag(node.loop_lag), name="loop lag probe")
    yield
    probe.cancel()
    await asyncio.wait([probe])
    for collector, refresh in added:
        node.remove(collector, refresh)


async def _probe_lag(gauge: Gauge) -> None:
    loop = asyncio.get_running_loop()
    seen: deque[tuple[float, float]] = deque()
    while True:
        due = loop.time() + LAG_EVERY
        await asyncio.sleep(LAG_EVERY)
        now = loop.time()
        seen.append((now, max(0.0, now - due)))
        while now - seen[0][0] > LAG_WINDOW:
            seen.popleft()
        gauge.set(max(lag for _, lag in seen))
