"""A viewer's RTP, written a frame at a time from one header.

aiortc's sender makes an RtpPacket object for every packet, stamps it with the
clock twice, serialises its header extensions, and hands it down four coroutines
to the socket. Per viewer and per packet, only the sequence number, the marker
bit, SRTP and the send must differ (DESIGN.md, "Where the time goes"). So an
`RtpWriter` takes the place of an aiortc sender's RTP loop: it serialises a
frame's header once, with aiortc's own code (the negotiated extensions, the
mid, the send time), patches each packet's sequence number and marker into it,
protects the packets and hands the frame to the socket's DatagramBatch
(relay/webrtc/udp_batch.py), which sends it in one or two calls. RTCP stays aiortc's: the
sender's reports are kept up to date here, and a NACKed packet is sent again
from this writer's history.
"""

from __future__ import annotations

import contextlib
import logging
import struct
from typing import Any, NamedTuple

from aiortc import RTCRtpSender, clock
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcdtlstransport import RTCDtlsTransport, State
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpsender import random_sequence_number
from aiortc.rtp import RTP_HISTORY_SIZE, RtpPacket, wrap_rtx
from aiortc.utils import random32

from relay.webrtc.udp_batch import batch_for

logger = logging.getLogger(__name__)


class RtpFrame(NamedTuple):
    """What a viewer's track gives its writer: a frame's payloads, made once for
    every viewer, and its RTP time (from 0; the writer adds its random origin)."""

    payloads: list[bytes]
    timestamp: int


class RtpCounts:
    """What the writers of one camera's viewers sent, kept after they end (metrics)."""

    __slots__ = ("bytes", "nacked", "packets", "retransmitted")

    def __init__(self) -> None:
        self.packets = 0
        self.bytes = 0  # SRTP included
        self.nacked = 0  # packets viewers reported lost
        self.retransmitted = 0  # of them, found in the history and sent again


class RtpWriter:
    """Sends the frames of an RTCRtpSender's track, in place of its RTP loop."""

    def __init__(self, sender: RTCRtpSender, counts: RtpCounts | None = None) -> None:
        self._sender = sender
        self.counts = counts or RtpCounts()
        # seq % RTP_HISTORY_SIZE -> a sent packet's header and (shared) payload
        self._history: dict[int, tuple[bytes, bytes]] = {}
        self._dtls: RTCDtlsTransport | None = None  # what the rest is set with, at run
        self._extensions: Any = None
        self._mid: str | None = None
        self._ssrc = 0
        self._payload_type = 0
        self._seq = self._origin = 0

    @classmethod
    def install(cls, sender: RTCRtpSender, counts: RtpCounts | None = None) -> RtpWriter:
        """Make `sender` send through a writer once it starts (aiortc looks its RTP
        loop and its retransmission up on the instance); it adds to `counts`."""
        writer = cls(sender, counts)
        sender._run_rtp = writer.run  # type: ignore[method-assign]
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
        self._extensions = self._get("rtp_header_extensions_map")
        self._mid, self._ssrc = self._get("mid"), sender._ssrc
        assert codec.payloadType is not None
        self._payload_type = codec.payloadType
        self._seq, self._origin = random_sequence_number(), random32()
        if hasattr(track, "sink"):
            track.sink = self  # once live, the track writes frames as they come
        try:
            while True:
                frame: RtpFrame = await track.recv()
                if self._dtls._state != State.CONNECTED:
                    raise ConnectionError("the viewer's DTLS transport is not connected")
                if self._dtls.transport._connection._nominated.get(1) is None:
                    raise ConnectionError("the viewer's ICE transport is not connected")
                self.write(frame)
        finally:
            if hasattr(track, "sink"):
                track.sink = None

    def ready(self) -> bool:
        """Whether a frame can go out now (else the task finds out why)."""
        dtls = self._dtls
        return (
            dtls is not None
            and dtls._state == State.CONNECTED
            and dtls.transport._connection._nominated.get(1) is not None
        )

    def write(self, frame: RtpFrame) -> None:
        """A frame's packets: one header serialised, each packet's sequence number
        and marker patched in, protected, and handed to the socket's batch."""
        dtls = self._dtls
        assert dtls is not None
        pair = dtls.transport._connection._nominated[1]
        payload_type, seq, history = self._payload_type, self._seq, self._history
        header = RtpPacket(
            payload_type=payload_type, timestamp=(self._origin + frame.timestamp) & 0xFFFFFFFF
        )
        header.ssrc = self._ssrc
        ntp = clock.current_ntp_time()
        header.extensions.abs_send_time = (ntp >> 14) & 0x00FFFFFF
        header.extensions.mid = self._mid
        first, rest = _split(header.serialize(self._extensions))
        protect, batch, addr = dtls._tx_srtp.protect, batch_for(pair.protocol), pair.remote_addr
        last = len(frame.payloads) - 1
        octets = sent = 0
        for i, payload in enumerate(frame.payloads):
            head = first + struct.pack("!BH", payload_type | (i == last) << 7, seq) + rest
            history[seq % RTP_HISTORY_SIZE] = head, payload
            data = protect(head + payload)
            batch.sendto(data, addr)
            octets += len(payload)
            sent += len(data)
            seq = (seq + 1) & 0xFFFF
        self._seq = seq
        self._account(dtls, last + 1, octets, sent, ntp=ntp, timestamp=header.timestamp)

    def _account(
        self,
        dtls: RTCDtlsTransport,
        packets: int,
        octets: int,
        sent: int,
        *,
        ntp: int,
        timestamp: int,
    ) -> None:
        """What aiortc's loop would have noted, for the sender's reports (SR): the
        packets and payload octets of a frame, and when it went; and for the
        transport's stats, what went out, SRTP included."""
        self._set("ntp_timestamp", ntp)
        self._set("rtp_timestamp", timestamp)
        self._set("octet_count", self._get("octet_count") + octets)
        self._set("packet_count", self._get("packet_count") + packets)
        self.counts.packets += packets
        self.counts.bytes += sent
        name = "_RTCDtlsTransport__tx_"
        setattr(dtls, name + "bytes", getattr(dtls, name + "bytes") + sent)
        setattr(dtls, name + "packets", getattr(dtls, name + "packets") + packets)

    async def retransmit(self, sequence_number: int) -> None:
        """Sends a packet the viewer reported lost again (RTX where negotiated)."""
        self.counts.nacked += 1
        sent = self._history.get(sequence_number % RTP_HISTORY_SIZE)
        if sent is None:
            return
        extensions = self._get("rtp_header_extensions_map")
        packet = RtpPacket.parse(sent[0] + sent[1], extensions)
        if packet.sequence_number != sequence_number:
            return
        self.counts.retransmitted += 1
        rtx_payload_type = self._get("rtx_payload_type")
        if rtx_payload_type is not None:
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


def _split(header: bytes) -> tuple[bytes, bytes]:
    """A serialised header around its second to fourth bytes: marker, payload type
    and sequence number, which differ from packet to packet."""
    return header[:1], header[4:]
