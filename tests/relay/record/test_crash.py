"""kill -9 during a segment: what was on disk stays, the gap is a gap, recording resumes."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiohttp
import av
import pytest

from relay.record import fmp4
from tests.conftest import ADMIN, node_yaml
from tests.helpers import free_port, node_process, wait_until

CAMERAS = (
    "  - {id: cam1, name: One, site: village,"
    " main: 'synthetic://320x180?fps=15&keyframe_interval=1'}\n"
    "  - {id: cam2, name: Two, site: village,"
    " main: 'synthetic://320x180?fps=15&keyframe_interval=1'}\n"
)


def segments(db: Path, camera: str) -> list[dict[str, Any]]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute("SELECT * FROM segments WHERE camera = ? ORDER BY start", (camera,))
        return [dict(r) for r in rows]


async def started(port: int) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            try:
                async with http.get(f"http://127.0.0.1:{port}/api/health") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("the node did not start")


async def recordings(port: int, camera: str, since: float) -> dict[str, Any]:
    async with aiohttp.ClientSession(headers=ADMIN) as http:
        url = f"http://127.0.0.1:{port}/api/cameras/{camera}/recordings?since={since}"
        async with http.get(url) as r:
            assert r.status == 200, await r.text()
            return dict(await r.json())


@pytest.mark.slow
async def test_kill_9_keeps_every_complete_fragment_and_recording_resumes(tmp_path: Path) -> None:
    config = tmp_path / "node.yaml"
    text = node_yaml(CAMERAS, "storage: {segment_seconds: 10}\n")
    config.write_text(
        text.replace("name: Test node}", f"name: Test node, data_dir: '{tmp_path}/var'}}")
    )
    db = tmp_path / "var" / "node.sqlite"
    began = time.time()
    port = free_port()
    process = await node_process(config, port, cwd=tmp_path, stderr=asyncio.subprocess.DEVNULL)
    try:
        await started(port)
        # into the second file of each camera, well past its first fragments
        await wait_until(
            lambda: all(
                len(s) >= 2 and s[-1]["end"] - s[-1]["start"] > 4
                for s in (segments(db, "cam1"), segments(db, "cam2"))
            ),
            60,
            "a second segment 4 s long",
        )
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()
    killed = time.time()
    before = {cam: segments(db, cam) for cam in ("cam1", "cam2")}
    assert all(s[-1]["open"] == 1 for s in before.values())  # killed mid-file

    port = free_port()
    process = await node_process(config, port, cwd=tmp_path, stderr=asyncio.subprocess.DEVNULL)
    try:
        await started(port)
        restarted = time.time()
        for cam, rows in before.items():
            cut = {s["path"]: s for s in segments(db, cam)}[rows[-1]["path"]]
            assert cut["open"] == 0
            # every complete fragment kept: at most one 1 s GOP (and the flush) lost
            assert killed - 2.5 < cut["end"] <= killed
            for row in rows[:-1]:  # files finished before the kill are as they were
                assert {s["path"]: s for s in segments(db, cam)}[row["path"]]["end"] == row["end"]
            path = tmp_path / "var" / "recordings" / cut["path"]
            layout = fmp4.scan(path)
            assert path.stat().st_size == layout.complete_end == cut["bytes"]
            with av.open(str(path)) as container:
                frames = sum(1 for _ in container.decode(video=0))
            assert abs(frames - 15 * (cut["end"] - cut["start"])) <= 2
        await wait_until(
            lambda: all(segments(db, c)[-1]["start"] > restarted - 1 for c in before),
            30,
            "recording resumed",
        )
        body = await recordings(port, "cam1", began)
        assert len(body["spans"]) == 2, (
            body,
            killed,
            restarted,
        )  # before the kill, after the restart
        gap = next(g for g in body["gaps"] if g["start"] > began + 1)
        assert gap["start"] == pytest.approx(before["cam1"][-1]["start"], abs=30)
        assert killed - 2.5 < gap["start"] <= killed and gap["end"] >= restarted - 1.5
    finally:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            await process.wait()
    assert process.returncode == 0
