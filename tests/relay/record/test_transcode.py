"""The playback transcoder itself: H.265 fMP4 in, H.264 fMP4 out, and its stop."""

from __future__ import annotations

import asyncio
import io
import threading
from fractions import Fraction

import av
import numpy as np
import pytest

from relay.record.transcode import Transcodes, transcode
from relay.record.writer import MUX_OPTIONS

TIME_BASE = Fraction(1, 90000)
FRAMES = 90


@pytest.fixture(scope="module")
def h265_part() -> bytes:
    """Six seconds of 15 fps H.265 in fMP4 as the recorder writes it, a keyframe a second."""
    out_file = io.BytesIO()
    with av.open(out_file, "w", format="mp4", options=MUX_OPTIONS) as out:
        stream = out.add_stream("libx265", rate=15)
        stream.width, stream.height, stream.pix_fmt = 320, 180, "yuv420p"
        stream.codec_context.time_base = TIME_BASE
        stream.codec_context.options = {"x265-params": "keyint=15:bframes=0:log-level=error"}
        noise = np.random.default_rng(1).integers(0, 255, (270, 320), np.uint8)
        for n in range(FRAMES):
            frame = av.VideoFrame.from_ndarray(np.roll(noise, n * 4, axis=1), format="yuv420p")
            frame.pts, frame.time_base = n * 6000, TIME_BASE
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return out_file.getvalue()


def frames_of(data: bytes) -> list[tuple[str, int | None, bool]]:
    with av.open(io.BytesIO(data), "r") as container:
        return [
            (container.streams.video[0].codec_context.name, f.pts, f.key_frame)
            for f in container.decode(video=0)
        ]


def test_every_frame_comes_out_as_h264_at_its_time_keyframes_kept(h265_part: bytes) -> None:
    chunks: list[bytes] = []
    assert transcode(h265_part, threading.Event(), chunks.append) == FRAMES
    frames = frames_of(b"".join(chunks))
    assert [f[0] for f in frames] == ["h264"] * FRAMES
    assert [f[1] for f in frames] == [n * 6000 for n in range(FRAMES)]
    assert [n for n, f in enumerate(frames) if f[2]] == list(range(0, FRAMES, 15))


def test_a_stop_ends_the_transcode_at_once(h265_part: bytes) -> None:
    stop = threading.Event()

    def emit(_chunk: bytes) -> None:
        stop.set()  # the client went away after the first bytes

    assert transcode(h265_part, stop, emit) < 15


async def test_a_reader_that_goes_away_ends_the_stream_not_the_slot(h265_part: bytes) -> None:
    transcodes = Transcodes()
    stream = transcodes.stream("s", h265_part, limit=1)
    assert (await anext(stream))[4:8] == b"ftyp"
    async with asyncio.timeout(10):
        await stream.aclose()  # waits for the thread, which stops
    assert transcodes.sessions == 1  # the slot is the session's until it ends
    transcodes.end("s")
    assert transcodes.sessions == 0
