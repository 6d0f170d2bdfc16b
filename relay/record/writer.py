"""The segment writer: one thread per recorded stream, PyAV's MP4 muxer in it.

The camera's own packets are remuxed, never decoded, into fragmented MP4
(`frag_keyframe+empty_moov+default_base_moof`): a fragment per GOP, written and
flushed as the next keyframe comes, so kill -9 loses at most the fragment being
gathered. A file starts at a keyframe and is named after its wall-clock start in
milliseconds; its media time starts at 0, so start + media time = wall time.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from ingest.packet import MediaPacket
from relay.record import fmp4

logger = logging.getLogger(__name__)

MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof"
MP4_CODECS = {"h264": "h264", "h265": "hevc"}
RETRY_SECONDS = 2.0  # after a write error, try a new file this much later


@dataclass(frozen=True)
class Opened:
    path: Path
    start: float  # wall clock, s
    codec: str


@dataclass(frozen=True)
class Progress:
    path: Path
    end: float  # wall clock of the end of the last complete fragment
    bytes: int


@dataclass(frozen=True)
class Closed:
    path: Path
    end: float
    bytes: int


@dataclass(frozen=True)
class Failed:
    reason: str


WriterEvent = Opened | Progress | Closed | Failed
CUT = "cut"  # end the open file; the next keyframe starts another
STOP = "stop"


def segment_path(root: Path, camera: str, stream: str, start: float) -> Path:
    day = datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%d")
    return root / camera / stream / day / f"{round(start * 1000)}.mp4"


def wall_time(packet: MediaPacket) -> float:
    """When the packet left the demuxer, on the wall clock."""
    return time.time() - (time.monotonic() - packet.received)


class SegmentFile:
    """One open MP4 file."""

    def __init__(self, path: Path, codec: str, packet: MediaPacket, start: float) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.start = start
        self.time_base = packet.time_base
        self.base_pts = packet.pts or 0
        self.last_pts = -1
        self.frame = 0
        self.written = 0  # bytes on disk, after the last complete fragment
        self.fragment_end = start
        self.announced = False  # told to the index
        self._out: Any = av.open(
            str(path), "w", format="mp4", options={"movflags": MOVFLAGS, "flush_packets": "1"}
        )
        self._stream = self._out.add_stream(MP4_CODECS[codec])
        self._stream.time_base = packet.time_base

    def write(self, packet: MediaPacket, pts: int) -> bool:
        """Mux one packet; True if a fragment reached the disk with it."""
        rel = pts - self.base_pts
        out = av.Packet(packet.data)
        out.pts = out.dts = rel
        out.time_base = self.time_base
        out.is_keyframe = packet.keyframe
        out.stream = self._stream
        self._out.mux(out)
        self.last_pts = pts
        size = os.path.getsize(self.path)
        if size > self.written and self.written:
            self.written = size
            self.fragment_end = self.start + float(rel * self.time_base)
            return True
        self.written = size
        return False

    def seconds(self, pts: int) -> float:
        return float((pts - self.base_pts) * self.time_base)

    def close(self) -> float:
        """Finish the file; the wall time it ends at, as its fragments say."""
        self._out.close()
        return self.start + fmp4.scan(self.path).duration

    def abandon(self) -> None:
        try:
            self._out.close()
        except Exception as exc:  # the disk that failed the write fails this too
            logger.debug("closing %s after an error: %s", self.path, exc)


class SegmentWriter:
    """Takes packets from the loop (`put`), writes them in its own thread and
    tells the loop what it did through `on_event` (called on the loop)."""

    def __init__(
        self,
        name: str,
        root: Path,
        *,
        camera: str,
        stream: str,
        segment_seconds: float,
        on_event: Callable[[WriterEvent], None],
        capacity: int = 600,
    ) -> None:
        self.name = name
        self.root, self.camera, self.stream = root, camera, stream
        self.segment_seconds = segment_seconds
        self.codec = "h264"
        self._on_event = on_event
        self._queue: queue.Queue[MediaPacket | str] = queue.Queue(capacity)
        self._loop: Any = None
        self._thread: threading.Thread | None = None
        self._file: SegmentFile | None = None
        self._retry_at = 0.0
        self.dropped = 0

    def start(self, loop: Any) -> None:
        self._loop = loop
        self._thread = threading.Thread(target=self._run, name=f"record-{self.name}", daemon=True)
        self._thread.start()

    def put(self, item: MediaPacket | str) -> bool:
        """False if the writer is behind by its whole queue (the packet is dropped)."""
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1
            return False
        return True

    def stop(self, timeout: float = 5.0) -> None:
        """Blocking: finish the open file and end the thread."""
        if self._thread is None:
            return
        while True:
            try:
                self._queue.put(STOP, timeout=0.1)
                break
            except queue.Full:
                if not self._thread.is_alive():
                    break
        self._thread.join(timeout)
        self._thread = None

    def _tell(self, event: WriterEvent) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody left to tell
            self._loop.call_soon_threadsafe(self._on_event, event)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item == STOP:
                self._close()
                return
            if item == CUT:
                self._close()
            elif isinstance(item, MediaPacket):
                try:
                    self._packet(item)
                except (OSError, av.error.FFmpegError) as exc:
                    self._fail(exc)
                except Exception as exc:  # a packet the muxer cannot take: said, not fatal
                    logger.exception("camera %s: recording failed", self.name)
                    self._fail(exc)

    def _packet(self, packet: MediaPacket) -> None:
        current = self._file
        if current is not None:
            pts = packet.pts
            if pts is None:  # the camera gave no time: one frame after the last
                pts = current.last_pts + round(Fraction(1, 25) / current.time_base)
            full = packet.keyframe and current.seconds(pts) >= self.segment_seconds
            if pts > current.last_pts and not full:
                self._write(current, packet, pts)
                return
            self._close()  # full, or time went back: a new file, never a broken timeline
        # A file starts at a keyframe with a time (the first one after an RTSP
        # connect can come without: its GOP is not recorded).
        first = packet.pts
        if packet.keyframe and first is not None and time.monotonic() >= self._retry_at:
            self._write(self._open(packet), packet, first)

    def _write(self, current: SegmentFile, packet: MediaPacket, pts: int) -> None:
        if current.write(packet, pts):
            self._announce(current)
            self._tell(Progress(current.path, current.fragment_end, current.written))

    def _open(self, packet: MediaPacket) -> SegmentFile:
        start = wall_time(packet)
        path = segment_path(self.root, self.camera, self.stream, start)
        self._file = SegmentFile(path, self.codec, packet, start)
        return self._file

    def _announce(self, current: SegmentFile) -> None:
        """A file is indexed once a fragment of it is on disk: a disk that refuses
        every write leaves no empty files and rows behind, however often it is tried."""
        if not current.announced:
            current.announced = True
            self._tell(Opened(current.path, current.start, self.codec))

    def _close(self) -> None:
        current, self._file = self._file, None
        if current is None:
            return
        try:
            end = current.close()
            size = os.path.getsize(current.path)
        except (OSError, av.error.FFmpegError) as exc:
            self._file = current
            self._fail(exc)
            return
        if size <= current.written and not current.announced:
            current.path.unlink(missing_ok=True)  # closed before its first fragment
            return
        self._announce(current)
        self._tell(Closed(current.path, end, size))

    def _fail(self, exc: BaseException) -> None:
        current, self._file = self._file, None
        if current is not None:
            current.abandon()
            if current.announced:  # what it holds up to its last complete fragment stays
                with contextlib.suppress(OSError):
                    os.truncate(current.path, current.written)
                self._tell(Closed(current.path, current.fragment_end, current.written))
            else:
                with contextlib.suppress(OSError):
                    current.path.unlink(missing_ok=True)
        self._retry_at = time.monotonic() + RETRY_SECONDS
        reason = getattr(exc, "strerror", None) or str(exc)
        logger.warning("camera %s: recording stopped: %s", self.name, reason)
        self._tell(Failed(f"cannot write recordings: {reason}"))
