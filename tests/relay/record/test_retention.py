"""Retention on real files: days, a quota (oldest first, evidence never), a full disk."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from relay.record.index import Segment
from relay.web.recordings import RECORDINGS
from relay.webrtc.client import WhepClient
from tests.conftest import ADMIN, ADMIN_TOKEN, Node, NodeFactory, node_yaml
from tests.helpers import needs_root, wait_until


def camera(cam_id: str, url: str, record: str = "") -> str:
    return f"  - {{id: {cam_id}, name: {cam_id}, site: village, main: '{url}'{record}}}\n"


async def api(node: Node, method: str, path: str, body: Any = None) -> Any:
    async with (
        aiohttp.ClientSession(headers=ADMIN) as http,
        http.request(method, node.url + path, json=body) as r,
    ):
        assert r.status < 300, await r.text()
        return await r.json()


async def all_segments(node: Node, camera_id: str) -> list[Segment]:
    return await node.app[RECORDINGS].segments(camera_id, 0, time.time() + 60)


async def test_quota_deletes_the_oldest_first_never_an_alarm_clip_and_days_expire(
    start_node: NodeFactory,
) -> None:
    url = "synthetic://320x180?fps=10&keyframe_interval=1&bitrate=800"
    cameras = camera("cam1", url, ", record: {pre: 0, post: 3}") + camera(
        "cam2",
        url,
        ", record: {retention_days: 0.0001}",  # 8.64 s
    )
    storage = (
        "storage: {segment_seconds: 5, check_seconds: 1, min_free_gb: 0,"
        " min_free_percent: 0, max_gb: 0.0006}\n"
    )
    node = await start_node(node_yaml(cameras, storage))
    service = node.app[RECORDINGS]
    seen: dict[str, Segment] = {}

    async def watch(until: float) -> list[Segment]:
        while True:
            now = await all_segments(node, "cam1")
            seen.update({s.path: s for s in now if not s.open})
            if time.time() > until:
                return now
            await asyncio.sleep(0.2)

    await wait_until(lambda: service.recorders["cam1"].state == "recording", 20, "recording")
    await watch(time.time() + 6)
    alarm = await api(node, "POST", "/api/events", {"type": "alarm", "camera": "cam1"})
    await watch(time.time() + 35)  # room for a stall under load: two deleted at least
    now = await watch(time.time())
    kept = {s.path for s in now}
    locked = [s for s in seen.values() if s.start < alarm["time"] + 3 and s.end > alarm["time"]]
    assert locked and all(s.path in kept for s in locked), "an alarm clip was deleted"
    deleted = [s for s in seen.values() if s.path not in kept]
    assert len(deleted) >= 2, (service.report, [(s.start, s.bytes) for s in now])
    assert all(not (service.root / s.path).exists() for s in deleted)
    unlocked_kept = [s for s in now if s not in locked and not s.open]
    # the oldest went first: every deleted file is older than every unlocked one kept
    assert all(d.start < k.start for d in deleted for k in unlocked_kept)
    body = await api(node, "GET", f"/api/cameras/cam1/recordings?since={alarm['time'] - 60}")
    assert any(e["kind"] == "alarm" and e["ref"] == alarm["id"] for e in body["evidence"])
    # cam2 keeps about 8.6 s
    cam2 = [s for s in await all_segments(node, "cam2") if not s.open]
    assert all(s.end > time.time() - 8.64 - 2.5 for s in cam2)
    info = await api(node, "GET", "/api/cameras/cam2")
    assert 0 < info["recording"]["days_kept"] < 0.0004


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir()
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True
        )
    except (subprocess.CalledProcessError, FileNotFoundError):
        needs_root("cannot mount a tmpfs here (needs root)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.mark.slow
async def test_a_full_disk_is_a_recorder_error_live_plays_and_recording_resumes(
    start_node: NodeFactory, tmp_path: Path
) -> None:
    with tmpfs(tmp_path / "disk", "6m") as disk:
        filler = disk / "filler"
        filler.write_bytes(bytes(4_500_000))
        url = "synthetic://640x360?fps=15&keyframe_interval=1&bitrate=2500"
        storage = (
            f"storage: {{path: '{disk}', segment_seconds: 60, check_seconds: 1,"
            " min_free_gb: 0, min_free_percent: 0}\n"
        )
        node = await start_node(node_yaml(camera("cam1", url), storage))
        recorder = node.app[RECORDINGS].recorders["cam1"]
        await wait_until(lambda: recorder.state == "error", 40, "the disk fills")
        assert "No space left on device" in str(recorder.reason)
        info = await api(node, "GET", "/api/cameras/cam1")
        assert info["state"] == "online"  # the camera is fine
        assert info["recording"]["state"] == "error"
        health = await api(node, "GET", "/api/health")
        assert health["recording"]["in_error"] == 1
        async with aiohttp.ClientSession() as http:  # live video still plays
            client = WhepClient(f"{node.url}/whep/cam1", token=ADMIN_TOKEN)
            try:
                await client.connect(http)
                async with asyncio.timeout(15):
                    await client.first_frame()
                await wait_until(lambda: client.watch.frames >= 20, 10, "20 live frames")
            finally:
                await client.close(http)
        full = await all_segments(node, "cam1")
        await asyncio.to_thread(filler.unlink)  # space comes back
        await wait_until(lambda: recorder.state == "recording", 20, "recording resumes")
        await wait_until(lambda: recorder.open_segment is not None, 10)
        again = await all_segments(node, "cam1")
        assert len(again) > len(full)
        assert again[-1].start > full[-1].end  # the time it could not write is a gap


async def test_events_mode_keeps_only_what_an_alarm_locked(start_node: NodeFactory) -> None:
    url = "synthetic://320x180?fps=10&keyframe_interval=1"
    cameras = camera("cam1", url, ", record: {mode: events, pre: 1, post: 2}")
    storage = "storage: {segment_seconds: 5, check_seconds: 1}\n"
    node = await start_node(node_yaml(cameras, storage))
    service = node.app[RECORDINGS]
    await wait_until(lambda: service.recorders["cam1"].state == "recording", 20, "recording")
    await asyncio.sleep(6)
    alarm = await api(node, "POST", "/api/events", {"type": "alarm", "camera": "cam1"})
    await asyncio.sleep(16)
    closed = [s for s in await all_segments(node, "cam1") if not s.open]
    assert closed, "the alarm's files were deleted"
    for s in closed:  # every file kept overlaps the alarm's clip, or is too young to go
        assert (
            s.start < alarm["time"] + 2 and s.end > alarm["time"] - 1
        ) or s.end > time.time() - 7
    assert closed[0].start > alarm["time"] - 6  # what came before the clip went


async def test_low_space_is_a_storage_low_event_and_in_health(start_node: NodeFactory) -> None:
    # 90 % free wanted: low on any disk this test runs on, with or without footage
    storage = "storage: {min_free_percent: 90, check_seconds: 1}\n"
    node = await start_node(node_yaml(camera("cam1", "synthetic://160x120?fps=5"), storage))
    health = await api(node, "GET", "/api/health")
    assert health["recording"]["low"] is True
    async with asyncio.timeout(10):
        while True:
            found = await api(node, "GET", "/api/events?type=storage.low")
            if found:
                break
            await asyncio.sleep(0.1)
    await asyncio.sleep(2.5)  # two more retention passes, still low
    found = await api(node, "GET", "/api/events?type=storage.low")
    assert len(found) == 1  # once when it turns low, not at every pass
    assert found[0]["data"]["low"] is True and found[0]["site"] == "village"
