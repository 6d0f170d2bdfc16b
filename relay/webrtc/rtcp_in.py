"""A viewer's RTCP, read where it arrives.

A viewer sends its node a receiver report (RR, with SDES) and a bitrate estimate
(REMB) about once a second each, and a picture loss indication (PLI) whenever its
decoder wants a keyframe. aiortc takes every one through aioice's STUN parser
(which fails, by an exception), a queue, its DTLS transport's task, pylibsrtp,
and a parser that makes an object per packet, to note a round-trip time in stats
that nothing here reads, or to tell an encoder the node does not have: the
writer (relay/webrtc/rtp_writer.py) passes frames on, and a viewer's next
keyframe is the camera's next. With ten viewers of a 360p camera that was as
much of the node's Python as sending them their frames.

So a writer's session gets an `RtcpIn` (relay/webrtc/patches.py gives aioice's
socket a way to it): a datagram that is SRTCP is unprotected where it arrives and
its packets' headers read; receiver reports, source descriptions and
payload-specific feedback (PLI, FIR, REMB: all for an encoder) end there,
counted. Anything else (a NACK above all, a sender report, a BYE) goes on to
aiortc's own handling, unprotected already, as aiortc would have handled it.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import pylibsrtp
from aiortc.rtp import RTCP_PSFB, RTCP_RR, RTCP_SDES, is_rtcp

_HEAD = struct.Struct("!BBH")  # version, padding, count/format; type; length in words - 1
_ENDS_HERE = (RTCP_RR, RTCP_SDES, RTCP_PSFB)
_RX_BYTES, _RX_PACKETS = "_RTCDtlsTransport__rx_bytes", "_RTCDtlsTransport__rx_packets"


def only_reports(data: bytes) -> bool:
    """Whether a compound RTCP packet (unprotected) holds nothing but receiver
    reports, source descriptions and payload-specific feedback, and is well formed."""
    at, end = 0, len(data)
    while at + 4 <= end:
        first, kind, words = _HEAD.unpack_from(data, at)
        if first >> 6 != 2:
            return False
        if kind not in _ENDS_HERE:
            return False
        at += 4 + 4 * words
    return at == end and end > 0


class RtcpIn:
    """The RTCP of one viewer's session, as its DTLS transport's SRTP reads it."""

    def __init__(self, dtls: Any) -> None:
        self._dtls = dtls  # an aiortc RTCDtlsTransport
        self._tasks: set[asyncio.Task[None]] = set()  # aiortc's handling, under way
        self.reports = 0  # compound packets ended here
        self.passed = 0  # and passed on to aiortc

    def __call__(self, data: bytes) -> bool:
        """Takes an RTP-range datagram (RFC 7983) of the session: False leaves it
        to aiortc, as it came."""
        dtls = self._dtls
        srtp = dtls._rx_srtp
        if srtp is None or not is_rtcp(data):
            return False
        try:
            plain = srtp.unprotect_rtcp(data)
        except pylibsrtp.Error:
            return True  # not this session's, or a replay: aiortc drops it too
        theirs = dtls.__dict__
        theirs[_RX_BYTES] += len(data)
        theirs[_RX_PACKETS] += 1
        if only_reports(plain):
            self.reports += 1
            return True
        self.passed += 1
        task = asyncio.ensure_future(dtls._handle_rtcp_data(plain))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    def close(self) -> None:
        """Stops what it passed on and aiortc has not finished."""
        for task in self._tasks:
            task.cancel()
