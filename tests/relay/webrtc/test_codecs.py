"""A frame's H.264 RTP payloads: the compiled way is the Python way, byte for byte."""

from __future__ import annotations

import os

import pytest
from aiortc.codecs.h264 import PACKET_MAX, H264PayloadDescriptor
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.webrtc import codecs

pytestmark = pytest.mark.skipif(
    codecs.h264_payloads is codecs.h264_payloads_python, reason="not compiled here"
)

# NAL unit sizes about the edges of aiortc's packetization: a STAP-A's room
# (PACKET_MAX - 3), a packet (PACKET_MAX), one and two FU-A fragments.
SIZES = [1, 2, 3, 50, 640, 1294, 1295, 1296, 1297, 1298, 1299, 1300, 1301, 2596, 2597, 2598]


def nal(size: int, header: int) -> bytes:
    """A NAL unit with no start code inside (as emulation prevention makes sure)."""
    return bytes([header]) + bytes(b or 7 for b in os.urandom(size - 1))


units = st.lists(
    st.tuples(
        st.one_of(st.sampled_from(SIZES), st.integers(1, 40)),  # and many small ones
        st.integers(0, 7).map(lambda high: high << 5),  # F and NRI
        st.sampled_from([1, 5, 6, 7, 8, 9, 9, 12]),  # slices, SEI, SPS, PPS, AUD, filler
        st.booleans(),  # a 4-byte start code
    ),
    max_size=20,
)


@settings(max_examples=300, deadline=None)
@given(units, st.booleans())
def test_compiled_payloads_are_the_python_ones(
    frame_units: list[tuple[int, int, int, bool]], trailing_zero: bool
) -> None:
    frame = b"".join(
        (b"\x00\x00\x00\x01" if long else b"\x00\x00\x01") + nal(size, high | kind)
        for size, high, kind, long in frame_units
    ) + (b"\x00" if trailing_zero else b"")
    expected = codecs.h264_payloads_python(frame)
    assert codecs.h264_payloads(frame) == expected
    for payload in expected:  # each fits a packet; aiortc's depacketizer reads it
        assert len(payload) <= PACKET_MAX
        if len(payload) > 1:  # (a unit of its header alone, as end of sequence, it refuses)
            H264PayloadDescriptor.parse(payload)


def test_a_stap_a_holds_at_most_nine_units() -> None:
    frame = b"".join(b"\x00\x00\x01" + nal(20, 0x66) for _ in range(12))
    payloads = codecs.h264_payloads(frame)
    assert payloads == codecs.h264_payloads_python(frame)
    assert [p[0] & 0x1F for p in payloads] == [24, 24], "9 units, then 3"
    assert len(payloads[0]) == 1 + 9 * (2 + 20)


@pytest.mark.parametrize(
    "frame",
    [b"", b"\x00\x00", b"\x01\x02\x03", b"\x00\x00\x01", b"\x00\x00\x01\x00\x00\x01\x65\x88"],
    ids=["empty", "zeros", "no start code", "a start code alone", "an empty unit first"],
)
def test_odd_frames_too(frame: bytes) -> None:
    assert codecs.h264_payloads(frame) == codecs.h264_payloads_python(frame)
