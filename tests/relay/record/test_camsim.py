"""Real RTSP cameras (camsim): H.264 with G.711 audio and H.265, recorded as sent."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import av
import pytest

from camsim import CameraSimulator, MountSpec
from relay.record import fmp4
from relay.web.recordings import RECORDINGS
from tests.conftest import NodeFactory, node_yaml
from tests.helpers import wait_until
from tests.relay.record.common import closed_segments

MOUNTS = [
    MountSpec("high", profile="high", width=640, height=360, fps=15, audio="pcma"),
    MountSpec("hevc", codec="h265", width=640, height=360, fps=15),
    MountSpec("bframes", profile="high", bframes=True, width=640, height=360, fps=15),
]


@pytest.fixture(scope="module")
def cameras() -> Iterator[CameraSimulator]:
    with CameraSimulator(MOUNTS) as sim:
        yield sim


async def test_h264_and_h265_cameras_are_remuxed_as_they_send(
    cameras: CameraSimulator, start_node: NodeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "relay.record.recorder")
    yaml = "".join(
        f"  - {{id: {n}, name: {n}, site: village, main: '{cameras.url(n)}'}}\n"
        for n in ("high", "hevc")
    )
    node = await start_node(node_yaml(yaml, "storage: {segment_seconds: 5}\n"))
    service = node.app[RECORDINGS]
    for name, codec, entry in (("high", "h264", "avc1.64"), ("hevc", "h265", "hev1")):
        segment = (await closed_segments(service, name, 1))[0]
        assert segment.codec == codec
        path = service.root / segment.path
        layout = await asyncio.to_thread(fmp4.scan, path)
        assert layout.codec.startswith(entry), layout.codec

        def frames(path: str = str(path)) -> int:
            with av.open(path) as container:
                return sum(1 for _ in container.decode(video=0))

        duration = segment.end - segment.start
        assert abs(await asyncio.to_thread(frames) - 15 * duration) <= 3
    assert "its pcm_alaw audio is not recorded (video only)" in caplog.text


async def test_a_camera_with_b_frames_is_a_recorder_error_not_broken_files(
    cameras: CameraSimulator, start_node: NodeFactory
) -> None:
    yaml = f"  - {{id: bf, name: bf, site: village, main: '{cameras.url('bframes')}'}}\n"
    node = await start_node(node_yaml(yaml, "storage: {segment_seconds: 5}\n"))
    recorder = node.app[RECORDINGS].recorders["bf"]
    await wait_until(lambda: recorder.state == "error", 20, "the recorder refuses")
    assert "B-frames" in str(recorder.reason)
    await asyncio.sleep(2)
    assert await node.app[RECORDINGS].segments("bf", 0, 2e9) == []
