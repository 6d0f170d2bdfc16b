"""A peer's camera stream as one more Channel of this node's hub.

Its source is a CameraSource like any other, reading the peer's HTTP stream
(ingest/readers/peer.py) instead of RTSP: opened at the first viewer here, closed
after the idle grace, once however many viewers this node has. While nobody here
watches, its state is what the peer last reported.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from ingest.readers.peer import UNREACHABLE
from ingest.state import SourceState
from relay.config import CameraConfig, PeerConfig
from relay.media.hub import Channel, HubSettings, StreamName

SEPARATOR = "."  # PEER.CAMERA: a dot is in no local id, so no local id can collide


def stream_url(peer: PeerConfig, remote_id: str, stream: StreamName) -> str:
    scheme, _, rest = peer.url.partition("://")
    return (
        f"peer+{scheme}://node:{quote(peer.token, safe='')}@{rest}"
        f"/api/cameras/{quote(remote_id)}/stream?stream={stream}"
    )


def remote_camera(peer: PeerConfig, report: dict[str, Any], site: str) -> CameraConfig:
    """This node's entry for a camera the peer reported (built, not validated: its id
    and URLs are this module's own and follow no camera's URL rules)."""
    remote_id = str(report["id"])
    streams = report.get("streams") or {}
    return CameraConfig.model_construct(
        id=f"{peer.id}{SEPARATOR}{remote_id}",
        name=str(report.get("name") or remote_id),
        site=site,
        main=stream_url(peer, remote_id, "main"),
        sub=stream_url(peer, remote_id, "sub") if "sub" in streams else None,
        always_on=False,
        idle_timeout=peer.idle_timeout,
        connect_timeout=5.0,
        stall_timeout=5.0,
        backoff_max=5.0,
    )


class RemoteChannel(Channel):
    def __init__(
        self,
        camera: CameraConfig,
        stream: StreamName,
        settings: HubSettings,
        node: str,
        on_state: Callable[[Channel], None],
    ) -> None:
        url = camera.sub if stream == "sub" and camera.sub else camera.main
        super().__init__(camera, stream, url, settings, on_state)
        self.node = node
        self.reachable = True
        self.report: dict[str, Any] = {}  # the peer's last JSON of this camera
        self.report_since = time.time()

    def reported_state(self) -> tuple[SourceState, str | None]:
        if not self.reachable:
            return SourceState.OFFLINE, UNREACHABLE
        own = self.source.state
        if self.source.running and own is not SourceState.STARTING:
            return own, self.source.last_error
        stream = (self.report.get("streams") or {}).get(self.stream) or {}
        try:
            state = SourceState(stream.get("state") or self.report.get("state") or "offline")
        except ValueError:
            state = SourceState.OFFLINE
        return state, stream.get("last_error") or self.report.get("last_error")

    def update_remote(self, camera: CameraConfig, report: dict[str, Any], reachable: bool) -> None:
        """Take the peer's latest word on the camera; the state listeners hear of a
        change of state at once, as of a local camera's."""
        before = self.reported_state()
        self.camera = camera  # its name or site may have changed at the peer
        if reachable != self.reachable:
            self.report_since = time.time()
        self.reachable = reachable
        if reachable:
            self.report = report
        if self.reported_state() != before and self._on_state is not None:
            self._on_state(self)

    def overlay(self) -> dict[str, object]:
        """What the camera list says of it besides its own source's snapshot."""
        out: dict[str, object] = {"node": self.node}
        if isinstance(self.report.get("recording"), dict):  # the peer's recorder
            out["recording"] = self.report["recording"]
        if self.source.running and self.source.state is SourceState.ONLINE:
            return out
        out["last_error"] = self.reported_state()[1]
        if not self.reachable:
            out["state_since"] = round(self.report_since, 3)
        else:
            out["state_since"] = self.report.get("state_since")
        out["last_seen"] = self.report.get("last_seen")
        if self.source.info is None:
            out["info"] = self.report.get("info")
        return out
