"""The recorder: real synthetic cameras into real fMP4 files, read back with PyAV."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import av
import numpy as np

from ingest.packet import MediaPacket
from ingest.readers.synthetic import SyntheticReader
from relay.record import fmp4
from relay.record.audio import AudioFormat, aac_encoder
from relay.record.writer import Closed, Progress, SegmentWriter, VideoFormat, WriterEvent
from relay.web.recordings import RECORDINGS
from tests.conftest import ADMIN, Node, NodeFactory, node_yaml
from tests.helpers import read_packets
from tests.relay.record.common import closed_segments

CAMERAS = (
    "  - {id: cam1, name: One, site: village,"
    " main: 'synthetic://320x180?fps=15&keyframe_interval=1'}\n"
    "  - {id: cam2, name: Two, site: village,"
    " main: 'synthetic://320x180?fps=10&keyframe_interval=1'}\n"
)
E = TypeVar("E", bound=WriterEvent)
SMALL = "synthetic://320x180?fps=15&keyframe_interval=1"
LARGE = "synthetic://640x360?fps=15&keyframe_interval=1"
STORAGE = "storage: {segment_seconds: 5}\n"


async def get_json(node: Node, path: str) -> Any:
    async with aiohttp.ClientSession(headers=ADMIN) as http, http.get(node.url + path) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def test_two_cameras_record_into_segments_that_cover_the_time(
    start_node: NodeFactory,
) -> None:
    node = await start_node(node_yaml(CAMERAS, STORAGE))
    began = time.time()
    service = node.app[RECORDINGS]
    first, second = (await closed_segments(service, "cam1", 2))[:2]
    assert 4.5 < first.end - first.start < 6.5
    assert abs(second.start - first.end) < 0.2  # one file follows the other, no gap
    assert began - 1 < first.start < began + 3  # wall clock, from the first keyframe
    path = service.root / first.path
    layout = await asyncio.to_thread(fmp4.scan, path)
    assert layout.codec.startswith("avc1.")
    assert all(0.9 < f.duration < 1.1 for f in layout.fragments[:-1])  # 1 s GOPs

    def frames() -> int:
        with av.open(str(path)) as container:
            return sum(1 for _ in container.decode(video=0))

    assert abs(await asyncio.to_thread(frames) - 15 * (first.end - first.start)) <= 2
    await closed_segments(service, "cam2", 2)
    body = await get_json(node, f"/api/cameras/cam2/recordings?since={began - 5}")
    assert body["spans"][0]["end"] - body["spans"][0]["start"] > 9
    assert body["gaps"][0]["end"] == body["spans"][0]["start"]  # before it started
    assert body["recording"]["state"] == "recording"
    camera = await get_json(node, "/api/cameras/cam1")
    assert camera["recording"]["mode"] == "continuous"


async def test_a_camera_that_comes_back_changed_starts_a_file_described_by_it(
    tmp_path: Path,
) -> None:
    """Each file's track is the camera's as its packets came: a size the demuxer
    did not know is read off the first keyframe, and a camera back at another
    size starts another file, even while packets of the old one are queued."""
    small = await asyncio.to_thread(read_packets, SyntheticReader(SMALL, label="a"), 20)
    large = await asyncio.to_thread(read_packets, SyntheticReader(LARGE, label="a"), 20)
    after = (small[-1].pts or 0) + 6000  # time goes on: only the size says "new file"
    large = [replace(p, pts=(p.pts or 0) + after, received=time.monotonic()) for p in large]
    writer, events = started_writer(tmp_path)
    writer.video = VideoFormat("h264")  # size unknown at connect
    assert all(writer.put(p) for p in small)
    writer.video = VideoFormat("h264", 640, 360)
    assert all(writer.put(p) for p in large)
    await asyncio.to_thread(writer.stop)
    files = [(await next_event(events, Closed)).path for _ in range(2)]
    sizes = []
    for path in files:
        with av.open(str(path)) as container:
            video = container.streams.video[0]
            frames = sum(1 for p in container.demux(video) if p.size)
            sizes.append((video.codec_context.width, video.codec_context.height, frames))
    assert sizes == [(320, 180, 20), (640, 360, 20)]


def started_writer(root: Path) -> tuple[SegmentWriter, asyncio.Queue[WriterEvent]]:
    """A writer thread of one stream, and what it tells of, in order."""
    events: asyncio.Queue[WriterEvent] = asyncio.Queue()
    writer = SegmentWriter(
        "a", root, camera="a", stream="main", segment_seconds=60, on_event=events.put_nowait
    )
    writer.start(asyncio.get_running_loop())
    return writer, events


async def next_event(events: asyncio.Queue[WriterEvent], kind: type[E]) -> E:
    """The next event of this kind (within 5 s), the others passed over."""
    async with asyncio.timeout(5):
        while not isinstance(event := await events.get(), kind):
            pass
    return event


async def test_a_fragment_reaches_the_disk_when_the_keyframe_after_it_comes(
    tmp_path: Path,
) -> None:
    """Packets reach the writer thread in batches, but never one held back past
    the keyframe that completes a fragment: it is on disk with nothing after it."""
    packets = await asyncio.to_thread(read_packets, SyntheticReader(SMALL, label="a"), 16)
    assert [p.keyframe for p in packets] == [True] + [False] * 14 + [True]
    writer, events = started_writer(tmp_path)
    writer.video = VideoFormat("h264", 320, 180)
    try:
        assert all(writer.put(p) for p in packets)
        done = await next_event(events, Progress)  # no packet put after the keyframe
        layout = await asyncio.to_thread(fmp4.scan, done.path)
        assert abs(layout.duration - 1.0) < 0.01  # the whole first GOP, 15 frames
    finally:
        await asyncio.to_thread(writer.stop)


def aac_packets(seconds: float, rate: int = 16000) -> tuple[AudioFormat, list[MediaPacket]]:
    """AAC-LC of a tone, as a camera's audio packets (pts in 1/rate from 0)."""
    encoder = aac_encoder(rate, 1)
    encoder.open()
    packets, samples = [], 1024
    for n in range(int(seconds * rate / samples) + 2):
        tone = np.sin(np.arange(n * samples, (n + 1) * samples) * 0.2).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(tone.reshape(1, -1), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = rate, n * samples
        packets += [
            MediaPacket("audio", bytes(p), p.pts, Fraction(1, rate), True, 0.0)
            for p in encoder.encode(frame)
        ]
    fmt = AudioFormat("aac", rate, 1, bytes(encoder.extradata or b""))
    return fmt, packets


async def test_with_audio_a_fragment_reaches_the_disk_as_soon_as_its_audio_has(
    tmp_path: Path,
) -> None:
    """The muxer holds a keyframe until audio of its time has come: the audio
    that follows a keyframe is handed to the thread at once, not with the batch
    after it, so the fragment before the keyframe is on disk straight away."""
    video = await asyncio.to_thread(read_packets, SyntheticReader(SMALL, label="a"), 16)
    fmt, sound = aac_packets(1.2)
    seconds = [(p, float((p.pts or 0) * p.time_base)) for p in [*video, *sound]]
    # in time order, up to the first audio packet after the second keyframe (at 1 s)
    ordered = [p for p, _ in sorted(seconds, key=lambda x: (x[1], x[0].kind == "audio"))]
    last = next(i for i, p in enumerate(ordered) if p.kind == "audio" and (p.seconds or 0) >= 1.0)
    writer, events = started_writer(tmp_path)
    writer.video, writer.audio = VideoFormat("h264", 320, 180), fmt
    try:
        assert all(writer.put(p) for p in ordered[: last + 1])
        done = await next_event(events, Progress)  # nothing put after that audio
        layout = await asyncio.to_thread(fmp4.scan, done.path)
        assert abs(layout.duration - 1.0) < 0.01  # the first GOP, 15 frames
        assert layout.codec.endswith(",mp4a.40.2")
    finally:
        await asyncio.to_thread(writer.stop)
