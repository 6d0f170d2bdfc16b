"""Blocking readers that run in a source's own thread, never on the event loop.

`open_reader` picks the reader for a URL: FFmpeg (PyAV) for rtsp:// and http(s)://,
the built-in test pattern for synthetic://, another node's HTTP stream
for peer+http(s)://. All hand out the same packets.
"""

from __future__ import annotations

import threading
from urllib.parse import urlsplit

from ingest.errors import CameraError
from ingest.readers import patches
from ingest.readers.av import AvReader
from ingest.readers.base import POLL_SECONDS, Reader
from ingest.readers.peer import PeerReader
from ingest.readers.synthetic import SyntheticReader

__all__ = ["POLL_SECONDS", "Reader", "open_reader"]


def open_reader(url: str, *, label: str, connect_timeout: float, stop: threading.Event) -> Reader:
    """Open a camera in the calling thread; `stop` interrupts any blocking call in it."""
    patches.install()
    patches.interrupt_on(stop)
    scheme = urlsplit(url).scheme
    if scheme == "synthetic":
        return SyntheticReader(url, label=label)
    if scheme in ("peer+http", "peer+https"):
        return PeerReader(url, connect_timeout=connect_timeout)
    if scheme in ("rtsp", "rtsps", "http", "https"):
        return AvReader(url, connect_timeout=connect_timeout)
    raise CameraError(f"unsupported URL scheme {scheme!r}")
