"""H.264 Annex-B handling done once per camera frame, never per viewer."""

from __future__ import annotations

from collections.abc import Iterator

START_CODE = b"\x00\x00\x00\x01"
NAL_IDR = 5
NAL_SPS = 7
NAL_PPS = 8


def nal_spans(data: bytes) -> Iterator[tuple[int, int]]:
    """Yield (start, end) of each NAL unit, start codes excluded, of an Annex-B buffer."""
    found = _next_start(data, 0)
    while found is not None:
        payload = found[1]
        found = _next_start(data, payload)
        end = len(data) if found is None else found[0]
        if payload < end:
            yield payload, end


def _next_start(data: bytes, pos: int) -> tuple[int, int] | None:
    """(index of the start code, index of the NAL after it), or None."""
    i = data.find(b"\x00\x00\x01", pos)
    if i < 0:
        return None
    begin = i - 1 if i > 0 and data[i - 1] == 0 else i
    return begin, i + 3


def avcc_to_annexb(extradata: bytes) -> bytes:
    """Convert an avcC record (MP4 style extradata) to Annex-B SPS/PPS."""
    if len(extradata) < 7 or extradata[0] != 1:
        return extradata
    out = bytearray()
    pos = 6
    count = extradata[5] & 0x1F
    for kind in range(2):
        if kind == 1:
            count = extradata[pos]
            pos += 1
        for _ in range(count):
            size = int.from_bytes(extradata[pos : pos + 2], "big")
            pos += 2
            out += START_CODE + extradata[pos : pos + size]
            pos += size
    return bytes(out)


class ParameterSets:
    """Keeps the last SPS/PPS seen and puts them before every IDR that lacks them.

    Cameras send SPS/PPS out of band (SDP), in band only at the start, or before
    each IDR: a viewer that joins at a keyframe needs them there in every case.
    """

    def __init__(self, extradata: bytes = b"") -> None:
        self.sps: bytes | None = None
        self.pps: bytes | None = None
        if extradata:
            self._remember(avcc_to_annexb(extradata))

    def prepare(self, data: bytes) -> tuple[bytes, bool]:
        """Return (access unit with parameter sets before any IDR, has IDR)."""
        has_idr, has_sps, has_pps = self._remember(data)
        if has_idr and not (has_sps and has_pps) and self.sps and self.pps:
            return START_CODE + self.sps + START_CODE + self.pps + data, True
        return data, has_idr

    def _remember(self, data: bytes) -> tuple[bool, bool, bool]:
        has_idr = has_sps = has_pps = False
        for start, end in nal_spans(data):
            kind = data[start] & 0x1F
            if kind == NAL_SPS:
                self.sps, has_sps = data[start:end], True
            elif kind == NAL_PPS:
                self.pps, has_pps = data[start:end], True
            elif kind == NAL_IDR:
                has_idr = True
        return has_idr, has_sps, has_pps
