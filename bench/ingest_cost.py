"""What ingest costs the node, per camera: demux only, and demux plus decode.

For each camera count, starts the camera simulator (camsim: GStreamer in a process
of its own) with that many H.264 cameras, runs one `CameraSource` per camera in this
process, waits until every camera is online, lets it settle, then measures this
process's CPU over a steady window. The simulator's CPU is shown beside it but is
not part of the node's figure.

    .venv/bin/python bench/ingest_cost.py [--counts 8,16,32] [--seconds 10]

Modes:
  demux   CameraSources feeding a no-op on_packet (what every always-on camera costs)
  decode  on_packet hands video packets to a per-camera decoder thread through a
          bounded queue (drops and counts when full); every packet is decoded
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import platform
import queue
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import av
import av.error
import common
import psutil

from camsim import CameraSimulator, MountSpec
from ingest.packet import MediaPacket
from ingest.source import CameraSource
from ingest.state import SourceSettings, SourceState

MODES = ("demux", "decode")
WIDTH, HEIGHT, FPS, KEYFRAME_INTERVAL = 640, 360, 15, 2.0
DECODE_QUEUE = 30  # packets, two seconds at 15 fps
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Result:
    cameras: int
    mode: str
    node_cpu: float  # % of one core
    threads: dict[str, float]  # % of one core by thread group
    packets_per_s: float
    frames_per_s: float | None
    dropped: int
    decode_errors: int
    online: int
    steady: bool  # no camera changed state during the window
    sim_cpu: float
    others_cpu: float  # the rest of the machine: other users' processes

    @property
    def all_online(self) -> bool:
        return self.steady and self.online == self.cameras


class Decoder:
    """One camera's H.264 decoder in a thread of its own, behind a bounded queue."""

    def __init__(self, name: str) -> None:
        self.frames = 0
        self.dropped = 0
        self.errors = 0
        self._keyframe_seen = False
        self._queue: queue.Queue[bytes | None] = queue.Queue(DECODE_QUEUE)
        self._thread = threading.Thread(target=self._run, name=f"decode-{name}", daemon=True)
        self._thread.start()

    def feed(self, packet: MediaPacket) -> None:
        if packet.kind != "video":
            return
        if not self._keyframe_seen:
            if not packet.keyframe:
                return  # a decoder can only start at a keyframe, like any real consumer
            self._keyframe_seen = True
        try:
            self._queue.put_nowait(packet.data)
        except queue.Full:
            self.dropped += 1

    def close(self) -> None:
        """Blocks until the thread has drained the queue and ended: call off the loop."""
        if self._thread.is_alive():
            with contextlib.suppress(queue.Full):
                self._queue.put(None, timeout=5.0)
            self._thread.join(5.0)

    def _run(self) -> None:
        codec = av.CodecContext.create("h264", "r")
        codec.thread_count = 1  # the thread per camera is the unit being measured
        while (data := self._queue.get()) is not None:
            try:
                self.frames += len(codec.decode(av.Packet(data)))
            except av.error.FFmpegError:
                self.errors += 1


def thread_cpu() -> dict[str, float]:
    """CPU seconds of this process's live threads, grouped by what they do."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    main = threading.main_thread().native_id
    groups: dict[str, float] = {}
    for tid_text in os.listdir("/proc/self/task"):
        tid = int(tid_text)
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except FileNotFoundError:
            continue  # ended between listdir and open
        seconds = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
        name = names.get(tid, "")
        if tid == main:
            group = "loop"
        elif name.startswith("camera-"):
            group = "readers"
        elif name.startswith("decode-"):
            group = "decoders"
        else:
            group = "other"  # the simulator controller's pipe readers, executor threads
        groups[group] = groups.get(group, 0.0) + seconds
    return groups


def simulator_cpu() -> float:
    """CPU seconds of this process's children: the camsim server."""
    return sum(common.cpu_seconds(child) for child in psutil.Process().children(recursive=True))


async def measure(urls: Sequence[str], mode: str, seconds: float, settle: float) -> Result:
    decoders: list[Decoder] = []
    sources: list[CameraSource] = []
    everyone_online = asyncio.Event()
    changes = 0

    def on_state(_source: CameraSource) -> None:
        nonlocal changes
        changes += 1
        if all(s.state is SourceState.ONLINE for s in sources):
            everyone_online.set()

    def no_op(_packet: MediaPacket) -> None:
        pass

    for i, url in enumerate(urls):
        on_packet: Callable[[MediaPacket], None] = no_op
        if mode == "decode":
            decoders.append(Decoder(f"cam{i}"))
            on_packet = decoders[-1].feed
        source = CameraSource(
            f"cam{i}",
            url,
            label=f"cam{i}",
            settings=SourceSettings(),
            on_packet=on_packet,
            on_state=on_state,
        )
        sources.append(source)
        source.start()
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(15 + len(urls)):
                await everyone_online.wait()
        await asyncio.sleep(settle)
        changes = 0
        packets0 = sum(s.stats.packets for s in sources)
        frames0 = sum(d.frames for d in decoders)
        dropped0 = sum(d.dropped for d in decoders)
        errors0 = sum(d.errors for d in decoders)
        threads0, sim0, machine0 = thread_cpu(), simulator_cpu(), common.machine_cpu()
        wall0, cpu0 = time.perf_counter(), time.process_time()
        await asyncio.sleep(seconds)
        wall = time.perf_counter() - wall0
        cpu = time.process_time() - cpu0
        threads1, sim1, machine1 = thread_cpu(), simulator_cpu(), common.machine_cpu()
        packets = sum(s.stats.packets for s in sources) - packets0
        frames = sum(d.frames for d in decoders) - frames0
        online = sum(s.state is SourceState.ONLINE for s in sources)
        return Result(
            cameras=len(urls),
            mode=mode,
            node_cpu=common.percent(cpu, wall),
            threads={
                k: common.percent(v - threads0.get(k, 0.0), wall) for k, v in threads1.items()
            },
            packets_per_s=packets / wall,
            frames_per_s=frames / wall if decoders else None,
            dropped=sum(d.dropped for d in decoders) - dropped0,
            decode_errors=sum(d.errors for d in decoders) - errors0,
            online=online,
            steady=changes == 0,
            sim_cpu=common.percent(sim1 - sim0, wall),
            others_cpu=common.percent(common.others(machine1 - machine0, [cpu, sim1 - sim0]), wall),
        )
    finally:
        await asyncio.gather(*(s.stop() for s in sources))
        await asyncio.gather(*(asyncio.to_thread(d.close) for d in decoders))


def run_one(runner: asyncio.Runner, count: int, mode: str, seconds: float, settle: float) -> Result:
    mounts = [
        MountSpec(
            name=f"cam{i}",
            width=WIDTH,
            height=HEIGHT,
            fps=FPS,
            keyframe_interval=KEYFRAME_INTERVAL,
        )
        for i in range(count)
    ]
    with CameraSimulator(mounts) as sim:
        urls = [sim.url(m.name) for m in mounts]
        return runner.run(measure(urls, mode, seconds, settle))


HEADER = (
    "cameras",
    "mode",
    "node CPU %",
    "per camera %",
    "readers %",
    "loop %",
    "decoders %",
    "packets/s",
    "frames/s",
    "all online",
    "sim CPU %",
    "others %",
)


def row(r: Result) -> tuple[str, ...]:
    online = "yes" if r.all_online else f"no ({r.online}/{r.cameras} online at the end)"
    if not r.steady:
        online += ", some changed state"
    decoders = f"{r.threads.get('decoders', 0.0):.1f}" if r.mode == "decode" else "-"
    frames = "-" if r.frames_per_s is None else f"{r.frames_per_s:.0f}"
    if r.dropped or r.decode_errors:
        frames += f" ({r.dropped} dropped, {r.decode_errors} errors)"
    return (
        str(r.cameras),
        r.mode,
        f"{r.node_cpu:.1f}",
        f"{r.node_cpu / r.cameras:.2f}",
        f"{r.threads.get('readers', 0.0):.1f}",
        f"{r.threads.get('loop', 0.0):.1f}",
        decoders,
        f"{r.packets_per_s:.0f}",
        frames,
        online,
        f"{r.sim_cpu:.0f}",
        common.others_cell(r.others_cpu),
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = common.argument_parser(__doc__, "--counts", "8,16,32", int, "camera counts")
    parser.add_argument(
        "--settle", type=float, default=3.0, help="wait after all are online, s (default 3)"
    )
    parser.add_argument(
        "--modes", default=",".join(MODES), help="demux, decode or both (default both)"
    )
    args = parser.parse_args(argv)
    args.modes = args.modes.split(",")
    if not set(args.modes) <= set(MODES):
        parser.error(f"--modes: choose from {', '.join(MODES)}")
    if any(n < 1 for n in args.counts) or args.seconds <= 0:
        parser.error("--counts must be positive and --seconds above 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    print(
        f"ingest cost: {WIDTH}x{HEIGHT} H.264 at {FPS} fps, keyframe every "
        f"{KEYFRAME_INTERVAL:g} s, RTSP/TCP on {common.HOST}; {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, PyAV {av.__version__}, "
        f"{common.loop_name()} loop; window {args.seconds:g} s",
        flush=True,
    )
    results: list[Result] = []
    with asyncio.Runner(loop_factory=common.loop_factory()) as runner:
        for count in args.counts:
            for mode in args.modes:
                result = run_one(runner, count, mode, args.seconds, args.settle)
                results.append(result)
                print(f"  done: {' '.join(row(result)[:4])}", file=sys.stderr, flush=True)
    print()
    for line in common.table([HEADER, *(row(r) for r in results)], left={1}):
        print(line)
    print(
        "\nnode CPU % = this process (readers + loop + decoders + other threads), % of one"
        " core;\nper camera % = node CPU % / cameras; packets/s expected = cameras x "
        f"{FPS}.\nsim CPU % = the camsim server (GStreamer, x264 encoding), a separate"
        " process NOT\ncounted in node CPU, but it runs on the same"
        f" {os.cpu_count()} cores and competes with the node;\nothers % = every other"
        " process on the machine in the window (should be near 0 for clean figures)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
