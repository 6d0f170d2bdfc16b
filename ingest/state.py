"""What a camera source is doing, and how patiently: no PyAV here, so any room
can name a state without loading FFmpeg."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class SourceState(enum.StrEnum):
    IDLE = "idle"  # on-demand and nobody is watching
    STARTING = "starting"
    ONLINE = "online"
    STALLED = "stalled"
    OFFLINE = "offline"


@dataclass(frozen=True)
class SourceSettings:
    connect_timeout: float = 5.0
    stall_timeout: float = 5.0
    backoff_initial: float = 0.5
    backoff_max: float = 10.0
    stop_grace: float = 1.5  # how long stop() waits for the reader thread
