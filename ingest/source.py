"""CameraSource: one supervised task per camera stream, reconnecting for ever.

The blocking reader runs in a thread of its own (one per connection); packets and
facts reach the event loop through `call_soon_threadsafe`, so nothing PyAV does can
block the loop. The task owns the thread: it tells it to stop and waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from ingest.errors import StreamStalled, ambiguous, describe
from ingest.packet import MediaPacket, StreamInfo
from ingest.probe import Answer, probe
from ingest.readers import Reader, open_reader
from ingest.state import SourceSettings, SourceState
from ingest.tasks import cancel_and_wait

logger = logging.getLogger(__name__)

PROBE_SECONDS = 2.0  # how long the server may take to answer the probe after a failed open
Ended = tuple[BaseException, Answer | None]  # why a connection ended, and the probe's answer


@dataclass
class SourceStats:
    packets: int = 0
    bytes: int = 0
    reconnects: int = 0
    online_since: float | None = None
    last_packet: float | None = None
    keyframe_interval: float | None = None
    _last_keyframe: float | None = None
    _window: deque[tuple[float, int]] = field(default_factory=deque)

    WINDOW = 5.0

    def count(self, packet: MediaPacket) -> None:
        now = packet.received
        self.packets += 1
        self.bytes += len(packet.data)
        self.last_packet = now
        if packet.kind != "video":
            return
        self._window.append((now, len(packet.data)))
        while now - self._window[0][0] > self.WINDOW:
            self._window.popleft()
        if packet.keyframe:
            if self._last_keyframe is not None:
                self.keyframe_interval = round(now - self._last_keyframe, 2)
            self._last_keyframe = now

    def as_dict(self, now: float) -> dict[str, object]:
        span = now - self._window[0][0] if self._window else 0.0
        fresh = span > 0.5 and self.last_packet is not None and now - self.last_packet < 2
        size = sum(n for _, n in self._window)
        return {
            "packets": self.packets,
            "bytes": self.bytes,
            "bitrate_kbps": round(size * 8 / span / 1000, 1) if fresh else 0.0,
            "fps": round((len(self._window) - 1) / span, 1) if fresh else 0.0,
            "keyframe_interval": self.keyframe_interval,
            "reconnects": self.reconnects,
            "uptime": round(now - self.online_since, 1) if self.online_since else 0.0,
        }


class CameraSource:
    """Keeps one camera stream coming, through every fault, until stopped."""

    def __init__(
        self,
        source_id: str,
        url: str,
        *,
        label: str,
        settings: SourceSettings,
        on_packet: Callable[[MediaPacket], None],
        on_state: Callable[[CameraSource], None] | None = None,
    ) -> None:
        self.id = source_id
        self._url = url
        self._label = label
        self.settings = settings
        self._on_packet = on_packet
        self._on_state = on_state
        self.state = SourceState.IDLE
        self.state_since = time.time()  # wall clock, for people: "offline since 14:02"
        self.last_error: str | None = None  # why it is not online now
        self.last_failure: str | None = None  # the last fault, kept once online again
        self.last_failure_at: float | None = None  # wall clock
        self.info: StreamInfo | None = None
        self.stats = SourceStats()
        self._task: asyncio.Task[None] | None = None
        self._failures = 0
        self._opened_at: float | None = None

    @property
    def running(self) -> bool:
        return self._task is not None

    def start(self) -> None:
        if self._task is None:
            self._set_state(SourceState.STARTING)
            self._task = asyncio.create_task(self._supervise(), name=f"camera {self.id}")

    async def stop(self) -> None:
        """Stop reading; returns within settings.stop_grace. Safe to call twice."""
        task, self._task = self._task, None
        if task is None:
            return
        await cancel_and_wait(task)
        self.stats.online_since = None
        self._set_state(SourceState.IDLE)

    async def _supervise(self) -> None:
        while True:
            started = time.monotonic()
            self._opened_at = None
            error, answer = await self._connect_and_read()
            connecting = self._opened_at is None
            elapsed = (self._opened_at or time.monotonic()) - started
            message = describe(
                error,
                self._url,
                connecting=connecting,
                elapsed=elapsed,
                timeout=self.settings.connect_timeout,
                answer=answer,
            )
            stalled = isinstance(error, StreamStalled)
            self.stats.online_since = None
            self._set_state(SourceState.STALLED if stalled else SourceState.OFFLINE, message)
            delay = self._next_delay()
            logger.info("camera %s: %s; retrying in %.1f s", self.id, message, delay)
            await asyncio.sleep(delay)
            self.stats.reconnects += 1

    def _next_delay(self) -> float:
        base = self.settings.backoff_initial * 2 ** min(self._failures, 20)
        self._failures += 1
        capped = min(self.settings.backoff_max, base)
        return float(capped * random.uniform(0.5, 1.0))

    async def _connect_and_read(self) -> Ended:
        loop = asyncio.get_running_loop()
        finished: asyncio.Future[Ended] = loop.create_future()
        stop = threading.Event()
        thread = threading.Thread(
            target=self._read_thread, args=(loop, stop, finished), name=f"camera-{self.id}"
        )
        thread.daemon = True  # a DNS lookup cannot be interrupted; never hold up exit
        thread.start()
        try:
            return await asyncio.shield(finished)
        finally:
            stop.set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.stop_grace):
                    await asyncio.shield(finished)
                    # Settled as the thread's last act: it ends a moment later.
                    while thread.is_alive():  # noqa: ASYNC110 - a thread has no awaitable end
                        await asyncio.sleep(0.002)

    def _read_thread(
        self,
        loop: asyncio.AbstractEventLoop,
        stop: threading.Event,
        finished: asyncio.Future[Ended],
    ) -> None:
        error: BaseException = EOFError()
        answer = None
        try:
            reader = open_reader(
                self._url,
                label=self._label,
                connect_timeout=self.settings.connect_timeout,
                stop=stop,
            )
        except Exception as exc:
            error = exc
            if ambiguous(exc):  # ask the server what FFmpeg would not tell
                answer = probe(self._url, min(PROBE_SECONDS, self.settings.connect_timeout), stop)
        else:
            try:
                self._pump(reader, loop, stop)
            except Exception as exc:
                error = exc
            finally:
                reader.close()
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            loop.call_soon_threadsafe(_settle, finished, (error, answer))

    def _pump(self, reader: Reader, loop: asyncio.AbstractEventLoop, stop: threading.Event) -> None:
        info = reader.info
        loop.call_soon_threadsafe(self._opened, info)
        last_video, any_video = time.monotonic(), False
        while not stop.is_set():
            packet = reader.read()
            now = time.monotonic()
            if now - last_video > self.settings.stall_timeout:  # audio alone is not enough
                raise StreamStalled(
                    "stream stopped sending" if any_video else "connected, but no video"
                )
            if packet is None:
                continue
            if packet.kind == "video":
                last_video, any_video = now, True
            if reader.info is not info:
                info = reader.info
                loop.call_soon_threadsafe(self._opened, info)
            loop.call_soon_threadsafe(self._received, packet)

    def _opened(self, info: StreamInfo) -> None:
        self.info = info
        self._opened_at = self._opened_at or time.monotonic()

    def _received(self, packet: MediaPacket) -> None:
        if self._task is None:
            return  # stopped while the packet was on its way
        self.stats.count(packet)
        if self.state is not SourceState.ONLINE:
            self._failures = 0
            self.stats.online_since = packet.received
            self._set_state(SourceState.ONLINE)
        self._on_packet(packet)

    def _set_state(self, state: SourceState, error: str | None = None) -> None:
        changed = state is not self.state or (error and error != self.last_error)
        if state is not self.state:
            self.state_since = time.time()
        self.state = state
        if error:
            self.last_error = self.last_failure = error
            self.last_failure_at = time.time()
        elif state is SourceState.ONLINE:
            self.last_error = None
        if changed:
            if state in (SourceState.OFFLINE, SourceState.STALLED):
                logger.warning("camera %s: %s (%s)", self.id, state, error)
            elif state is SourceState.ONLINE:
                logger.info("camera %s: online", self.id)
            if self._on_state is not None:
                self._on_state(self)

    def snapshot(self) -> dict[str, object]:
        return {
            "state": str(self.state),
            "state_since": round(self.state_since, 3),
            "last_error": self.last_error,
            "last_failure": (
                {"error": self.last_failure, "time": round(self.last_failure_at or 0.0, 3)}
                if self.last_failure
                else None
            ),
            "info": self.info.as_dict() if self.info else None,
            "stats": self.stats.as_dict(time.monotonic()),
        }


def _settle(future: asyncio.Future[Ended], ended: Ended) -> None:
    if not future.done():
        future.set_result(ended)
