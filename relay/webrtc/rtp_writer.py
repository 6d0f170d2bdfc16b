"""A viewer's RTP, written a frame at a time from one header, into one buffer.

aiortc's sender makes an RtpPacket object for every packet, stamps it with the
clock twice, serialises its header extensions, and hands it down four coroutines
to the socket. Per viewer and per packet, only the sequence number, the marker
bit, SRTP and the send must differ (DESIGN.md, "Where the time goes"). So an
`RtpWriter` takes the place of an aiortc sender's RTP loop: its header is
serialised once by aiortc's own code (the negotiated extensions, the mid) and
only the timestamp and the send time change per frame; a frame's packets are
written and protected one after another into the viewer's buffer
(relay/webrtc/srtp.py) and sent from it, a call per run of equal datagrams
(relay/webrtc/udp_batch.py). Its sender reports are packed here too, from the
counts, and a NACKed packet is sent again from this writer's history; the
viewer's own reports end where they arrive (relay/webrtc/rtcp_in.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import struct
from collections import deque
from typing import Any, NamedTuple

import pylibsrtp
from aiortc import RTCRtpSender
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcdtlstransport import RTCDtlsTransport, State
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpsender import random_sequence_number
from aiortc.rtp import (
    RTCP_SR,
    RTP_HISTORY_SIZE,
    RtcpByePacket,
    RtcpSdesPacket,
    RtcpSourceInfo,
    RtpPacket,
    wrap_rtx,
)
from aiortc.utils import random32

from relay.webrtc.fanout import Member, ViewerGroup, ntp_now
from relay.webrtc.rtcp_in import RtcpIn
from relay.webrtc.srtp import FrameBuffer
from relay.webrtc.udp_batch import DatagramBatch, batch_for, frame_runs

logger = logging.getLogger(__name__)


class RtpFrame(NamedTuple):
    """What a viewer's track gives its writer: a frame's payloads, made once for
    every viewer, its RTP time (from 0; the writer adds its random origin), and
    a place shared by its viewers' writers for what they all work out alike."""

    payloads: list[bytes]
    timestamp: int
    shared: dict[Any, Any]


class RtpCounts:
    """What the writers of one camera's viewers sent, kept after they end (metrics).
    Read, they count what the writers in a ViewerGroup sent up to now."""

    __slots__ = ("_bytes", "_packets", "grouped", "nacked", "retransmitted")

    def __init__(self) -> None:
        self._packets = 0
        self._bytes = 0  # SRTP included
        self.nacked = 0  # packets viewers reported lost
        self.retransmitted = 0  # of them, found in the history and sent again
        self.grouped: set[RtpWriter] = set()  # writers whose counts lag until synced

    def add(self, packets: int, sent: int) -> None:
        self._packets += packets
        self._bytes += sent

    @property
    def packets(self) -> int:
        for writer in list(self.grouped):
            writer.sync()
        return self._packets

    @property
    def bytes(self) -> int:
        for writer in list(self.grouped):
            writer.sync()
        return self._bytes


class SentFrame(NamedTuple):
    """A frame as a writer sent it, to send a packet of it again."""

    seq: int  # its first packet's
    rest: bytes  # its headers after the sequence number
    payloads: list[bytes]


class RtpWriter:
    """Sends the frames of an RTCRtpSender's track, in place of its RTP loop."""

    def __init__(self, sender: RTCRtpSender, counts: RtpCounts | None = None) -> None:
        self._sender = sender
        self.counts = counts or RtpCounts()
        self._sent: deque[SentFrame] = deque()  # the newest RTP_HISTORY_SIZE packets' frames
        self._kept = 0  # packets in them
        self._dtls: RTCDtlsTransport | None = None  # what the rest is set with, at run
        self._ice: Any = None  # its aioice Connection
        self._frames: FrameBuffer | None = None
        self._pair: Any = None  # the nominated pair frames went to last,
        self._addr: Any = None  # its remote address
        self._batch: DatagramBatch | None = None  # and its socket's batch
        self._group: ViewerGroup | None = None  # where it is sent from, once live,
        self._member: Member | None = None  # as this member
        self._retimer: Any = None  # with its track's Retimer,
        self._left: Any = None  # and what to call when it leaves
        self._header = HeaderTemplate(0x80, 0, b"")
        self._payload_type = 0
        self._seq = self._origin = 0
        self._sdes = b""  # the source description each report comes with
        self._alone = asyncio.Event()  # set while not in a group: reports from here
        self._alone.set()

    @classmethod
    def install(cls, sender: RTCRtpSender, counts: RtpCounts | None = None) -> RtpWriter:
        """Make `sender` send through a writer once it starts (aiortc looks its RTP
        loop and its retransmission up on the instance); it adds to `counts`."""
        writer = cls(sender, counts)
        sender._run_rtp = writer.run  # type: ignore[method-assign]
        sender._run_rtcp = writer.run_reports  # type: ignore[method-assign]
        sender._retransmit = writer.retransmit  # type: ignore[method-assign]
        return writer

    def _get(self, name: str) -> Any:
        return getattr(self._sender, f"_RTCRtpSender__{name}")

    def _set(self, name: str, value: Any) -> None:
        setattr(self._sender, f"_RTCRtpSender__{name}", value)

    async def run(self, codec: RTCRtpCodecParameters) -> None:
        track = self._sender.track
        self._get("rtp_started").set()
        try:
            if track is not None:
                await self._send_all(track, codec)
        except (ConnectionError, MediaStreamError):
            pass  # the session ended
        except Exception:
            logger.exception("RTP to a viewer failed")
        finally:
            if track is not None:
                track.stop()
            self._get("rtp_exited").set()

    async def _send_all(self, track: Any, codec: RTCRtpCodecParameters) -> None:
        sender = self._sender
        self._dtls = sender.transport
        self._ice = self._dtls.transport._connection
        assert codec.payloadType is not None
        self._payload_type = codec.payloadType
        self._header = HeaderTemplate.of(
            self._get("rtp_header_extensions_map"), self._get("mid"), sender._ssrc
        )
        self._seq, self._origin = random_sequence_number(), random32()
        if hasattr(track, "sink"):
            track.sink = self  # once live, the track writes frames as they come
        rtcp_in = RtcpIn.attach(self._ice, self._dtls)  # shared by a session's writers
        try:
            while True:
                frame: RtpFrame = await track.recv()
                if self._dtls._state != State.CONNECTED:
                    raise ConnectionError("the viewer's DTLS transport is not connected")
                if not self.offer(frame):
                    raise ConnectionError("the viewer's ICE transport is not connected")
        finally:
            rtcp_in.detach(self._ice)
            if hasattr(track, "sink"):
                track.sink = None
            self.leave_group()

    def offer(self, frame: RtpFrame) -> bool:
        """Writes the frame if it can go out now: False if not (the task finds out
        why)."""
        dtls = self._dtls
        if dtls is None or dtls._state is not State.CONNECTED:
            return False
        pair = self._ice._nominated.get(1)
        if pair is None:
            return False
        self._write(dtls, pair, frame)
        return True

    def _write(self, dtls: RTCDtlsTransport, pair: Any, frame: RtpFrame) -> None:
        """A frame's packets, protected one after another into the viewer's buffer
        and sent from it in a call per run of equal datagrams; kept to be sent again,
        and counted for the sender's reports (SR) and the transport's stats."""
        frames = self._frames
        if frames is None or frames.session is not dtls._tx_srtp:
            frames = self._frames = FrameBuffer(dtls._tx_srtp)
        if pair is not self._pair:
            self._pair, self._addr, self._batch = pair, pair.remote_addr, batch_for(pair.protocol)
        seq, payloads, header = self._seq, frame.payloads, self._header
        ntp = ntp_now()
        timestamp = (self._origin + frame.timestamp) & 0xFFFFFFFF
        rest = header.rest(timestamp, ntp)
        length = frames.protect(header.first, self._payload_type, rest, payloads, seq)
        count, shared = len(payloads), frame.shared
        octets = shared.get("octets")
        if octets is None:
            octets = shared["octets"] = sum(map(len, payloads))
        batch = self._batch
        assert batch is not None
        if frames.compiled is not None:
            batch.send_protected(frames.compiled, self._addr)
        else:
            overhead = (length - octets) // count  # the same for every packet of a viewer
            runs = shared.get(overhead)
            if runs is None:
                runs = shared[overhead] = frame_runs([len(p) + overhead for p in payloads])
            batch.send_frame(frames.view[:length], runs, self._addr)
        self._seq = (seq + count) & 0xFFFF
        # Kept: the newest RTP_HISTORY_SIZE packets' frames.
        sent = self._sent
        sent.append(SentFrame(seq, rest, payloads))
        self._kept += count
        while self._kept - len(sent[0].payloads) >= RTP_HISTORY_SIZE:
            self._kept -= len(sent.popleft().payloads)
        # What aiortc's loop would have noted, for the sender's reports (SR): the
        # packets and payload octets of a frame, and when it went; and for the
        # transport's stats, what went out, SRTP included.
        ours, theirs, counts = self._sender.__dict__, dtls.__dict__, self.counts
        ours[_NTP], ours[_RTP] = ntp, timestamp
        ours[_OCTETS] += octets
        ours[_PACKETS] += count
        counts.add(count, length)
        theirs[_TX_BYTES] += length
        theirs[_TX_PACKETS] += count

    def join_group(self, fanout: Any, kind: str, retimer: Any, left: Any) -> bool:
        """Joins the stream's ViewerGroup (relay/webrtc/fanout.py), if this viewer
        can be sent to from there, from the sequence number and RTP time (its
        track's `retimer`) it is at; `left()` is called when it leaves."""
        dtls = self._dtls
        if not ViewerGroup.usable() or dtls is None or dtls._state is not State.CONNECTED:
            return False
        pair = self._ice._nominated.get(1)
        if pair is None:
            return False
        frames = self._frames
        if frames is None or frames.session is not dtls._tx_srtp:
            frames = self._frames = FrameBuffer(dtls._tx_srtp)
        batch = batch_for(pair.protocol)
        if frames.compiled is None or batch._sock is None:
            return False  # TURN, ICE-TCP, or a socket that cannot segment
        header, last = self._header, retimer._last
        frames.compiled.join(
            batch._sock,
            pair.remote_addr,
            header.first,
            self._payload_type,
            header.tail,
            header.abs_send_time,
            self._origin,
            self._seq,
            retimer.clock,
            retimer.frame_ticks,
            retimer._offset,
            last or 0,
            last is not None,
        )
        group = ViewerGroup.of(fanout, kind, retimer.clock)
        self._member = group.join(frames.compiled, self, pair, batch)
        self._alone.clear()
        # What it sent before goes: once the group's sequence numbers wrap round, a
        # NACK would find an old packet under a number the group has used again.
        self._sent.clear()
        self._kept = 0
        self._group, self._retimer, self._left = group, retimer, left
        self.counts.grouped.add(self)
        return True

    def still_in(self, member: Member) -> bool:
        """Whether the group can still send to this viewer as it joined."""
        dtls = self._dtls
        return (
            dtls is not None
            and dtls._state is State.CONNECTED
            and self._ice._nominated.get(1) is member.pair
            and dtls._tx_srtp is member.sender.session
            and member.batch._sock is member.sock
        )

    def leave_group(self) -> None:
        """Leaves its group, if in one: its sequence number and RTP time back here
        and in its track's Retimer, its counts brought up to date."""
        member, group = self._member, self._group
        if member is None or group is None:
            return
        self.sync()
        seq, offset, last, has_last = member.sender.state[:4]
        self._seq = seq
        self._retimer._offset, self._retimer._last = offset, last if has_last else None
        group.leave(member)
        self.counts.grouped.discard(self)
        self._member = self._group = None
        self._alone.set()
        left, self._left = self._left, None
        left()

    def sync(self) -> None:
        """Counts what its group sent for it since the last time: for the sender's
        reports (SR), the transport's stats and the camera's counts."""
        member = self._member
        if member is None:
            return
        packets, octets, sent, ntp, rtp = member.sender.state[4:]
        done_packets, done_octets, done_sent = member.synced
        if packets == done_packets:
            return
        member.synced = (packets, octets, sent)
        ours = self._sender.__dict__
        ours[_NTP], ours[_RTP] = ntp, rtp
        ours[_OCTETS] += octets - done_octets
        ours[_PACKETS] += packets - done_packets
        self.counts.add(packets - done_packets, sent - done_sent)
        assert self._dtls is not None
        theirs = self._dtls.__dict__
        theirs[_TX_BYTES] += sent - done_sent
        theirs[_TX_PACKETS] += packets - done_packets

    async def run_reports(self) -> None:
        """In place of aiortc's RTCP loop: a sender report (SR, with the SDES) every
        0.5 to 1.5 s, as aiortc times them, while the viewer is not in a group (its
        group sends them with its frames: ViewerGroup.publish), and a BYE at the end."""
        sender = self._sender
        self._get("rtcp_started").set()
        ssrc, cname = sender._ssrc, self._get("cname")
        if cname is not None:
            source = RtcpSourceInfo(ssrc=ssrc, items=[(1, cname.encode())])
            self._sdes = bytes(RtcpSdesPacket(chunks=[source]))
        try:
            while True:
                await self._alone.wait()
                await asyncio.sleep(0.5 + random.random())
                if self._member is None:
                    self.report()
        finally:
            try:
                self._send_rtcp(bytes(RtcpByePacket(sources=[ssrc])))
            finally:  # aiortc's stop() waits for it
                self._get("rtcp_exited").set()

    def report(self) -> None:
        """Sends a sender report, packed from the counts as they are now (its
        group's brought up to date first)."""
        self.sync()
        sender = self._sender
        ours = sender.__dict__
        self._send_rtcp(
            _SR.pack(
                0x80,  # version 2, no report blocks: the node receives nothing
                RTCP_SR,
                _SR.size // 4 - 1,
                sender._ssrc,
                ours[_NTP],
                ours[_RTP],
                ours[_PACKETS] & 0xFFFFFFFF,
                ours[_OCTETS] & 0xFFFFFFFF,
            )
            + self._sdes
        )

    def _send_rtcp(self, data: bytes) -> None:
        """Protects and sends a compound RTCP packet."""
        self._send(data, again=False)

    def _send(self, data: bytes, *, again: bool) -> None:
        """Protects and sends an RTCP packet, or `again` an RTP packet sent before,
        if the session is up; one that cannot go is logged, and the next one tried."""
        dtls = self._sender.transport
        pair = dtls.transport._connection._nominated.get(1)
        if dtls._state is not State.CONNECTED or pair is None:
            return
        frames = self._frames
        try:
            if not again:
                protected = dtls._tx_srtp.protect_rtcp(data)
            elif frames is not None and frames.session is dtls._tx_srtp:
                protected = frames.protect_again(data)  # as the first time
            else:  # sent under keys since renewed: the new session's libsrtp
                protected = dtls._tx_srtp.protect(data)
            batch_for(pair.protocol).sendto(protected, pair.remote_addr)
        except (pylibsrtp.Error, OSError):
            logger.exception("RTCP or RTP to a viewer could not be sent")
            return
        theirs = dtls.__dict__
        theirs[_TX_BYTES] += len(protected)
        theirs[_TX_PACKETS] += 1

    async def retransmit(self, sequence_number: int) -> None:
        """Sends a packet the viewer reported lost again (RTX where negotiated)."""
        self.counts.nacked += 1
        data = self._sent_packet(sequence_number)
        if data is None:
            return
        self.counts.retransmitted += 1
        rtx_payload_type = self._get("rtx_payload_type")
        if rtx_payload_type is None:  # the packet itself, protected as it was
            self._send(data, again=True)
            return
        extensions = self._get("rtp_header_extensions_map")
        packet = RtpPacket.parse(data, extensions)
        rtx_seq = self._get("rtx_sequence_number")
        packet = wrap_rtx(
            packet,
            payload_type=rtx_payload_type,
            sequence_number=rtx_seq,
            ssrc=self._sender._rtx_ssrc,
        )
        self._set("rtx_sequence_number", (rtx_seq + 1) & 0xFFFF)
        with contextlib.suppress(ConnectionError):
            await self._sender.transport._send_rtp(packet.serialize(extensions))

    def _sent_packet(self, sequence_number: int) -> bytes | None:
        """The packet of that sequence number as it was sent (before SRTP), if kept."""
        for frame in reversed(self._sent):
            i = (sequence_number - frame.seq) & 0xFFFF
            if i < len(frame.payloads):
                marked = self._payload_type | (i == len(frame.payloads) - 1) << 7
                head = struct.pack("!BBH", self._header.first, marked, sequence_number)
                return head + frame.rest + frame.payloads[i]
        member, group = self._member, self._group
        found = None if member is None or group is None else group.packet(member, sequence_number)
        if found is None:
            return None
        payload, last, timestamp, ntp = found
        marked = self._payload_type | last << 7
        head = struct.pack("!BBH", self._header.first, marked, sequence_number)
        return head + self._header.rest(timestamp, ntp) + payload


_NTP, _RTP = "_RTCRtpSender__ntp_timestamp", "_RTCRtpSender__rtp_timestamp"
_SR = struct.Struct("!BBHIQIII")  # a sender report without report blocks
_OCTETS, _PACKETS = "_RTCRtpSender__octet_count", "_RTCRtpSender__packet_count"
_TX_BYTES, _TX_PACKETS = "_RTCDtlsTransport__tx_bytes", "_RTCDtlsTransport__tx_packets"
_TIME = _ELEMENT = struct.Struct("!I")


class HeaderTemplate(NamedTuple):
    """A viewer's RTP header, as aiortc serialises it, around what changes per frame."""

    first: int  # its first byte
    abs_send_time: int  # where in `tail` the abs-send-time element starts, or -1
    tail: bytes  # after the timestamp: SSRC and extensions

    @classmethod
    def of(cls, extensions: Any, mid: str | None, ssrc: int) -> HeaderTemplate:
        """From aiortc's own serialisation: the negotiated extensions, the mid."""
        marks = []
        for value in (0, 0xFFFFFF):
            header = RtpPacket(ssrc=ssrc)
            header.extensions.abs_send_time = value
            header.extensions.mid = mid
            marks.append(header.serialize(extensions))
        changed = [i for i, (a, b) in enumerate(zip(*marks, strict=True)) if a != b]
        at = changed[0] - 1 - 8 if changed else -1  # its one-byte element header
        return cls(marks[0][0], at, marks[0][8:])

    def rest(self, timestamp: int, ntp: int) -> bytes:
        """The header after the sequence number: timestamp, SSRC and extensions,
        with abs-send-time (6.18 fixed-point seconds) from `ntp`."""
        ext, at = self.tail, self.abs_send_time
        if at < 0:
            return _TIME.pack(timestamp) + ext
        element = ext[at] << 24 | (ntp >> 14) & 0x00FFFFFF
        return _TIME.pack(timestamp) + ext[:at] + _ELEMENT.pack(element) + ext[at + 4 :]
