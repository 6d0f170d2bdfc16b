"""The cascade's HTTP stream: a camera's packets as length-prefixed frames.

A node serves `GET /api/cameras/{id}/stream` as one plain HTTP body (no chunked
encoding: the request is HTTP/1.0, the body ends when the connection does). Each
frame is a 4-byte big-endian length and that many bytes:

- the first frame is the stream's facts: `I` and UTF-8 JSON (StreamInfo);
- every other frame is one packet: `P`, a header (kind, flags, pts, time base),
  the decode time when it differs from pts (B-frames: flag 4, 8 bytes) and the
  packet's bytes as the camera sent them (H.264/H.265 Annex-B untouched).

Both ends live here so that the format has one definition.
"""

from __future__ import annotations

import json
import struct
from fractions import Fraction

from ingest.packet import MediaKind, MediaPacket, StreamInfo

CONTENT_TYPE = "application/x-villagewatch-packets"
LENGTH = struct.Struct("!I")
PACKET = struct.Struct("!cBBqII")  # tag, kind, flags, pts, time base numerator, denominator
DTS = struct.Struct("!q")
MAX_FRAME = 8 * 1024 * 1024  # a 4K keyframe fits; anything larger is a broken stream
_KINDS: tuple[MediaKind, MediaKind] = ("video", "audio")
_KEYFRAME, _HAS_PTS, _HAS_DTS = 1, 2, 4


class WireError(Exception):
    """The peer sent something that is not this format."""


def info_frame(info: StreamInfo) -> bytes:
    facts = {
        **info.as_dict(),
        "audio_sample_rate": info.audio_sample_rate,
        "audio_channels": info.audio_channels,
        "audio_extradata": info.audio_extradata.hex(),
        "extradata": info.extradata.hex(),
    }
    body = b"I" + json.dumps(facts).encode()
    return LENGTH.pack(len(body)) + body


def packet_frame(packet: MediaPacket) -> bytes:
    flags = (_KEYFRAME if packet.keyframe else 0) | (_HAS_PTS if packet.pts is not None else 0)
    if packet.dts is not None:
        flags |= _HAS_DTS
    header = PACKET.pack(
        b"P",
        _KINDS.index(packet.kind),
        flags,
        packet.pts or 0,
        packet.time_base.numerator,
        packet.time_base.denominator,
    )
    if packet.dts is not None:
        header += DTS.pack(packet.dts)
    return LENGTH.pack(len(header) + len(packet.data)) + header + packet.data


def parse_info(body: bytes) -> StreamInfo:
    try:
        facts = json.loads(body[1:])
        return StreamInfo(
            codec=str(facts["codec"]),
            profile=facts.get("profile"),
            width=facts.get("width"),
            height=facts.get("height"),
            fps=facts.get("fps"),
            has_b_frames=bool(facts.get("has_b_frames")),
            audio_codec=facts.get("audio_codec"),
            audio_sample_rate=facts.get("audio_sample_rate"),
            extradata=bytes.fromhex(facts.get("extradata") or ""),
            audio_channels=facts.get("audio_channels"),
            audio_extradata=bytes.fromhex(facts.get("audio_extradata") or ""),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise WireError(f"bad stream facts ({type(exc).__name__})") from None


def parse_packet(body: bytes, received: float) -> MediaPacket:
    if len(body) < PACKET.size:
        raise WireError("short packet frame")
    _tag, kind, flags, pts, num, den = PACKET.unpack_from(body)
    if kind >= len(_KINDS) or num == 0 or den == 0:
        raise WireError("bad packet header")
    start, dts = PACKET.size, None
    if flags & _HAS_DTS:
        if len(body) < start + DTS.size:
            raise WireError("short packet frame")
        (dts,) = DTS.unpack_from(body, start)
        start += DTS.size
    return MediaPacket(
        _KINDS[kind],
        body[start:],
        pts if flags & _HAS_PTS else None,
        Fraction(num, den),
        bool(flags & _KEYFRAME),
        received,
        dts,
    )


class FrameBuffer:
    """Bytes in, whole frames out, however the network cuts them."""

    def __init__(self) -> None:
        self._data = bytearray()

    def feed(self, data: bytes) -> None:
        self._data += data

    def next_frame(self) -> bytes | None:
        if len(self._data) < LENGTH.size:
            return None
        (size,) = LENGTH.unpack_from(self._data)
        if size == 0 or size > MAX_FRAME:
            raise WireError(f"frame of {size} bytes")
        if len(self._data) < LENGTH.size + size:
            return None
        frame = bytes(self._data[LENGTH.size : LENGTH.size + size])
        del self._data[: LENGTH.size + size]
        return frame
