"""What motion and tamper analysis cost the node, per camera, beside the demux.

Starts camsim with N H.264 sub-streams (640x360, 15 fps, the ball: every frame
moves), runs a Hub with them in this process and measures this process's CPU over
a steady window in three phases of one run:

  demux     the cameras online, nobody needs pictures
  decode    each stream's shared decoder (relay.media.pictures) handing pictures
            at 5 fps to a consumer that does nothing
  analysis  motion (5 fps) and tamper (2 fps) on those pictures, as the node runs them

    .venv/bin/python bench/analysis_cost.py [--cameras 32] [--seconds 10]
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


def config_text(urls: list[str]) -> str:
    cameras = "".join(
        f"  - {{id: c{i}, name: c{i}, site: v, main: '{url}',"
        " motion: {fps: 5}, tamper: {fps: 2}}\n"
        for i, url in enumerate(urls)
    )
    return "node: {id: b, name: B}\nsites: [{id: v, name: V}]\ncameras:\n" + cameras


async def measure(seconds: float, sim: psutil.Process) -> tuple[float, float, float]:
    """% of one core: this process, the simulator, everyone else on the machine."""
    me = psutil.Process()
    ours, theirs, machine, start = (
        common.cpu_seconds(me),
        common.cpu_seconds(sim),
        common.machine_cpu(),
        time.monotonic(),
    )
    await asyncio.sleep(seconds)
    wall = time.monotonic() - start
    node = common.percent(common.cpu_seconds(me) - ours, wall)
    camsim = common.percent(common.cpu_seconds(sim) - theirs, wall)
    rest = common.others(common.percent(common.machine_cpu() - machine, wall), (node, camsim))
    return node, camsim, rest


async def run(count: int, seconds: float) -> None:
    mounts = [MountSpec(f"sub{i}", width=640, height=360, fps=15) for i in range(count)]
    with CameraSimulator(mounts) as simulator:
        assert simulator._proc is not None
        sim = psutil.Process(simulator._proc.pid)
        config = parse_config(config_text([simulator.url(m.name) for m in mounts]))
        hub = Hub(config)
        hub.start()
        try:
            async with asyncio.timeout(60):
                for channel in hub.channels.values():
                    await channel.wait_online()
            rows = []
            await asyncio.sleep(SETTLE)
            rows.append(("demux", *await measure(seconds, sim), 0))
            watches: list[PictureWatch] = [
                pictures_of(ch).watch(5, lambda _picture: None) for ch in hub.channels.values()
            ]
            await asyncio.sleep(SETTLE)
            rows.append(("decode", *await measure(seconds, sim), _dropped(hub)))
            for watch in watches:
                watch.close()
            analysed = [CameraAnalysis(c, hub, lambda _change: None) for c in config.cameras]
            for camera in analysed:
                camera.start()
            await asyncio.sleep(SETTLE)
            rows.append(("analysis", *await measure(seconds, sim), _dropped(hub)))
            online = sum(ch.source.state is SourceState.ONLINE for ch in hub.channels.values())
            for camera in analysed:
                camera.stop()
        finally:
            await hub.close()
    report(count, rows, online)


def _dropped(hub: Hub) -> int:
    return sum(ch.pictures.dropped for ch in hub.channels.values() if ch.pictures is not None)


def report(count: int, rows: list[tuple[str, float, float, float, int]], online: int) -> None:
    print(common.command_line())
    print(common.machine_facts())
    print(f"{count} cameras, 640x360 at 15 fps; {online} online at the end")
    demux = rows[0][1]
    table = [
        (
            "phase",
            "node % of a core",
            "per camera %",
            "over demux %",
            "camsim %",
            "others %",
            "dropped packets",
        )
    ]
    for phase, node, camsim, rest, dropped in rows:
        table.append(
            (
                phase,
                f"{node:.0f}",
                f"{node / count:.2f}",
                f"{node - demux:.0f}",
                f"{camsim:.0f}",
                common.others_cell(rest),
                str(dropped),
            )
        )
    for line in common.table(table, left=(0,)):
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cameras", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    asyncio.run(run(args.cameras, args.seconds))


if __name__ == "__main__":
    main()
