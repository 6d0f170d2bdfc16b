"""H.265 recordings played in a browser without HEVC: transcoded once per session.

A real camsim H.265 camera is recorded as it sends; a playback session that says
its browser cannot take H.265 gets H.264 fragments with the recording's own
media times; sessions that transcode are bounded, and free their slot on end.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import av
import pytest

from camsim import CameraSimulator, MountSpec
from relay.record import fmp4
from relay.record.index import Segment
from relay.web.recordings import RECORDINGS, TRANSCODES
from tests.conftest import ADMIN, Node, NodeFactory, log_in, node_yaml
from tests.helpers import wait_until
from tests.relay.record.common import closed_segments
from tests.relay.record.test_playback_browser import until_frames

FPS = 15
HEVC_IN_MSE = """() => ["hvc1.1.6.L93.B0", "hev1.1.6.L93.B0"]
  .some((c) => MediaSource.isTypeSupported(`video/mp4; codecs="${c}"`))"""


@pytest.fixture(scope="module")
def camera() -> Iterator[CameraSimulator]:
    mount = MountSpec("x", codec="h265", fps=FPS, keyframe_interval=1.0, audio="aac")
    with CameraSimulator([mount]) as sim:
        yield sim


async def h265_node(start_node: NodeFactory, camera: CameraSimulator, transcodes: int) -> Node:
    yaml = f"  - {{id: x, name: X, site: village, main: '{camera.url('x')}'}}\n"
    extra = f"storage: {{segment_seconds: 5, playback_transcodes: {transcodes}}}\n"
    return await start_node(node_yaml(yaml, extra))


async def long_segment(node: Node) -> Segment:
    """A closed file of at least 4 s (one cut short by a stall under load will not do)."""
    async with asyncio.timeout(60):
        while True:
            for found in await closed_segments(node.app[RECORDINGS], "x", 1):
                if found.end - found.start >= 4:
                    return found
            await asyncio.sleep(0.5)


async def fetch(node: Node, method: str, path: str, body: Any = None) -> tuple[int, Any, Any]:
    async with (
        aiohttp.ClientSession(headers=ADMIN) as http,
        http.request(method, node.url + path, json=body) as r,
    ):
        data = await (r.json() if r.content_type == "application/json" else r.read())
        return r.status, r.headers, data


async def session(node: Node, at: float, **body: Any) -> str:
    status, _, opened = await fetch(node, "POST", "/api/cameras/x/playback", {"at": at, **body})
    assert status == 201, opened
    return str(opened["session"])


def sound(data: bytes) -> tuple[str, float, float] | None:
    """The audio codec of an MP4 held in `data` and the media times it spans."""
    with av.open(io.BytesIO(data), "r") as container:
        if not container.streams.audio:
            return None
        audio = container.streams.audio[0]
        times = [
            float(p.pts * p.time_base)
            for p in container.demux(audio)
            if p.size and p.pts is not None and p.time_base is not None
        ]
        return audio.codec_context.name, min(times), max(times)


def frames(data: bytes, zero: float) -> tuple[str, list[float]]:
    """The codec and the wall time of every frame of an MP4 held in `data`."""
    with av.open(io.BytesIO(data), "r") as container:
        video = container.streams.video[0]
        times = [zero + float(f.time or 0) for f in container.decode(video)]
        return video.codec_context.name, times


async def test_h265_is_transcoded_to_h264_with_the_recorded_times(
    camera: CameraSimulator, start_node: NodeFactory, tmp_path: Path
) -> None:
    node = await h265_node(start_node, camera, transcodes=1)
    segment = await long_segment(node)
    assert segment.codec == "h265"
    at = segment.start + 2.5  # between keyframes: served from the one before
    path = node.app[RECORDINGS].root / segment.path
    recorded = await asyncio.to_thread(path.read_bytes)
    _, original = frames(recorded, segment.start)
    original = [t for t in original if t >= segment.start + 2.0 - 0.5 / FPS]

    transcoding = await session(node, at, h265=False)
    media = f"/api/cameras/x/segments/{segment.id}?from={at}&session={transcoding}"
    status, headers, data = await fetch(node, "GET", media)
    assert status == 200, data
    assert headers["X-Codec"].startswith("avc1.42"), headers  # Constrained Baseline
    assert headers["X-Codec"] == fmp4.init_codec(data)
    # the camera's AAC comes along as it was recorded, over the same moments
    assert headers["X-Codec"].endswith(",mp4a.40.2"), headers
    heard = await asyncio.to_thread(sound, data)
    assert heard is not None and heard[0] == "aac"
    assert abs(heard[1] + segment.start - original[0]) < 0.2, (heard, original[0])
    assert abs(heard[2] + segment.start - original[-1]) < 0.2, (heard, original[-1])
    codec, times = await asyncio.to_thread(frames, data, segment.start)
    assert codec == "h264"
    assert len(times) == len(original), (len(times), len(original))
    assert max(abs(a - b) for a, b in zip(times, original, strict=True)) < 1 / FPS
    assert abs(float(headers["X-Fragment-Start"]) - original[0]) < 1 / FPS
    # keyframes where the camera put them: the same fragments, at the same media times
    (tmp_path / "served.mp4").write_bytes(data)
    served, source = fmp4.scan(tmp_path / "served.mp4"), fmp4.scan(path)
    assert [f.start for f in served.fragments] == [
        f.start for f in source.from_time(at - segment.start)
    ]

    # a browser that takes H.265 gets the recording as it is
    as_recorded = await session(node, at)
    media = f"/api/cameras/x/segments/{segment.id}?from={at}&session={as_recorded}"
    status, headers, data = await fetch(node, "GET", media)
    assert (status, headers["X-Codec"][:4], data[:8]) == (200, "hev1", recorded[:8])
    assert "X-Transcoded" not in headers


async def test_transcoding_sessions_are_bounded_and_free_their_slot_on_end(
    camera: CameraSimulator, start_node: NodeFactory
) -> None:
    node = await h265_node(start_node, camera, transcodes=1)
    segment = await long_segment(node)
    at = segment.start + 1

    status, _, reason = await fetch(
        node, "POST", "/api/cameras/x/playback", {"at": at, "h265": "no"}
    )
    assert (status, reason) == (
        400,
        b"h265 must be true or false (whether the browser plays H.265)\n",
    )

    first, second = await session(node, at, h265=False), await session(node, at, h265=False)
    media = f"/api/cameras/x/segments/{segment.id}?from={at}&session="
    assert (await fetch(node, "GET", media + first))[0] == 200
    assert (await fetch(node, "GET", media + first))[0] == 200  # a seek: the same slot
    status, headers, reason = await fetch(node, "GET", media + second)
    assert status == 503
    assert b"1 playback sessions are transcoding H.265" in reason
    assert headers["Retry-After"] == "30"
    assert node.app[TRANSCODES].sessions == 1

    assert (await fetch(node, "DELETE", f"/api/playback/{first}"))[0] == 204
    assert node.app[TRANSCODES].sessions == 0
    assert (await fetch(node, "GET", media + second))[0] == 200


@pytest.mark.browser
async def test_chromium_plays_an_h265_recording_from_a_moment(
    camera: CameraSimulator, start_node: NodeFactory, browser: Any
) -> None:
    node = await h265_node(start_node, camera, transcodes=4)
    segment = await long_segment(node)
    at = segment.start + 2.5
    page = await browser.new_page()
    await log_in(page, node, "admin")
    assert not await page.evaluate(HEVC_IN_MSE)  # else this test proves nothing here
    await page.goto(f"{node.url}/playback?camera=x&at={at}")
    state = await until_frames(page, 3, within=30)
    assert abs(state["shown"] - at) < 1.0, (state, at)  # the clock shows the moment asked
    assert node.app[TRANSCODES].sessions == 1
    later = await until_frames(page, state["frames"][0] + 10, within=30)
    assert later["times"][0] > state["times"][0]  # it plays on
    assert later["wall"] - at < 30
    await page.goto(f"{node.url}/")  # leaving the page ends the session and its transcode
    await wait_until(lambda: node.app[TRANSCODES].sessions == 0, 10, "the transcode ends")
    await page.close()
