"""A viewer's frame, protected packet after packet into one buffer, in place or not."""

from __future__ import annotations

import os
import struct

import pytest
from aiortc.rtp import RtpPacket
from pylibsrtp import Policy, Session

from relay.webrtc import srtp
from relay.webrtc.srtp import FrameBuffer

KEY = os.urandom(30)
TAIL = struct.pack("!II", 90_000, 0x1234_5678) + bytes.fromhex("bede0001 10300000")
PAYLOADS = [os.urandom(1200) for _ in range(5)] + [os.urandom(300)]
HEADER = 4 + len(TAIL)
TAG = 10  # AES_CM_128_HMAC_SHA1_80's


def session(direction: int) -> Session:
    return Session(Policy(key=KEY, ssrc_type=direction))


def test_this_machine_protects_in_place_in_compiled_code() -> None:
    """Else every viewer is on a slower path without anyone knowing (setup.sh builds
    the compiled one: setup.py, with the C compiler scripts/setup.sh makes sure of)."""
    assert srtp.IN_PLACE and srtp.COMPILED
    assert FrameBuffer(session(Policy.SSRC_ANY_OUTBOUND)).mode == "compiled"


@pytest.mark.parametrize("mode", srtp.MODES)
def test_a_frame_is_one_run_of_datagrams_a_viewer_can_read(mode: str) -> None:
    frames = FrameBuffer(session(Policy.SSRC_ANY_OUTBOUND), mode=mode)
    assert frames.mode == mode
    length = frames.protect(0x90, 96, TAIL, PAYLOADS, 65534)  # wraps round
    assert frames.libsrtp_calls == len(PAYLOADS), "one libsrtp call per packet, no more"
    assert length == sum(HEADER + len(p) + TAG for p in PAYLOADS)
    written, viewer, at = frames.frame(length), session(Policy.SSRC_ANY_INBOUND), 0
    assert len(written) == length
    for i, payload in enumerate(PAYLOADS):
        end = at + HEADER + len(payload) + TAG
        packet = RtpPacket.parse(viewer.unprotect(written[at:end]))
        assert (packet.sequence_number, packet.payload) == ((65534 + i) & 0xFFFF, payload)
        assert (packet.timestamp, packet.ssrc, packet.payload_type) == (90_000, 0x12345678, 96)
        assert packet.marker == (i == len(PAYLOADS) - 1)
        at = end


def test_every_way_writes_the_same_bytes_and_the_buffer_grows() -> None:
    """A keyframe bigger than the buffer: it grows, and the bytes are the same."""
    big = [os.urandom(1200) for _ in range(80)]
    written = []
    for mode in srtp.MODES:
        frames = FrameBuffer(session(Policy.SSRC_ANY_OUTBOUND), mode=mode)
        first = frames.protect(0x90, 96, TAIL, PAYLOADS, 7)
        second = frames.protect(0x90, 96, TAIL, big, 7 + len(PAYLOADS))
        assert second > 65536
        written.append((first, frames.frame(second)))
    assert written[0] == written[1] == written[2]
