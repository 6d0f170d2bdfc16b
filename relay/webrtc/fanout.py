"""A stream's live WebRTC viewers, each frame sent to all of them in one call.

Once a viewer has caught up with live, what its track and writer do per frame is
the same for every viewer but for a few numbers: its RTP time (a Retimer), its
sequence numbers, its SRTP keys and its address. So instead of a Python call
chain per viewer and frame (the hub's put, the track, the writer), a
`ViewerGroup` (a tap of the stream's fan-out, relay/media/hub.py) hands each
frame to `fan_out` (relay/webrtc/_sendpath.c), which for every viewer in turn
retimes it, writes and protects its packets in the viewer's buffer, sends them
(a sendmsg with UDP_SEGMENT per run), keeps where they lie for a NACK, and counts
them. The viewer's subscription is parked meanwhile.

Python still does, for each viewer, what is not per frame: joining (from the
writer's and track's state) and leaving (back to them), a check every
AUDIT_FRAMES frames that the viewer can still be sent to (DTLS connected, the
same ICE pair and SRTP session; else it leaves, and its writer's task finds out
why), the counts for its sender reports and stats (RtpWriter.sync), the
reports themselves (a round a second, with a frame: no timer per viewer wakes
the node), and the rare frame the kernel did not take at once (a full socket
buffer), which goes through the transport as udp_batch.py sends it.

Viewers that cannot join stay on the per-viewer path: no compiled send path,
no plain socket of their own (TURN, ICE-TCP), or GROUPS off.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from relay.media.hub import FanOut
from relay.webrtc import srtp
from relay.webrtc.codecs import frame_payloads

if TYPE_CHECKING:
    from ingest.packet import MediaPacket

logger = logging.getLogger(__name__)

NTP_EPOCH_OFFSET = 2_208_988_800  # s from 1900 (NTP's epoch) to 1970 (Unix's)
GROUPS = True  # False: every viewer on the per-viewer path (tests compare them)
KEPT = 128  # frames kept for NACKs, as many as _sendpath.c's senders keep
AUDIT_FRAMES = 25  # a second of video
REPORT_SECONDS = 1.0  # between a member's sender reports, as aiortc's on average


def ticks(packet: MediaPacket, clock: int) -> int | None:
    """The packet's time in `clock` units (integer maths: this runs per viewer)."""
    if packet.pts is None:
        return None
    base = packet.time_base
    return packet.pts * base.numerator * clock // base.denominator


def ntp_now() -> int:
    """aiortc's clock.current_ntp_time(), without its datetime objects."""
    return int((time.time() + NTP_EPOCH_OFFSET) * (1 << 32))


class Member:
    """A viewer in a group: its compiled sender, and who to tell (its writer)."""

    __slots__ = ("addr", "batch", "pair", "sender", "sock", "synced", "writer")

    def __init__(self, sender: Any, writer: Any, pair: Any, batch: Any) -> None:
        self.sender = sender
        self.writer = writer
        self.pair = pair
        self.addr = pair.remote_addr
        self.batch = batch
        self.sock = batch._sock
        self.synced = sender.state[4:7]  # packets, octets, bytes the writer has counted


class ViewerGroup:
    """The live viewers of one kind of a stream, sent each frame in one call."""

    def __init__(self, fanout: FanOut, kind: str, clock: int) -> None:
        self.fanout = fanout
        self.kind = kind
        self.clock = clock
        self.members: dict[Any, Member] = {}  # by sender
        self._senders: list[Any] = []
        self.frames: deque[list[bytes]] = deque(maxlen=KEPT)  # the newest frames' payloads
        self.sent = 0  # frames sent: frames[-1] is number sent - 1
        self._audit_in = AUDIT_FRAMES
        self._report_at = 0.0  # monotonic time its members' next sender reports are due
        self.reports = 0  # rounds of them sent

    @classmethod
    def of(cls, fanout: FanOut, kind: str, clock: int) -> ViewerGroup:
        """The stream's group of viewers of this kind and clock, made if need be."""
        key = (cls, kind, clock)
        tap = fanout.taps.get(key)
        group = getattr(tap, "__self__", None)
        if not isinstance(group, ViewerGroup):
            group = cls(fanout, kind, clock)
            fanout.taps[key] = group.publish
        return group

    @staticmethod
    def usable() -> bool:
        return GROUPS and srtp.MODE == "compiled"

    def join(self, sender: Any, writer: Any, pair: Any, batch: Any) -> Member:
        member = self.members[sender] = Member(sender, writer, pair, batch)
        self._senders = [*self._senders, sender]
        return member

    def leave(self, member: Member) -> None:
        if self.members.pop(member.sender, None) is None:
            return
        self._senders = [s for s in self._senders if s is not member.sender]
        if not self.members:  # the frames it keeps go with it
            self.fanout.taps.pop((type(self), self.kind, self.clock), None)

    def publish(self, packet: MediaPacket) -> None:
        if packet.kind != self.kind or not self._senders:
            return
        payloads = frame_payloads(packet)
        self.frames.append(payloads)
        number, self.sent = self.sent, self.sent + 1
        left = srtp.fan_out(self._senders, payloads, ticks(packet, self.clock), ntp_now(), number)
        for sender in left:
            self._python_way(self.members[sender])
        self._audit_in -= 1
        if self._audit_in <= 0:
            self._audit_in = AUDIT_FRAMES
            self.audit()
        now = time.monotonic()
        if now >= self._report_at:
            self._report_at = now + REPORT_SECONDS
            self.report()

    def report(self) -> None:
        """Each member's sender report, sent with a frame: while it was just sent
        one, rather than from a timer of its own that wakes the node (and, on a
        host's loopback, its viewer) once more a second per viewer."""
        self.reports += 1
        for member in list(self.members.values()):
            try:
                member.writer.report()
            except Exception:  # the hub's publish is no place to raise; the others go on
                logger.exception("a sender report to a viewer failed")

    def _python_way(self, member: Member) -> None:
        sender = member.sender
        if sender.error == -1:
            logger.error("a frame to a viewer could not be protected: it leaves its group")
            member.writer.leave_group()
            return
        member.batch.send_left(sender, member.addr)  # a closed socket: it leaves at the audit

    def audit(self) -> None:
        """Those that can no longer be sent to leave (their writers' tasks find out
        why); each writer's counts are brought up to date; a viewer whose frames
        went the Python way since its socket was full goes back to the kernel once
        the transport has sent what it held."""
        for member in list(self.members.values()):
            writer, sender = member.writer, member.sender
            if not writer.still_in(member):
                writer.leave_group()
                continue
            writer.sync()
            batch = member.batch
            if sender.queued and not batch._pending and batch._may_segment():
                sender.queued = False

    def packet(self, member: Member, seq: int) -> tuple[bytes, bool, int, int] | None:
        """A packet this group sent the member, if kept: its payload, whether it
        ended its frame, its RTP time and when it went (NTP)."""
        found = member.sender.lookup(seq)
        if found is None:
            return None
        frame, index, timestamp, ntp = found
        at = frame - (self.sent - len(self.frames))
        if not 0 <= at < len(self.frames):
            return None
        payloads = self.frames[at]
        return payloads[index], index == len(payloads) - 1, timestamp, ntp
