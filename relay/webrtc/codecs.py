"""H.264 for viewers: which profile to answer with, and a frame's RTP payloads."""

from __future__ import annotations

from collections.abc import Callable

from aiortc import RTCRtpSender
from aiortc.codecs.h264 import PACKET_MAX, H264Encoder
from aiortc.rtcrtpparameters import RTCRtpCodecCapability
from aiortc.sdp import H264Profile, parse_h264_profile_level_id

from ingest.packet import MediaPacket

VIDEO_CLOCK = 90000
NAL_AUD = 9  # access unit delimiter

# For each camera profile (FFmpeg's names), the answer profiles to pass it through
# under, best first: its own, then a profile whose decoders take it too (H.264
# Annex A). High falls back to Main: Debian's Chromium offers no High, only Main
# and High 4:4:4, and its one software decoder plays High sent as Main but no
# frame at all under High 4:4:4 (both tried in tests/relay/web/test_browser.py).
# Level 3.1, as browsers offer: a software decoder does not hold a stream to it.
COMPATIBLE_PROFILES = {
    "Constrained Baseline": ("42e01f", "42001f", "4d001f", "64001f"),
    "Baseline": ("42001f",),
    "Main": ("4d001f", "64001f"),
    "High": ("64001f", "4d001f"),
}


def answer_profile(camera_profile: str | None, offered: set[H264Profile]) -> str | None:
    """The profile-level-id to answer for a camera's H.264, or None: transcode it."""
    for plid in COMPATIBLE_PROFILES.get(camera_profile or "Constrained Baseline", ()):
        if parse_h264_profile_level_id(plid)[0] in offered:
            return plid
    return None


def h264_preferences(plid: str) -> list[RTCRtpCodecCapability]:
    """The H.264 codecs (and their RTX) of one profile, to answer with."""
    wanted = parse_h264_profile_level_id(plid)[0]
    codecs = RTCRtpSender.getCapabilities("video").codecs
    chosen = [
        c
        for c in codecs
        if c.name == "H264"
        and parse_h264_profile_level_id(str(c.parameters.get("profile-level-id")))[0] == wanted
    ]
    return chosen + [c for c in codecs if c.name == "rtx"]


def audio_preferences(codec: str) -> list[RTCRtpCodecCapability]:
    mime = {"pcm_alaw": "audio/PCMA", "pcm_mulaw": "audio/PCMU"}[codec]
    return [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType == mime]


class _EvenFragments(H264Encoder):
    """aiortc's H.264 packetization, but a NAL unit too big for one packet is cut
    into fragments of the largest size and a shorter last one (aiortc evens them
    out to within a byte), so a frame's packets can go to the kernel as one run of
    equal segments (relay/webrtc/udp_batch.py)."""

    @staticmethod
    def _packetize_fu_a(data: bytes) -> list[bytes]:
        return even_fu_a(data, PACKET_MAX - 2)


def even_fu_a(nal: bytes, size: int) -> list[bytes]:
    """FU-A payloads (RFC 6184 5.8) of one NAL unit, `size` bytes of it in each but
    the last."""
    indicator = nal[0] & 0xE0 | 28
    kind = nal[0] & 0x1F
    body = memoryview(nal)[1:]
    last = (len(body) - 1) // size
    return [
        bytes((indicator, kind | (0x80 if i == 0 else 0) | (0x40 if i == last else 0)))
        + body[i * size : (i + 1) * size]
        for i in range(last + 1)
    ]


def frame_payloads(packet: MediaPacket) -> list[bytes]:
    """A packet's RTP payloads: a video frame cut for RTP, an audio frame whole."""
    return rtp_payloads(packet) if packet.kind == "video" else [packet.data]


def rtp_payloads(packet: MediaPacket) -> list[bytes]:
    """The frame split into H.264 RTP payloads (FU-A, STAP-A), once per frame.

    Access unit delimiters are left out: RTP's timestamp and marker bit delimit
    frames, and each would be a packet of its own to every viewer (many cameras
    start every frame with one)."""
    payloads = packet.derived.get("h264-rtp")
    if payloads is None:
        payloads = packet.derived["h264-rtp"] = h264_payloads(packet.data)
    return payloads  # type: ignore[return-value]


def h264_payloads_python(frame: bytes) -> list[bytes]:
    """An Annex-B frame's RTP payloads, by aiortc's packetization (and even FU-A)."""
    nal_units = _EvenFragments._split_bitstream(frame)
    return _EvenFragments._packetize(n for n in nal_units if n and n[0] & 0x1F != NAL_AUD)


def _h264_payloads_compiled(frame: bytes) -> list[bytes]:
    """The same in relay/webrtc/_sendpath.c: a frame's Python cost with a viewer."""
    payloads: list[bytes] = _sendpath.h264_payloads(frame, PACKET_MAX)
    return payloads


h264_payloads: Callable[[bytes], list[bytes]] = h264_payloads_python
try:
    from relay.webrtc import _sendpath  # type: ignore[attr-defined]

    if hasattr(_sendpath, "h264_payloads"):  # (not in one built from older code)
        h264_payloads = _h264_payloads_compiled
except ImportError:  # not built (relay/webrtc/srtp.py)
    pass
