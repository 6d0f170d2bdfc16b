"""A viewer's RTCP read where it arrives: reports end there, the rest goes on to aiortc."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import aioice.ice
import pytest
from aioice.candidate import Candidate
from aiortc import RTCCertificate, RTCDtlsTransport, RTCIceGatherer, RTCIceTransport
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    AnyRtcpPacket,
    RtcpByePacket,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSdesPacket,
    RtcpSenderInfo,
    RtcpSourceInfo,
    RtcpSrPacket,
    pack_remb_fci,
)
from pylibsrtp import Policy, Session

from relay.webrtc import patches
from relay.webrtc.rtcp_in import RtcpIn, only_reports

SSRC, VIEWER = 0x1111_2222, 0x3333_4444


def compound(*packets: AnyRtcpPacket) -> bytes:
    return b"".join(bytes(p) for p in packets)


RR = RtcpRrPacket(
    ssrc=VIEWER,
    reports=[
        RtcpReceiverInfo(
            ssrc=SSRC, fraction_lost=0, packets_lost=0, highest_sequence=9, jitter=3, lsr=0, dlsr=0
        )
    ],
)
SDES = RtcpSdesPacket(chunks=[RtcpSourceInfo(ssrc=VIEWER, items=[(1, b"viewer")])])
REMB = RtcpPsfbPacket(
    fmt=RTCP_PSFB_APP, ssrc=VIEWER, media_ssrc=0, fci=pack_remb_fci(10**6, [SSRC])
)
PLI = RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=VIEWER, media_ssrc=SSRC)
FIR = RtcpPsfbPacket(fmt=RTCP_PSFB_FIR, ssrc=VIEWER, media_ssrc=SSRC, fci=bytes(8))
NACK = RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=VIEWER, media_ssrc=SSRC, lost=[5, 6])
SR = RtcpSrPacket(
    ssrc=VIEWER,
    sender_info=RtcpSenderInfo(ntp_timestamp=1, rtp_timestamp=2, packet_count=3, octet_count=4),
)
BYE = RtcpByePacket(sources=[VIEWER])


@pytest.mark.parametrize(
    "packets",
    [(RR,), (RR, SDES), (REMB,), (RR, REMB), (PLI,), (FIR,), (RR, SDES, PLI)],
    ids=["rr", "rr+sdes", "remb", "rr+remb", "pli", "fir", "rr+sdes+pli"],
)
def test_reports_and_feedback_for_an_encoder_end_here(packets: tuple[AnyRtcpPacket, ...]) -> None:
    assert only_reports(compound(*packets))


def test_a_padded_report_is_still_one() -> None:
    """RFC 3550 6.4.1: the padding bit, and padding that the length counts."""
    rr = bytearray(compound(RR))
    rr[0] |= 0x20
    rr[2:4] = (int.from_bytes(rr[2:4]) + 1).to_bytes(2)
    assert only_reports(bytes(rr) + b"\0\0\0\x04" + compound(SDES))
    assert not only_reports(bytes(rr)), "its padding missing"


@pytest.mark.parametrize(
    "data",
    [
        compound(NACK),
        compound(RR, NACK),
        compound(RR, SDES, NACK),
        compound(SR),
        compound(SR, SDES),
        compound(BYE),
        compound(RR)[:-4],  # its length runs past the end
        compound(RR) + b"\x81",  # a stray byte after it
        bytes([0x41]) + compound(RR)[1:],  # RTP version 1
        b"",
    ],
    ids=[
        "nack",
        "rr+nack",
        "rr+sdes+nack",
        "sr",
        "sr+sdes",
        "bye",
        "short",
        "stray",
        "v1",
        "empty",
    ],
)
def test_anything_else_goes_on(data: bytes) -> None:
    assert not only_reports(data)


class Keys:
    """A viewer's SRTP and the node's, sharing a key as DTLS would make them."""

    def __init__(self) -> None:
        key = os.urandom(30)
        self.viewer = Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND))
        self.node = Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_INBOUND))


@pytest.fixture
async def dtls() -> Any:
    transport = RTCDtlsTransport(
        RTCIceTransport(RTCIceGatherer()), [RTCCertificate.generateCertificate()]
    )
    passed: list[bytes] = []

    async def handle(data: bytes) -> None:  # aiortc's routing, tested end to end elsewhere
        passed.append(data)

    transport._handle_rtcp_data = handle  # type: ignore[method-assign]
    transport.passed = passed  # type: ignore[attr-defined]
    return transport


async def test_reports_end_here_and_the_rest_goes_on_unprotected(dtls: Any) -> None:
    keys = Keys()
    dtls._rx_srtp = keys.node
    rtcp_in = RtcpIn(dtls)
    reports = [compound(RR, SDES), compound(REMB), compound(PLI)]
    for plain in reports:
        assert rtcp_in(keys.viewer.protect_rtcp(plain))
    nack = compound(RR, NACK)
    assert rtcp_in(keys.viewer.protect_rtcp(nack))
    await asyncio.sleep(0)  # aiortc's handling runs as a task of its own
    assert dtls.passed == [nack], "only the NACK's compound went on, in the clear"
    assert (rtcp_in.reports, rtcp_in.passed) == (3, 1)
    assert dtls._RTCDtlsTransport__rx_packets == 4


async def test_what_is_not_this_sessions_rtcp_is_dropped_or_left_to_aiortc(dtls: Any) -> None:
    keys, other = Keys(), Keys()
    rtcp_in = RtcpIn(dtls)
    protected = keys.viewer.protect_rtcp(compound(NACK))
    assert not rtcp_in(protected), "before DTLS made its keys, aiortc has it"
    dtls._rx_srtp = keys.node
    assert not rtcp_in(keys.viewer.protect(bytes([0x80, 96]) + bytes(10))), "RTP goes on"
    assert rtcp_in(other.viewer.protect_rtcp(compound(NACK))), "another key's: dropped"
    assert rtcp_in(protected)
    assert rtcp_in(protected), "a replay: dropped"
    await asyncio.sleep(0)
    assert len(dtls.passed) == 1
    assert dtls._RTCDtlsTransport__rx_packets == 3, "each counted, as aiortc counts"


async def test_a_sessions_writers_share_its_reader_until_the_last_is_done(dtls: Any) -> None:
    """Video and audio go over one connection: the reader stays while either writes."""
    connection = aioice.ice.Connection(ice_controlling=False)
    video = RtcpIn.attach(connection, dtls)
    audio = RtcpIn.attach(connection, dtls)
    assert audio is video and connection.rtcp_in is video  # type: ignore[attr-defined]
    keys = Keys()
    dtls._rx_srtp = keys.node
    assert video(keys.viewer.protect_rtcp(compound(NACK)))  # aiortc's handling under way
    video.detach(connection)
    assert connection.rtcp_in is video, "audio still writes"  # type: ignore[attr-defined]
    audio.detach(connection)
    assert "rtcp_in" not in connection.__dict__, "its RTCP goes back to aiortc"
    await asyncio.sleep(0)
    assert dtls.passed == [], "what it passed on and aiortc had not begun, stopped"
    again = RtcpIn.attach(connection, dtls)
    assert again is not video, "a session's next writer gets a reader of its own"


async def test_media_skips_the_stun_parser_and_a_viewers_rtcp_goes_to_its_reader() -> None:
    """aioice parses every datagram as STUN first; what cannot be one goes on at
    once: to the connection's `rtcp_in` when it has one, else to its queue."""
    patches.install()
    connection = aioice.ice.Connection(ice_controlling=False)
    protocol = aioice.ice.StunProtocol(connection)
    protocol.local_candidate = Candidate(
        foundation="1",
        component=1,
        transport="udp",
        priority=1,
        host="127.0.0.1",
        port=9,
        type="host",
    )
    rtp, rtcp = bytes([0x80, 96]) + bytes(10), compound(RR)
    protocol.datagram_received(rtp, ("127.0.0.1", 5))
    assert connection._queue.get_nowait() == (rtp, 1)
    taken: list[bytes] = []

    def rtcp_in(data: bytes) -> bool:
        taken.append(data)
        return data[1] == 201

    connection.rtcp_in = rtcp_in  # type: ignore[attr-defined]
    protocol.datagram_received(rtcp, ("127.0.0.1", 5))
    protocol.datagram_received(rtp, ("127.0.0.1", 5))
    assert taken == [rtcp, rtp]
    assert connection._queue.get_nowait() == (rtp, 1), "what it leaves goes on as before"
    assert connection._queue.empty()
    dtls_record = bytes([22, 0xFE, 0xFD]) + bytes(10)
    protocol.datagram_received(dtls_record, ("127.0.0.1", 5))
    assert connection._queue.get_nowait() == (dtls_record, 1)
    assert taken == [rtcp, rtp], "DTLS and STUN never reach it"
