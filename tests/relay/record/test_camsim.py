"""Real RTSP cameras (camsim): H.264 High, H.265, B-frames and audio, recorded as sent."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import av
import pytest

from camsim import CameraSimulator, MountSpec
from relay.record import fmp4
from relay.web.recordings import RECORDINGS
from tests.conftest import NodeFactory, node_yaml
from tests.relay.record.common import Media, closed_segments, exported, read_media
from tests.test_camsim import open_rtsp

FPS = 15
FRAME = 1 / FPS
MOUNTS = [
    MountSpec("high", profile="high", width=640, height=360, fps=FPS, audio="pcma"),
    MountSpec("hevc", codec="h265", width=640, height=360, fps=FPS),
    MountSpec("bframes", profile="high", bframes=True, width=640, height=360, fps=FPS),
    MountSpec("aac", width=640, height=360, fps=FPS, audio="aac"),
]


@pytest.fixture(scope="module")
def cameras() -> Iterator[CameraSimulator]:
    with CameraSimulator(MOUNTS) as sim:
        yield sim


def camera_yaml(cameras: CameraSimulator, *names: str) -> str:
    return "".join(
        f"  - {{id: {n}, name: {n}, site: village, main: '{cameras.url(n)}'}}\n" for n in names
    )


def sps(extradata: bytes, codec: str) -> bytes:
    """The sequence parameter set in a camera's Annex-B or a file's avcC/hvcC
    extradata: the bytes after its NAL header, which both keep as sent."""
    header = b"\x67" if codec == "h264" else b"\x42\x01"
    at = extradata.find(header)
    assert at >= 0, extradata.hex()
    return extradata[at : at + 12]


def track(path: Path) -> tuple[int, int, bytes]:
    with av.open(str(path)) as container:
        video = container.streams.video[0].codec_context
        return video.width, video.height, bytes(video.extradata or b"")


def camera_track(url: str) -> tuple[int, int, bytes]:
    with open_rtsp(url) as container:
        video = container.streams.video[0].codec_context
        return video.width, video.height, bytes(video.extradata or b"")


def assert_plays(media: Media, duration: float) -> None:
    """Decodable in order, every frame there, and as long as it says."""
    assert media.dts_rise and media.in_order, media
    shown = media.video[1] - media.video[0]
    assert abs(shown - media.frames * FRAME) <= FRAME + 1e-3, media
    assert abs(shown - duration) <= FRAME + 1e-3, (media, duration)


async def test_h264_and_h265_cameras_are_remuxed_as_they_send(
    cameras: CameraSimulator, start_node: NodeFactory
) -> None:
    yaml = camera_yaml(cameras, "high", "hevc")
    node = await start_node(node_yaml(yaml, "storage: {segment_seconds: 5}\n"))
    service = node.app[RECORDINGS]
    for name, codec, entry in (("high", "h264", "avc1.64"), ("hevc", "h265", "hev1")):
        segment = (await closed_segments(service, name, 1))[0]
        assert segment.codec == codec
        path = service.root / segment.path
        layout = await asyncio.to_thread(fmp4.scan, path)
        assert layout.codec.startswith(entry), layout.codec
        media = await asyncio.to_thread(read_media, path)
        assert_plays(media, segment.end - segment.start - media.video[0])
        # the track is described by the camera's own parameter sets and size
        # (not an encoder's defaults): the codec string a player gets is its own
        width, height, extradata = await asyncio.to_thread(track, path)
        c_width, c_height, c_extradata = await asyncio.to_thread(camera_track, cameras.url(name))
        assert (width, height) == (c_width, c_height) == (640, 360)
        assert sps(extradata, codec) == sps(c_extradata, codec)
        if codec == "h264":  # avc1.PPCCLL: profile, constraints, level of its SPS
            assert layout.codec.startswith("avc1." + sps(c_extradata, codec)[1:4].hex())
    # the one with G.711 has AAC beside its video, and says so to MSE
    high = (await closed_segments(service, "high", 1))[0]
    assert (await asyncio.to_thread(fmp4.scan, service.root / high.path)).codec.endswith(
        ",mp4a.40.2"
    )


async def test_a_camera_with_b_frames_is_recorded_and_exported(
    cameras: CameraSimulator, start_node: NodeFactory
) -> None:
    yaml = camera_yaml(cameras, "bframes")
    node = await start_node(node_yaml(yaml, "storage: {segment_seconds: 5}\n"))
    service = node.app[RECORDINGS]
    first, second = (await closed_segments(service, "bframes", 2))[:2]
    assert node.app[RECORDINGS].recorders["bframes"].state == "recording"
    for segment in (first, second):
        media = await asyncio.to_thread(read_media, service.root / segment.path)
        # media time 0 is the first keyframe's decode time; it is shown 2 frames later
        assert 0 < media.video[0] <= 3 * FRAME + 1e-3, media
        assert_plays(media, segment.end - segment.start - media.video[0])
    # the next file's first frame is shown where the last one's ends
    assert abs(second.start + FRAME * 2 - first.end) <= FRAME + 1e-3, (first, second)
    row = await exported(node, "bframes", first.start + 1, second.start + 3)  # across both
    media = await asyncio.to_thread(read_media, service.root / "exports" / f"{row['id']}.mp4")
    assert_plays(media, row["end"] - row["start"])


@pytest.mark.parametrize("mount", ["high", "aac"], ids=["g711-transcoded", "aac-kept"])
async def test_audio_is_recorded_beside_the_video_and_exported(
    cameras: CameraSimulator, start_node: NodeFactory, mount: str
) -> None:
    yaml = camera_yaml(cameras, mount)
    node = await start_node(node_yaml(yaml, "storage: {segment_seconds: 5}\n"))
    service = node.app[RECORDINGS]
    first, second = (await closed_segments(service, mount, 2))[:2]
    paths = [service.root / s.path for s in (first, second)]
    row = await exported(node, mount, first.start + 1, second.start + 3)
    paths.append(service.root / "exports" / f"{row['id']}.mp4")
    for path in paths:
        media = await asyncio.to_thread(read_media, path)
        assert media.audio is not None and media.audio_codec == "aac", (path, media)
        assert abs(media.audio[0] - media.video[0]) < 0.2, (path, media)
        video, audio = media.video[1] - media.video[0], media.audio[1] - media.audio[0]
        assert abs(video - audio) < 0.5, (path, media)
