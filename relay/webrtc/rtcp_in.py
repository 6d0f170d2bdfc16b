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

So a viewer's session gets an `RtcpIn`, on its aioice connection (where
relay/webrtc/patches.py has aioice's socket look for it), shared by the
session's writers (video and audio go over one connection): a datagram that is
SRTCP is unprotected where it arrives and its packets' headers read; receiver
reports, source descriptions and payload-specific feedback (PLI, FIR, REMB: all
for an encoder) end there, counted. Anything else (a NACK above all, a sender
report, a BYE) goes on to aiortc's own handling, unprotected already, as aiortc
would have handled it.
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
        if first >> 6 != 2 or kind not in _ENDS_HERE:
            return False
        at += 4 + 4 * words
    return at == end and end > 0


class RtcpIn:
    """The RTCP of one viewer's session, as its DTLS transport's SRTP reads it."""

    def __init__(self, dtls: Any) -> None:
        self._dtls = dtls  # an aiortc RTCDtlsTransport
        self._tasks: set[asyncio.Task[None]] = set()  # aiortc's handling, under way
        self.writers = 0  # that attached it
        self.reports = 0  # compound packets ended here
        self.passed = 0  # and passed on to aiortc

    @classmethod
    def attach(cls, connection: Any, dtls: Any) -> RtcpIn:
        """The reader on an aioice connection, made if it has none (or one for
        another DTLS transport), for one more writer."""
        found = connection.__dict__.get("rtcp_in")
        if not isinstance(found, cls) or found._dtls is not dtls:
            found = connection.rtcp_in = cls(dtls)
        found.writers += 1
        return found

    def detach(self, connection: Any) -> None:
        """A writer is done with it: with the last, it leaves the connection (whose
        RTCP goes back to aiortc) and stops what it passed on."""
        self.writers -= 1
        if self.writers > 0:
            return
        if connection.__dict__.get("rtcp_in") is self:
            del connection.rtcp_in
        for task in self._tasks:
            task.cancel()

    def __call__(self, data: bytes) -> bool:
        """Takes an RTP-range datagram (RFC 7983) of the session: False leaves it
        to aiortc, as it came."""
        dtls = self._dtls
        srtp = dtls._rx_srtp
        if srtp is None or not is_rtcp(data):
            return False
        theirs = dtls.__dict__  # counted as aiortc counts: every datagram
        theirs[_RX_BYTES] += len(data)
        theirs[_RX_PACKETS] += 1
        try:
            plain = srtp.unprotect_rtcp(data)
        except pylibsrtp.Error:
            return True  # not this session's, or a replay: aiortc drops it too
        if only_reports(plain):
            self.reports += 1
            return True
        self.passed += 1
        task = asyncio.ensure_future(dtls._handle_rtcp_data(plain))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True
