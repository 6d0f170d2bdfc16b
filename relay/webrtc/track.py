"""A viewer's track: encoded packets from the hub, never decoded per viewer.

A viewer's tracks hand their RtpWriter (relay/webrtc/rtp_writer.py) the camera's
own H.264 (or the channel's one shared transcode) frame by frame, as RTP payloads
made once per frame for every viewer. Timestamps are rewritten so the cached GOP a
viewer starts with plays at once instead of lagging behind live by its age, and so
a camera that reconnects with a new clock never makes RTP time run backwards.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol, cast

from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from ingest.packet import MediaPacket
from relay.media.hub import FanOut, Subscription, SubscriptionClosed
from relay.webrtc.codecs import frame_payloads
from relay.webrtc.fanout import ticks
from relay.webrtc.rtp_writer import RtpFrame

logger = logging.getLogger(__name__)

MAX_JUMP_SECONDS = 5.0
BACKLOG_RATE = 2_500_000  # bytes/s to a viewer catching up with live: 20 Mbit/s


class Retimer:
    """Maps a source's timestamps to a continuous, strictly rising RTP clock."""

    def __init__(self, clock: int, frame_ticks: int) -> None:
        self.clock = clock
        self.frame_ticks = frame_ticks
        self._offset = 0
        self._last: int | None = None

    def __call__(self, packet: MediaPacket) -> int:
        raw, last = ticks(packet, self.clock), self._last
        if last is None:
            out = raw or 0
        elif raw is None:
            out = last + self.frame_ticks
        else:
            out = raw + self._offset
            if out <= last or out - last > MAX_JUMP_SECONDS * self.clock:
                self._offset = last + self.frame_ticks - raw  # a new clock: carry on
                out = raw + self._offset
        self._last = out
        return out

    def set(self, value: int) -> int:
        self._last, self._offset = value, 0
        return value


class CatchUp:
    """One new viewer's catching up with live, paced.

    A GOP is up to a megabyte; sent in one burst, it overflows the viewer's socket
    buffer. So after its keyframe, which goes at once (the first picture), a viewer
    is sent at most `rate` bytes/s until it has caught up: the rest of the GOP,
    then what came live meanwhile, which would otherwise follow in one burst.
    """

    def __init__(self, rate: float = BACKLOG_RATE) -> None:
        self.rate = rate
        self._next: float | None = None  # loop time this viewer may send again

    async def wait(self, packet: MediaPacket) -> None:
        now = asyncio.get_running_loop().time()
        due = now if self._next is None else max(now, self._next)
        self._next = due + len(packet.data) / self.rate
        if due > now:
            await asyncio.sleep(due - now)


class FrameSink(Protocol):
    """A viewer's writer, as the track sees it: a frame written at once, if it can;
    or all of them from the stream's ViewerGroup (relay/webrtc/fanout.py)."""

    def offer(self, frame: RtpFrame) -> bool: ...

    def join_group(
        self, fanout: FanOut, kind: str, retimer: Retimer, left: Callable[[], None]
    ) -> bool: ...


class PacketTrack(MediaStreamTrack):
    """Hands a viewer's RtpWriter the frames of one subscription, as RTP payloads.

    The cached GOP a video viewer starts with gets consecutive ticks ending at the
    newest cached packet's own time: the browser decodes it at once and shows the
    live picture, instead of playing the GOP out and lagging behind by its age.
    Until the viewer has caught up with live (its queue empty once), it is paced
    (CatchUp). Once live, with a writer that takes frames at once (`sink`), each
    packet is written as the camera's packet is published, without waking the
    writer's task (Subscription.direct).
    """

    def __init__(
        self, kind: str, subscription: Subscription, clock: int, catch_up: float = BACKLOG_RATE
    ) -> None:
        super().__init__()
        self.kind = kind
        self._sub = subscription
        self._retime = Retimer(clock, clock // 25 if kind == "video" else clock // 50)
        backlog = subscription.take_backlog()
        self._squeeze_end = ticks(backlog[-1], clock) if backlog else None
        self._backlog = backlog if self._squeeze_end is not None else []  # until sent
        self._cached = 0  # of it sent
        self._catching_up = bool(self._backlog)
        self._pace = CatchUp(catch_up)
        self.sink: FrameSink | None = None

    async def recv(self) -> RtpFrame:  # type: ignore[override]
        sink = self.sink
        if not self._catching_up and not self._backlog and sink is not None:
            # Only with nothing queued: a queued packet would go from here too, with
            # the sequence numbers the group starts from.
            if (
                not self._sub.parked
                and not self._sub.pending()
                and sink.join_group(self._sub.fanout, self.kind, self._retime, self._left_group)
            ):
                self._sub.park()  # its group sends it every frame from now
            elif not self._sub.parked:
                self._sub.direct = self._direct
        try:
            packet = await self._sub.get()
        except SubscriptionClosed:
            self.stop()
            raise MediaStreamError from None
        ts = self._timestamp(packet)
        if self._catching_up:
            self._catching_up = self._sub.pending() > 0
            await self._pace.wait(packet)
        return self._frame(packet, ts)

    def _left_group(self) -> None:
        """Its writer left its group: packets come to the track again (the next
        tells the writer's task what is wrong, or it joins again)."""
        self._sub.park(False)

    def _direct(self, packet: MediaPacket) -> bool:
        """A live packet, written as it is published; False to queue it (the writer
        cannot send now: its task meets what is wrong). Live, the backlog is sent."""
        sink = self.sink
        if sink is None:
            return False
        try:
            return sink.offer(self._frame(packet, self._retime(packet)))
        except Exception:  # the hub's publish is no place to raise
            logger.exception("a frame to a viewer failed: its writer's task goes on alone")
            self._sub.direct = None
            return True

    def _frame(self, packet: MediaPacket, ts: int) -> RtpFrame:
        made = cast("tuple[list[bytes], dict[Any, Any]] | None", packet.derived.get("rtp-frame"))
        if made is None:  # its payloads, and a place its viewers' writers share
            made = packet.derived["rtp-frame"] = (frame_payloads(packet), {})
        return RtpFrame(made[0], ts, made[1])

    def _timestamp(self, packet: MediaPacket) -> int:
        backlog = self._backlog
        if backlog and packet is backlog[self._cached] and self._squeeze_end is not None:
            self._cached += 1
            ts = self._retime.set(self._squeeze_end - (len(backlog) - self._cached))
            if self._cached == len(backlog):
                self._backlog = []
        else:
            # Live; if the backlog is not all sent, the queue overflowed while
            # catching up and dropped the rest of it.
            self._backlog = []
            ts = self._retime(packet)
        return ts

    def stop(self) -> None:
        super().stop()
        self._sub.direct = None
        self._sub.close()
