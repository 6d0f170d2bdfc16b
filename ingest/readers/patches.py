"""The one patch to PyAV: a stop interrupts any blocking FFmpeg call at once.

PyAV's FFmpeg interrupt callback asks `av.container.core.time.monotonic()` whether a
blocking call (connect, RTSP handshake, read) has run out of time. Once the calling
thread's source is stopping, every answer is far later than the last, so the call
returns at once: a silent camera cannot hold a stop for its timeout.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import av
import av.container.core

CHECKED_VERSIONS = ("18.", "19.")  # av releases this patch was checked against

_stopping = threading.local()


class _InterruptibleClock:
    def monotonic(self) -> float:
        stop: threading.Event | None = getattr(_stopping, "event", None)
        now = time.monotonic()
        if stop is None or not stop.is_set():
            return now
        _stopping.jump = getattr(_stopping, "jump", 0.0) + 1e6
        return now + float(_stopping.jump)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def install() -> None:
    """Idempotent: the clock is swapped once per process."""
    if getattr(av.container.core, "time", None) is time:
        av.container.core.time = _InterruptibleClock()  # type: ignore[attr-defined]


def interrupt_on(stop: threading.Event) -> None:
    """Blocking PyAV calls in this thread return at once after `stop` is set."""
    _stopping.event = stop


def unchecked_version() -> str | None:
    """av's version if this patch was not checked against it, else None."""
    version = str(av.__version__)
    return None if version.startswith(CHECKED_VERSIONS) else version
