"""What every reader is: a blocking source of packets, run in its camera's thread."""

from __future__ import annotations

from typing import Protocol

from ingest.packet import MediaPacket, StreamInfo

POLL_SECONDS = 0.5  # how long one read may block, so a stop is seen quickly


class Reader(Protocol):
    info: StreamInfo

    def read(self) -> MediaPacket | None:
        """The next packet, or None when none came within POLL_SECONDS."""

    def close(self) -> None: ...
