"""Prometheus metrics of the WebRTC viewers: how many per camera, and their RTP."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from relay.webrtc.service import WhepService

CAMERA = ["camera"]


class WhepCollector(Collector):
    def __init__(self, service: WhepService) -> None:
        self.service = service

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        service = self.service
        viewers = GaugeMetricFamily(
            "villagewatch_camera_viewers", "WebRTC viewers of the camera", labels=CAMERA
        )
        for camera in service.config.cameras:
            viewers.add_metric([camera.id], service.viewers(camera.id))
        yield viewers
        yield GaugeMetricFamily(
            "villagewatch_viewers", "WebRTC viewers of the node", value=len(service.sessions)
        )
        dropped = CounterMetricFamily(
            "villagewatch_viewer_dropped_packets",
            "packets dropped for slow viewers of the camera",
            labels=CAMERA,
        )
        for camera_id, count in service.viewer_dropped().items():
            dropped.add_metric([camera_id], count)
        yield dropped
        families = {
            "packets": ("villagewatch_rtp_sent_packets", "RTP packets sent to viewers"),
            "bytes": ("villagewatch_rtp_sent_bytes", "RTP bytes sent to viewers, SRTP included"),
            "nacked": ("villagewatch_rtp_nacked_packets", "packets viewers reported lost (NACK)"),
            "retransmitted": ("villagewatch_rtp_retransmitted_packets", "NACKed packets resent"),
        }
        for attr, (name, text) in families.items():
            family = CounterMetricFamily(name, text, labels=CAMERA)
            for camera_id, counts in list(service.rtp.items()):
                family.add_metric([camera_id], getattr(counts, attr))
            yield family
