"""What a playback request is served: a segment's init part and its fragments from a moment.

A valid MSE byte stream as it lies in the file: the init part, then the
fragments from the one (a GOP) that holds the moment asked, to the end of what
is complete. Media times stay the file's, so `segment start + media time` is
the recorded wall time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from relay.record import fmp4
from relay.refusal import Refused


@dataclass(frozen=True)
class Part:
    data: bytes
    first: float  # wall time of its first fragment
    last: float  # wall time its last fragment ends
    codec: str  # RFC 6381, as recorded


def read_part(path: Path, segment_start: float, at: float) -> Part:
    """The part of a file from wall time `at` on (blocking: call it off the loop)."""
    layout = fmp4.scan(path)
    frags = layout.from_time(max(0.0, at - segment_start))
    if not frags:
        raise Refused(416, "that moment is past this recording's end")
    with path.open("rb") as f:
        init = f.read(layout.init_end)
        f.seek(frags[0].offset)
        body = f.read(frags[-1].end - frags[0].offset)
    last = frags[-1]
    return Part(
        init + body,
        segment_start + frags[0].start,
        segment_start + last.start + last.duration,
        layout.codec,
    )
