"""What motion and tamper analysis cost the node, per camera, beside the demux.

Starts camsim with N H.264 sub-streams (640x360, 15 fps), runs a Hub with them in
this process and measures this process's CPU over a steady window, in three
phases of one run:

  demux     the cameras online, nobody needs pictures
  decode    each stream's shared decoder (relay.media.pictures) handing pictures
            at 5 fps to a consumer that does nothing
  analysis  motion (5 fps) and tamper (2 fps) on those pictures, as the node runs them

Cameras share camsim mounts (`--mounts`, default 8): a shared mount encodes once
for all its RTSP clients, so the simulator does not starve the node, while the
node still demuxes, decodes and analyses each camera's own connection.

Scenes: `ball` (default) is a ball over a sweeping picture, motion everywhere all
the time, the worst case; `still` is a still scene with sensor noise, what a
village camera shows most hours. `--bframes` makes the cameras send H.264 High
with B-frames, frames nothing refers to: the decoder leaves those undecoded
unless a watcher is due ("decoded/s" falls below the camera's 15 fps).

To compare two versions of the node in the same conditions, run this script
against each in turn, the other one's code first on the path:
    PYTHONPATH=<other checkout> .venv/bin/python bench/analysis_cost.py

    .venv/bin/python bench/analysis_cost.py [--cameras 32] [--seconds 10] [--scene ball]
"""

from __future__ import annotations

import argparse
import asyncio
import time

import common
import psutil

from camsim import CameraSimulator, MountSpec
from ingest.state import SourceState
from relay.analysis.camera import CameraAnalysis
from relay.config import parse_config
from relay.media.hub import Hub
from relay.media.pictures import PictureWatch, pictures_of

SETTLE = 3.0
Row = tuple[float, float, float, float, float, float]


def config_text(urls: list[str]) -> str:
    cameras = "".join(
        f"  - {{id: c{i}, name: c{i}, site: v, main: '{url}',"
        " motion: {fps: 5}, tamper: {fps: 2}}\n"
        for i, url in enumerate(urls)
    )
    return "node: {id: b, name: B}\nsites: [{id: v, name: V}]\ncameras:\n" + cameras


def thread_seconds(hub: Hub) -> tuple[float, float, int]:
    """CPU seconds the decoder threads spent decoding, and on their watchers' work;
    frames decoded."""
    sources = [ch.pictures for ch in hub.channels.values() if ch.pictures is not None]
    return (
        sum(s.decode_seconds for s in sources),
        sum(s.watcher_seconds for s in sources),
        sum(s.decoded for s in sources),
    )


async def measure(seconds: float, sim: psutil.Process, hub: Hub) -> Row:
    """% of one core: this process, the simulator, everyone else on the machine, and
    (from the decoder threads' own CPU clocks) decoding and the analysis work;
    frames decoded a second, per camera."""
    me = psutil.Process()
    ours, theirs, machine, start = (
        common.cpu_seconds(me),
        common.cpu_seconds(sim),
        common.machine_cpu(),
        time.monotonic(),
    )
    decode, watchers, frames = thread_seconds(hub)
    await asyncio.sleep(seconds)
    wall = time.monotonic() - start
    node = common.percent(common.cpu_seconds(me) - ours, wall)
    camsim = common.percent(common.cpu_seconds(sim) - theirs, wall)
    rest = common.others(common.percent(common.machine_cpu() - machine, wall), (node, camsim))
    decode_after, watchers_after, frames_after = thread_seconds(hub)
    decoding = common.percent(decode_after - decode, wall)
    analysing = common.percent(watchers_after - watchers, wall)
    rate = (frames_after - frames) / wall / len(hub.channels)
    return node, camsim, rest, decoding, analysing, rate


async def run(count: int, seconds: float, scene: str, mount_count: int, bframes: bool) -> None:
    profile = "high" if bframes else "constrained-baseline"
    mounts = [
        MountSpec(
            f"sub{i}", width=640, height=360, fps=15, scene=scene, profile=profile, bframes=bframes
        )
        for i in range(min(count, mount_count))
    ]
    with CameraSimulator(mounts) as simulator:
        assert simulator._proc is not None
        sim = psutil.Process(simulator._proc.pid)
        urls = [simulator.url(mounts[i % len(mounts)].name) for i in range(count)]
        config = parse_config(config_text(urls))
        hub = Hub(config)
        hub.start()
        try:
            async with asyncio.timeout(60):
                for channel in hub.channels.values():
                    await channel.wait_online()
            rows = []
            await asyncio.sleep(SETTLE)
            rows.append(("demux", *await measure(seconds, sim, hub), 0))
            watches: list[PictureWatch] = [
                pictures_of(ch).watch(5, lambda _picture: None) for ch in hub.channels.values()
            ]
            await asyncio.sleep(SETTLE)
            rows.append(("decode", *await measure(seconds, sim, hub), _dropped(hub)))
            for watch in watches:
                watch.close()
            analysed = [CameraAnalysis(c, hub, lambda _change: None) for c in config.cameras]
            for camera in analysed:
                camera.start()
            await asyncio.sleep(SETTLE)
            rows.append(("analysis", *await measure(seconds, sim, hub), _dropped(hub)))
            online = sum(ch.source.state is SourceState.ONLINE for ch in hub.channels.values())
            for camera in analysed:
                camera.stop()
        finally:
            await hub.close()
    report(count, f"{scene}{', B-frames' if bframes else ''}", rows, online)


def _dropped(hub: Hub) -> int:
    return sum(ch.pictures.dropped for ch in hub.channels.values() if ch.pictures is not None)


def report(
    count: int,
    scene: str,
    rows: list[tuple[str, float, float, float, float, float, float, int]],
    online: int,
) -> None:
    print(common.command_line())
    print(common.machine_facts())
    print(f"{count} cameras ({scene}), 640x360 at 15 fps; {online} online at the end")
    print("(the node demuxes, decodes and analyses every camera's stream on its own)")
    demux = rows[0][1]
    table = [
        (
            "phase",
            "node %",
            "per camera %",
            "over demux %",
            "decoding %",
            "analysing %",
            "decoded/s",
            "camsim %",
            "others %",
            "dropped",
        )
    ]
    for phase, node, camsim, rest, decoding, analysing, rate, dropped in rows:
        table.append(
            (
                phase,
                f"{node:.0f}",
                f"{node / count:.2f}",
                f"{node - demux:.0f}",
                f"{decoding:.1f}",
                f"{analysing:.1f}",
                f"{rate:.1f}",
                f"{camsim:.0f}",
                common.others_cell(rest),
                str(dropped),
            )
        )
    for line in common.table(table, left=(0,)):
        print(line)
    print("(% of one core; decoding and analysing from the decoder threads' CPU clocks;")
    print(" decoded/s: frames decoded a second per camera)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cameras", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--scene", choices=("ball", "still"), default="ball")
    parser.add_argument(
        "--mounts",
        type=int,
        default=8,
        help="camsim mounts the cameras share (each encodes once for all its clients)",
    )
    parser.add_argument("--bframes", action="store_true", help="H.264 High with B-frames")
    args = parser.parse_args()
    asyncio.run(run(args.cameras, args.seconds, args.scene, args.mounts, args.bframes))


if __name__ == "__main__":
    main()
