"""The recorder: real synthetic cameras into real fMP4 files, read back with PyAV."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import av

from relay.record import fmp4
from relay.web.recordings import RECORDINGS
from tests.conftest import ADMIN, Node, NodeFactory, node_yaml
from tests.relay.record.common import closed_segments

CAMERAS = (
    "  - {id: cam1, name: One, site: village,"
    " main: 'synthetic://320x180?fps=15&keyframe_interval=1'}\n"
    "  - {id: cam2, name: Two, site: village,"
    " main: 'synthetic://320x180?fps=10&keyframe_interval=1'}\n"
)
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
