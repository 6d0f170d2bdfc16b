"""Prometheus metrics of the alert bus: events by type, feeds, the NATS link."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from relay.bus.bus import AlertBus
from relay.bus.events import TYPES
from relay.bus.nats import NatsLink


class BusCollector(Collector):
    """`refresh()` before a scrape reads what only SQLite knows (the outbox)."""

    def __init__(self, bus: AlertBus, link: NatsLink | None) -> None:
        self.bus = bus
        self.link = link
        self.outbox = 0

    async def refresh(self) -> None:
        if self.link is not None:
            rows = await self.bus.store.db.fetch("SELECT count(*) AS n FROM outbox")
            self.outbox = int(rows[0]["n"])

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        bus = self.bus
        for name, counts, text in (
            ("villagewatch_bus_events_raised", bus.raised, "events raised on this node"),
            ("villagewatch_bus_events_received", bus.received, "new events from the network"),
        ):
            family = CounterMetricFamily(name, text, labels=["type"])
            for event_type in sorted(TYPES | set(counts)):
                family.add_metric([event_type], counts[event_type])
            yield family
        feeds = [feed for log in list(bus.logs.values()) for feed in log.feeds]
        yield GaugeMetricFamily(
            "villagewatch_bus_feeds", "event feeds (WebSockets) open", value=len(feeds)
        )
        lag = max((feed.log.end - feed.place for feed in feeds), default=0)
        yield GaugeMetricFamily(
            "villagewatch_bus_feed_lag_events",
            "events the furthest-behind feed has yet to send",
            value=lag,
        )
        if self.link is None:
            return
        yield GaugeMetricFamily(
            "villagewatch_nats_connected",
            "1 while the NATS link is up",
            value=float(self.link.connected.is_set()),
        )
        yield GaugeMetricFamily(
            "villagewatch_nats_outbox_events",
            "events raised here waiting for JetStream to take them",
            value=self.outbox,
        )
        yield CounterMetricFamily(
            "villagewatch_nats_published_events",
            "events JetStream acknowledged",
            value=self.link.published,
        )
