"""Prometheus metrics of the hub: each camera stream's state, rate and health.

A collector reads the channels as they are at scrape time (nothing is counted
twice, nothing kept here); relay/web/metrics.py registers it with the node's own
registry.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ingest.state import SourceState
from relay.media.hub import Hub

STREAM = ["camera", "stream"]


class HubCollector(Collector):
    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        g = {
            "state": GaugeMetricFamily(
                "villagewatch_stream_state",
                "1 for the state the camera stream is in, 0 for the others",
                labels=[*STREAM, "state"],
            ),
            "up": GaugeMetricFamily(
                "villagewatch_stream_up", "1 while the stream is online", labels=STREAM
            ),
            "bitrate": GaugeMetricFamily(
                "villagewatch_stream_bitrate_bits_per_second",
                "video bitrate over the last 5 s",
                labels=STREAM,
            ),
            "fps": GaugeMetricFamily(
                "villagewatch_stream_fps", "video frames a second over the last 5 s", labels=STREAM
            ),
            "age": GaugeMetricFamily(
                "villagewatch_stream_last_packet_age_seconds",
                "seconds since the stream's last packet (absent before the first)",
                labels=STREAM,
            ),
            "gop": GaugeMetricFamily(
                "villagewatch_stream_keyframe_interval_seconds",
                "time between the last two keyframes",
                labels=STREAM,
            ),
            "decoding": GaugeMetricFamily(
                "villagewatch_stream_decoding",
                "1 while the stream's one shared decoder runs (analysis, snapshots, transcode)",
                labels=STREAM,
            ),
            "subs": GaugeMetricFamily(
                "villagewatch_stream_subscribers",
                "consumers of the stream in the hub (viewers, recorders, analysis)",
                labels=STREAM,
            ),
        }
        c = {
            "reconnects": CounterMetricFamily(
                "villagewatch_stream_reconnects",
                "times the source connected again after a failure",
                labels=STREAM,
            ),
            "packets": CounterMetricFamily(
                "villagewatch_stream_packets", "packets received from the camera", labels=STREAM
            ),
            "bytes": CounterMetricFamily(
                "villagewatch_stream_received_bytes", "bytes received", labels=STREAM
            ),
            "dropped": CounterMetricFamily(
                "villagewatch_stream_dropped_packets",
                "packets slow consumers lost (each skips to the next keyframe)",
                labels=STREAM,
            ),
            "decoded": CounterMetricFamily(
                "villagewatch_stream_decoded_frames",
                "frames the stream's shared decoder decoded",
                labels=STREAM,
            ),
            "decoder_dropped": CounterMetricFamily(
                "villagewatch_stream_decoder_dropped_packets",
                "packets the shared decoder was too far behind to take",
                labels=STREAM,
            ),
        }
        now = time.monotonic()
        for channel in list(self.hub.channels.values()):
            labels = [channel.camera.id, channel.stream]
            source, stats = channel.source, channel.source.stats
            for state in SourceState:
                g["state"].add_metric([*labels, str(state)], float(source.state is state))
            g["up"].add_metric(labels, float(source.state is SourceState.ONLINE))
            rates = stats.as_dict(now)
            g["bitrate"].add_metric(labels, float(str(rates["bitrate_kbps"])) * 1000)
            g["fps"].add_metric(labels, float(str(rates["fps"])))
            if stats.last_packet is not None:
                g["age"].add_metric(labels, max(0.0, now - stats.last_packet))
            if stats.keyframe_interval is not None:
                g["gop"].add_metric(labels, stats.keyframe_interval)
            g["subs"].add_metric(labels, len(channel.subscribers))
            c["reconnects"].add_metric(labels, stats.reconnects)
            c["packets"].add_metric(labels, stats.packets)
            c["bytes"].add_metric(labels, stats.bytes)
            c["dropped"].add_metric(labels, channel.dropped)
            pictures = channel.pictures
            g["decoding"].add_metric(labels, float(pictures is not None and pictures.running))
            if pictures is not None:
                c["decoded"].add_metric(labels, pictures.decoded)
                c["decoder_dropped"].add_metric(labels, pictures.dropped)
        yield from g.values()
        yield from c.values()
