"""Reading the layout of a fragmented MP4 file: its init part and its fragments.

The recorder writes `ftyp moov (moof mdat)*`. A reader needs to know where the
init part ends, where each fragment starts and what media time it covers, so
that playback can serve the init part and the fragments from a moment on, and
the start-up scan can cut a file after kill -9 at its last complete fragment.
Only box headers and the small `moof` boxes are read, never the media.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"mvex", b"moof", b"traf"}


@dataclass(frozen=True)
class Fragment:
    offset: int  # of its moof
    end: int  # just after its mdat
    start: float  # media seconds from the file's start
    duration: float


@dataclass
class Layout:
    init_end: int = 0  # bytes of ftyp + moov
    timescale: int = 90000
    codec: str = ""  # an RFC 6381 codecs string, e.g. avc1.64001e or avc1.64001e,mp4a.40.2
    fragments: list[Fragment] = field(default_factory=list)

    @property
    def complete_end(self) -> int:
        """The end of the last complete fragment (or of the init part)."""
        return self.fragments[-1].end if self.fragments else self.init_end

    @property
    def duration(self) -> float:
        last = self.fragments[-1] if self.fragments else None
        return last.start + last.duration if last else 0.0

    def from_time(self, seconds: float) -> list[Fragment]:
        """The fragments from the one that holds `seconds` on."""
        for i, frag in enumerate(self.fragments):
            if frag.start + frag.duration > seconds:
                return self.fragments[i:]
        return []


def _boxes(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[bytes, int, int]]:
    """(type, payload offset, box end) of each complete box in data[start:end]."""
    end = len(data) if end is None else end
    found, pos = [], start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1 and pos + 16 <= end:
            size, header = struct.unpack_from(">Q", data, pos + 8)[0], 16
        if size < header or pos + size > end:
            break
        found.append((kind, pos + header, pos + size))
        pos += size
    return found


def _find(data: bytes, path: list[bytes], start: int = 0, end: int | None = None) -> int | None:
    """Payload offset of the first box along `path` (e.g. trak, mdia, mdhd)."""
    for kind, payload, box_end in _boxes(data, start, end):
        if kind == path[0]:
            if len(path) == 1:
                return payload
            return _find(data, path[1:], payload, box_end)
    return None


def scan(path: Path) -> Layout:
    """The layout of a file as far as it is complete."""
    layout = Layout()
    with path.open("rb") as f:
        size = f.seek(0, 2)
        pos = 0
        default_duration = 0
        while pos + 8 <= size:
            f.seek(pos)
            head = f.read(16)
            box_size, kind = struct.unpack_from(">I4s", head)
            if box_size == 1 and len(head) >= 16:
                box_size = struct.unpack_from(">Q", head, 8)[0]
            if box_size < 8 or pos + box_size > size:
                break  # cut off mid-box: written up to here
            if kind == b"moov":
                moov = _read(f, pos, box_size)
                layout.timescale, layout.codec, default_duration = _moov(moov)
                layout.init_end = pos + box_size
            elif kind == b"moof":
                moof = _read(f, pos, box_size)
                layout.fragments.append(_fragment(moof, pos, layout.timescale, default_duration))
            elif kind == b"mdat" and layout.fragments:
                last = layout.fragments[-1]
                layout.fragments[-1] = Fragment(
                    last.offset, pos + box_size, last.start, last.duration
                )
            elif kind == b"ftyp":
                layout.init_end = pos + box_size
            pos += box_size
    # A moof whose mdat never made it to disk is not a fragment.
    while layout.fragments and layout.fragments[-1].end <= layout.fragments[-1].offset:
        layout.fragments.pop()
    return layout


def init_codec(data: bytes) -> str | None:
    """The codecs string once `data` (the start of a stream) holds its whole init part."""
    for kind, payload, end in _boxes(data):
        if kind == b"moov":
            return _moov(data[payload - 8 : end])[1]  # the box alone, as scan() passes it
    return None


def _read(f: BinaryIO, pos: int, size: int) -> bytes:
    f.seek(pos)
    return f.read(size)


def _moov(moov: bytes) -> tuple[int, str, int]:
    timescale, codec, default_duration = 90000, "", 0
    mdhd = _find(moov, [b"moov", b"trak", b"mdia", b"mdhd"])
    if mdhd is not None:
        version = moov[mdhd]
        timescale = struct.unpack_from(">I", moov, mdhd + (20 if version == 1 else 12))[0]
    codecs = []
    for kind, payload, end in _boxes(moov, 8):
        stsd = _find(moov, [b"mdia", b"minf", b"stbl", b"stsd"], payload, end)
        if kind == b"trak" and stsd is not None:
            codecs.append(_codec(moov, stsd + 8))
    codec = ",".join(codecs)
    trex = _find(moov, [b"moov", b"mvex", b"trex"])
    if trex is not None:
        default_duration = struct.unpack_from(">I", moov, trex + 12)[0]
    return timescale, codec, default_duration


def _codec(data: bytes, entry: int) -> str:
    """RFC 6381 codecs string of the first sample entry."""
    boxes = _boxes(data, entry)
    if not boxes:
        return ""
    kind, payload, end = boxes[0]
    name = kind.decode("ascii", "replace")
    if kind == b"mp4a":
        return "mp4a.40.2"  # the recorder keeps AAC-LC only
    # A visual sample entry has 78 bytes before its child boxes.
    for child, child_payload, _ in _boxes(data, payload + 78, end):
        if child == b"avcC":
            return f"{name}.{data[child_payload + 1 : child_payload + 4].hex()}"
        if child == b"hvcC":
            profile = data[child_payload + 1] & 0x1F
            level = data[child_payload + 12]
            return f"{name}.{profile}.6.L{level}.B0"
    return name


def _fragment(moof: bytes, offset: int, timescale: int, default_duration: int) -> Fragment:
    """The video track's (track 1) times: from its first frame as shown (decode
    time plus its composition offset, B-frames) for as long as its samples last."""
    base = duration = shift = 0
    for kind, traf, traf_end in _boxes(moof, 8):
        if kind != b"traf":
            continue
        tfhd = _find(moof, [b"tfhd"], traf, traf_end)
        if tfhd is not None and struct.unpack_from(">I", moof, tfhd + 4)[0] != 1:
            continue
        for box, payload, _ in _boxes(moof, traf, traf_end):
            flags = int.from_bytes(moof[payload + 1 : payload + 4], "big")
            if box == b"tfhd" and flags & 0x08:
                # base data offset (0x01) and sample description index (0x02) come first
                skip = 8 + (8 if flags & 0x01 else 0) + (4 if flags & 0x02 else 0)
                default_duration = struct.unpack_from(">I", moof, payload + skip)[0]
            elif box == b"tfdt":
                fmt = ">Q" if moof[payload] == 1 else ">I"
                base = struct.unpack_from(fmt, moof, payload + 4)[0]
            elif box == b"trun":
                shift = shift if duration else _first_offset(moof, payload, flags)
                duration += _trun_duration(moof, payload, flags, default_duration)
        break
    return Fragment(offset, offset, (base + shift) / timescale, duration / timescale)


def _samples_at(payload: int, flags: int) -> int:
    """Where a trun's first sample record starts."""
    return payload + 8 + (4 if flags & 0x01 else 0) + (4 if flags & 0x04 else 0)


def _first_offset(data: bytes, payload: int, flags: int) -> int:
    """The composition offset of a trun's first sample (0 without B-frames)."""
    if not flags & 0x800 or not int(struct.unpack_from(">I", data, payload + 4)[0]):
        return 0
    before = 4 * sum(1 for bit in (0x100, 0x200, 0x400) if flags & bit)
    fmt = ">i" if data[payload] == 1 else ">I"  # version 1: signed offsets
    return int(struct.unpack_from(fmt, data, _samples_at(payload, flags) + before)[0])


def _trun_duration(data: bytes, payload: int, flags: int, default_duration: int) -> int:
    count = int(struct.unpack_from(">I", data, payload + 4)[0])
    pos = _samples_at(payload, flags)
    if not flags & 0x100:
        return count * default_duration
    per_sample = 4 * sum(1 for bit in (0x100, 0x200, 0x400, 0x800) if flags & bit)
    total = 0
    for i in range(count):
        total += int(struct.unpack_from(">I", data, pos + i * per_sample)[0])
    return total
