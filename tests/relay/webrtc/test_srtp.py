"""A viewer's frame, protected packet after packet into one buffer, in place or not."""

from __future__ import annotations

import os
import struct

import pytest
from aiortc.rtp import RtpPacket
from pylibsrtp import Error, Policy, Session

from relay.webrtc import srtp
from relay.webrtc.srtp import FrameBuffer, KeyedSession

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
    assert frames.packets_protected == len(PAYLOADS), "one protect per packet, no more"
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


PROFILES = {  # what the compiled path protects itself: the profile, its master's length
    "aes-cm-hmac-sha1": (Policy.SRTP_PROFILE_AES128_CM_SHA1_80, 30),
    "aes-128-gcm": (Policy.SRTP_PROFILE_AEAD_AES_128_GCM, 28),
    "aes-256-gcm": (Policy.SRTP_PROFILE_AEAD_AES_256_GCM, 44),
}


def keyed(profile: int, key: bytes, direction: int) -> KeyedSession:
    """A session as aiortc makes them (rtcdtlstransport.py: repeats allowed out)."""
    policy = Policy(key=key, ssrc_type=direction, srtp_profile=profile)
    policy.allow_repeat_tx = direction == Policy.SSRC_ANY_OUTBOUND
    return KeyedSession(policy)


def cpu_flags() -> set[str]:
    with open("/proc/cpuinfo") as info:
        return {f for line in info if line.startswith("flags") for f in line.split()[2:]}


def test_this_machine_protects_what_viewers_negotiate_itself() -> None:
    """AES-GCM (aiortc's) and AES-CM with HMAC-SHA1 (Chromium's) are protected by
    relay/webrtc/_srtp_protect.c wherever the CPU has the instructions, not by
    libsrtp through OpenSSL."""
    flags = cpu_flags()
    for name, (profile, length) in PROFILES.items():
        needs = {"aes", "sha_ni" if name == "aes-cm-hmac-sha1" else "pclmulqdq"}
        assert (profile in srtp.HERE) == (needs <= flags), name
        frames = FrameBuffer(keyed(profile, os.urandom(length), Policy.SSRC_ANY_OUTBOUND))
        cipher = "aes-gcm" if name.endswith("gcm") else name
        assert frames.cipher == (cipher if profile in srtp.HERE else "libsrtp")


def test_only_an_outbound_session_keeps_its_key() -> None:
    profile, length = PROFILES["aes-128-gcm"]
    key = os.urandom(length)
    assert keyed(profile, key, Policy.SSRC_ANY_OUTBOUND).master == key
    assert keyed(profile, key, Policy.SSRC_ANY_INBOUND).master is None
    frames = FrameBuffer(keyed(profile, key, Policy.SSRC_ANY_OUTBOUND), mode="in-place")
    assert frames.cipher == "libsrtp", "only the compiled path protects itself"
    longer = keyed(profile, key + b"more", Policy.SSRC_ANY_OUTBOUND)  # libsrtp reads 28 of it
    assert longer.master is None and FrameBuffer(longer).cipher == "libsrtp"
    assert FrameBuffer(longer).protect(0x90, 96, TAIL, PAYLOADS, 1) > 0


def frames_of(sizes: list[int]) -> list[list[bytes]]:
    return [[os.urandom(size) for size in sizes[i : i + 3]] for i in range(0, len(sizes), 3)]


@pytest.mark.parametrize("name", PROFILES)
@pytest.mark.parametrize(
    ("first", "tail"),
    [
        (0x80, struct.pack("!II", 1, 0xCAFE_F00D)),  # no extension
        (0x90, TAIL),  # abs-send-time
        (0x92, TAIL[:8] + bytes(8) + bytes.fromhex("bede0002 10300000 22aabb00")),  # CSRCs
    ],
    ids=["plain", "extension", "csrc"],
)
def test_protected_here_as_libsrtp_byte_for_byte(name: str, first: int, tail: bytes) -> None:
    """Every payload length about a block's edges, headers of each shape, through two
    sequence number wraps (the rollover counter): the same bytes libsrtp writes, and
    a viewer's libsrtp reads them."""
    profile, length = PROFILES[name]
    if profile not in srtp.HERE:
        pytest.skip(f"this CPU has not what {name} needs: libsrtp protects it")
    key = os.urandom(length)
    here = FrameBuffer(keyed(profile, key, Policy.SSRC_ANY_OUTBOUND), mode="compiled")
    libsrtp = FrameBuffer(keyed(profile, key, Policy.SSRC_ANY_OUTBOUND), here=False)
    assert here.cipher != "libsrtp" and libsrtp.cipher == "libsrtp"
    viewer = keyed(profile, key, Policy.SSRC_ANY_INBOUND)
    head, tag = 4 + len(tail), 10 if name == "aes-cm-hmac-sha1" else 16
    sizes = [0, 1, 15, 16, 17, 31, 48, 55, 56, 63, 64, 65, 100, 119, 120, 127, 128, 129, 1200]
    seq = 65530
    for payloads in frames_of(sizes):
        written = here.protect(first, 96, tail, payloads, seq)
        assert written == libsrtp.protect(first, 96, tail, payloads, seq)
        data, at = here.frame(written), 0
        assert data == libsrtp.frame(written)
        for i, payload in enumerate(payloads):
            end = at + head + len(payload) + tag
            plain = viewer.unprotect(data[at:end])
            assert plain[head:] == payload
            assert plain[2:4] == ((seq + i) & 0xFFFF).to_bytes(2)
            at = end
        seq = (seq + len(payloads)) & 0xFFFF
    many = [b"x"] * 250
    for _ in range(2 * 65536 // len(many)):  # two more wraps, in big frames
        here.protect(first, 96, tail, many, seq)
        libsrtp.protect(first, 96, tail, many, seq)
        seq = (seq + len(many)) & 0xFFFF
    payloads = [os.urandom(700)]
    written = here.protect(first, 96, tail, payloads, seq)
    assert written == libsrtp.protect(first, 96, tail, payloads, seq)
    assert here.frame(written) == libsrtp.frame(written)


@pytest.mark.parametrize("name", [*PROFILES, "libsrtp"])
def test_a_packet_is_protected_again_as_it_was_sent(name: str) -> None:
    """A retransmission without RTX: the packet again under its own index, before or
    after a wrap; never one not sent yet, nor another SSRC's."""
    profile, length = PROFILES.get(name, PROFILES["aes-128-gcm"])
    if name != "libsrtp" and profile not in srtp.HERE:
        pytest.skip(f"this CPU has not what {name} needs: libsrtp protects it")
    session = keyed(profile, os.urandom(length), Policy.SSRC_ANY_OUTBOUND)
    frames = FrameBuffer(session, here=name != "libsrtp")
    tag = 10 if name == "aes-cm-hmac-sha1" else 16
    sent: dict[int, tuple[bytes, bytes]] = {}  # seq -> (packet, as protected)
    seq = 65533
    for _ in range(3):
        payloads = [os.urandom(300), os.urandom(40)]
        data, at = frames.frame(frames.protect(0x90, 96, TAIL, payloads, seq)), 0
        for i, payload in enumerate(payloads):
            marked = 96 | (i == len(payloads) - 1) << 7
            plain = struct.pack("!BBH", 0x90, marked, (seq + i) & 0xFFFF) + TAIL + payload
            sent[(seq + i) & 0xFFFF] = (plain, data[at : at + len(plain) + tag])
            at += len(plain) + tag
        seq = (seq + len(payloads)) & 0xFFFF
    for plain, protected in sent.values():  # 65533 to 2: before the wrap and after
        assert frames.protect_again(plain) == protected
    if name != "libsrtp":
        ahead = struct.pack("!BBH", 0x90, 96, seq) + TAIL + b"new"
        other = bytearray(sent[1][0])
        other[8:12] = b"\x00\x00\x00\x01"
        for bad in (ahead, bytes(other), b"\x80\x60\x00"):
            with pytest.raises(Error):
                frames.protect_again(bad)
