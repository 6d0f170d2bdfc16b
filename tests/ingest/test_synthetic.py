"""The built-in camera: live encoding, and a clip encoded once and looped."""

from __future__ import annotations

import time

import av
import pytest

from ingest.errors import CameraError
from ingest.readers.synthetic import SyntheticReader, parse_url
from tests.helpers import read_packets

LOOPED = "synthetic://160x90?fps=20&keyframe_interval=0.5&bitrate=100&loop=0.7"


def test_a_looped_clip_repeats_its_packets_with_counting_timestamps() -> None:
    reader = SyntheticReader(LOOPED, label="gate")
    start = time.process_time()
    packets = read_packets(reader, 50)  # 2.5 s of a 1 s clip (0.7 s rounded up to 2 GOPs)
    assert time.process_time() - start < 0.5, "replaying encodes nothing"
    clip = 20
    assert [p.data for p in packets[clip : 2 * clip]] == [p.data for p in packets[:clip]]
    assert [p.keyframe for p in packets[:clip]] == [i % 10 == 0 for i in range(clip)]
    assert [p.pts for p in packets] == [i * 4500 for i in range(50)]
    decoder = av.CodecContext.create("h264", "r")
    pictures = [f for p in packets for f in decoder.decode(av.Packet(p.data))]
    assert len(pictures) == 50, "every wrap lands on a keyframe: nothing undecodable"


def test_loop_is_checked() -> None:
    assert parse_url("synthetic://160x90").loop == 0
    for bad in ("loop=x", "loop=-1", "loop=61"):
        with pytest.raises(CameraError):
            parse_url(f"synthetic://160x90?{bad}")
