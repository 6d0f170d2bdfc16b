"""What recording costs: CPU on top of demux, an index query of a day, a 10-minute export.

1. CPU, twice: camsim serves N H.264 cameras (640x360, 15 fps), then M cameras
   at 1280x720 and 2 Mbit/s (a scene with sensor noise, which reaches the rate
   asked); this process runs the node's Hub for them and measures its CPU over a
   window (demux alone), then starts the node's recorders on the same channels
   and measures again (demux plus recording). The difference is what recording
   adds; the bitrate is what the recorders wrote.
2. Index: 32 cameras x 1,440 one-minute segments (a day) in SQLite; the time of
   one camera's day query (rows and spans), p50 and p95 of 20 after a warm-up.
3. Export: ten one-minute segment files of a 2 Mbit/s 1280x720 stream, remuxed
   into one MP4 (moov first) with its SHA-256.
4. Audio: a camera's G.711 (8 kHz, 20 ms packets) transcoded to AAC as the
   writer thread does it, 60 s of it; its CPU as a share of one core in real time.

    .venv/bin/python bench/record_cost.py [--cameras 32] [--hd-cameras 8] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import sqlite3
import tempfile
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import common
import numpy as np

from camsim import CameraSimulator, MountSpec
from ingest.packet import MediaPacket
from ingest.state import SourceState
from relay.config import parse_config
from relay.db import Database
from relay.media.hub import Channel, Hub
from relay.record import index
from relay.record.audio import AacSource, AudioFormat
from relay.record.exports import remux, sha256_of
from relay.record.index import Segment
from relay.record.service import Recordings
from relay.record.writer import SegmentFile, VideoFormat

DAY_SEGMENTS = 1440


def node_config(sim: CameraSimulator, count: int, storage: Path) -> str:
    cameras = "".join(
        f"  - {{id: c{i}, name: c{i}, site: v, main: '{sim.url(f'c{i}')}'}}\n" for i in range(count)
    )
    return (
        "node: {id: bench, name: bench}\nsites: [{id: v, name: v}]\n"
        f"storage: {{path: '{storage}', min_free_gb: 0, min_free_percent: 0}}\n"
        f"cameras:\n{cameras}"
    )


def writer_threads_cpu() -> float:
    """CPU seconds of this process's segment writer threads (named record-...)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    total = 0.0
    for tid in os.listdir("/proc/self/task"):
        if not names.get(int(tid), "").startswith("record-"):
            continue
        # the scheduler's own count of the time it ran, in ns: short bursts of
        # work are missed or overcounted by the tick-sampled utime
        with contextlib.suppress(FileNotFoundError), open(f"/proc/self/task/{tid}/schedstat") as f:
            total += int(f.read().split()[0]) / 1e9
    return total


async def window(seconds: float) -> tuple[float, float]:
    """This process's CPU over `seconds`, and its writer threads', % of one core."""
    wall0, cpu0, writers0 = time.perf_counter(), time.process_time(), writer_threads_cpu()
    await asyncio.sleep(seconds)
    wall = time.perf_counter() - wall0
    writers = writer_threads_cpu() - writers0
    return common.percent(time.process_time() - cpu0, wall), common.percent(writers, wall)


@dataclass(frozen=True)
class Cost:
    demux: float  # % of a core
    both: float  # demux and recording
    writers: float  # the writer threads alone
    files: int
    mbits: float  # per camera, as written


async def recording_cpu(mounts: list[MountSpec], seconds: float, work: Path) -> Cost:
    count = len(mounts)
    with CameraSimulator(mounts) as sim:
        config = parse_config(node_config(sim, count, work / "rec"))
        hub = Hub(config)
        db = Database(work / "node.sqlite", index.SCHEMA)
        await db.open()
        online = asyncio.Event()

        def changed(_channel: Channel) -> None:
            if all(c.source.state is SourceState.ONLINE for c in hub.channels.values()):
                online.set()

        hub.state_listeners.append(changed)
        hub.start()
        try:
            async with asyncio.timeout(30 + count):
                await online.wait()
            await asyncio.sleep(3)
            demux, _ = await window(seconds)
            recordings = Recordings(config, hub, db)
            await recordings.start()
            await asyncio.sleep(3)
            both, writers = await window(seconds)
            await recordings.close()
            files, size, span = await db.run(
                lambda conn: conn.execute(
                    "SELECT count(*), sum(bytes), sum(end - start) FROM segments"
                ).fetchone()
            )
        finally:
            await hub.close()
            await db.close()
            shutil.rmtree(work / "rec", ignore_errors=True)
            (work / "node.sqlite").unlink(missing_ok=True)
    return Cost(demux, both, writers, files, size * 8 / span / 1e6 if span else 0.0)


def index_query(work: Path) -> tuple[float, float, int]:
    conn = sqlite3.connect(work / "index.sqlite")
    conn.row_factory = sqlite3.Row
    conn.executescript(index.SCHEMA)
    day = time.time() - 86400
    with conn:
        for cam in range(32):
            conn.executemany(
                "INSERT INTO segments (camera, stream, start, end, path, bytes, codec)"
                " VALUES (?, 'main', ?, ?, ?, 15000000, 'h264')",
                [
                    (f"c{cam}", day + 60 * i, day + 60 * i + 60, f"c{cam}/main/d/{i}.mp4")
                    for i in range(DAY_SEGMENTS)
                ],
            )
    index.query(conn, "c7", day, day + 86400)  # warm: the pages read once
    times = []
    for _ in range(20):
        began = time.perf_counter()
        rows = index.query(conn, "c7", day, day + 86400)
        index.spans(rows, day, day + 86400)
        times.append((time.perf_counter() - began) * 1000)
    conn.close()
    return common.percentile(times, 50), common.percentile(times, 95), len(rows)


def ten_minutes(work: Path) -> tuple[list[tuple[Segment, Path]], int]:
    """Ten one-minute files of one encoded minute (2 Mbit/s, 1280x720), remuxed."""
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = 1280, 720, "yuv420p"
    enc.time_base, enc.framerate, enc.bit_rate = Fraction(1, 90000), Fraction(15), 2_000_000
    enc.options = {"preset": "ultrafast", "tune": "zerolatency", "x264-params": "keyint=30"}
    noise = np.random.default_rng(1).integers(0, 255, (720 * 3 // 2, 1280), np.uint8)
    packets = []
    for n in range(15 * 60):
        frame = av.VideoFrame.from_ndarray(np.roll(noise, n * 8, axis=1), format="yuv420p")
        frame.pts = n * 6000
        packets += [
            MediaPacket("video", bytes(p), p.pts, enc.time_base, p.is_keyframe, 0.0)
            for p in enc.encode(frame)
        ]
    start = time.time() - 3600
    out = []
    for minute in range(10):
        path = work / "export-src" / f"{minute}.mp4"
        seg_start = start + 60 * minute
        segment = SegmentFile(path, VideoFormat("h264", 1280, 720), packets[0], seg_start)
        for p in packets:
            segment.write(p, p.pts or 0, p.pts or 0)
        end = segment.close()
        out.append(
            (Segment(minute, "c0", "main", seg_start, end, str(path), 0, "h264", False), path)
        )
    return out, sum(path.stat().st_size for _, path in out)


def export_time(work: Path) -> tuple[float, int, int]:
    segments, source_bytes = ten_minutes(work)
    start, end = segments[0][0].start, segments[-1][0].end
    began = time.perf_counter()
    remux(segments, work / "export.mp4", start, end, lambda _done: None)
    sha256_of(work / "export.mp4")
    return time.perf_counter() - began, source_bytes, (work / "export.mp4").stat().st_size


def cost_rows(label: str, cost: Cost) -> list[tuple[str, str, str]]:
    return [
        (f"CPU, demux of {label}", f"{cost.demux:.1f} % of a core", "Hub only"),
        (
            f"CPU, demux + recording {label}",
            f"{cost.both:.1f} % of a core",
            f"{cost.files} files, {cost.mbits:.2f} Mbit/s each",
        ),
        ("CPU added by recording", f"{cost.both - cost.demux:.1f} % of a core", ""),
        ("  of which writer threads", f"{cost.writers:.1f} % of a core", "PyAV mux + write"),
    ]


def g711_cost(seconds: int = 60) -> float:
    """CPU share of one core that one camera's G.711 to AAC costs, in real time."""
    source = AacSource(AudioFormat("pcm_alaw", 8000, 1, b""), "bench")
    tone = np.sin(np.arange(160 * 50 * seconds) * 0.2) * 20000
    alaw = av.CodecContext.create("pcm_alaw", "w")
    alaw.sample_rate, alaw.layout, alaw.format = 8000, "mono", "s16"
    packets = []
    for n in range(50 * seconds):
        frame = av.AudioFrame.from_ndarray(
            tone[None, n * 160 : (n + 1) * 160].astype(np.int16), format="s16", layout="mono"
        )
        frame.sample_rate = 8000
        packets += [
            MediaPacket("audio", bytes(p), n * 160, Fraction(1, 8000), True, 0.0)
            for p in alaw.encode(frame)
        ]
    began = time.process_time()
    units = sum(len(source.units(p)) for p in packets)
    assert units > 0
    return (time.process_time() - began) / seconds * 100


async def main(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="record-cost-"))
    small = [MountSpec(f"c{i}", keyframe_interval=2.0) for i in range(args.cameras)]
    hd = [
        MountSpec(f"c{i}", width=1280, height=720, bitrate_kbps=2000, scene="moving")
        for i in range(args.hd_cameras)
    ]
    try:
        costs = [
            (f"{len(mounts)} x {mounts[0].width}x{mounts[0].height}", mounts)
            for mounts in (small, hd)
            if mounts
        ]
        measured = [(label, await recording_cpu(m, args.seconds, work)) for label, m in costs]
        p50, worst, rows = index_query(work)
        seconds, source, exported = export_time(work)
        audio = g711_cost()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(common.command_line())
    print(common.machine_facts())
    rows_out = [("measure", "figure", "note")]
    for label, cost in measured:
        rows_out += cost_rows(label, cost)
    rows_out += [
        ("index: one camera's day", f"{p50:.1f} ms p50, {worst:.1f} ms p95", f"{rows} segments"),
        (
            "export of 10 min, 2 Mbit/s",
            f"{seconds:.2f} s",
            f"{source / 1e6:.0f} MB -> {exported / 1e6:.0f} MB",
        ),
        ("G.711 to AAC, one camera", f"{audio:.2f} % of a core", "writer thread"),
    ]
    for line in common.table(rows_out, left={0, 2}):
        print(line)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, default=32, help="640x360 cameras")
    parser.add_argument("--hd-cameras", type=int, default=8, help="1280x720, 2 Mbit/s cameras")
    parser.add_argument("--seconds", type=float, default=10.0)
    asyncio.run(main(parser.parse_args()))
