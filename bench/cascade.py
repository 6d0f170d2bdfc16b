"""The cascade on one machine: a station node with 8 village nodes of 4 cameras each.

Every node is its own `python -m relay run` process on 127.0.0.1, sharing one
nats-server for the alert bus. The station shows a wall of 16 remote tiles (two
cameras of each village), watched by WHEP viewers in this process
(relay.webrtc.client.WhepClient, decoding). Measured: each tile's first frame when
nothing was pulled yet (cold: all 16 at once) and again with the cameras pulled
(warm); CPU per node over a steady window, and what other processes took of the
machine meanwhile; and alert latency across, from a village's `201` to the alarm
being listed at the station (asked every 20 ms).

    .venv/bin/python bench/cascade.py [--cameras-from loop,live] [--villages 8]
        [--cameras 4] [--seconds 10]

The cameras are the built-in synthetic pattern (320x180, 10 fps, 300 kbit/s).
`loop`: a pre-encoded clip (`&loop=4`: 4 s encoded once when a camera opens, then
replayed with timestamps that keep counting), so that a village node's CPU is what
it spends on its cameras' packets, as with real cameras; `live`: encoded frame by
frame by the village nodes, the baseline it is compared with in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import psutil
from common import (
    HOST,
    argument_parser,
    bearer,
    command_line,
    cpu_seconds,
    free_port,
    machine_cpu,
    machine_facts,
    others,
    others_cell,
    percent,
    percentile,
    relay_run,
    table,
)

from relay.access.passwords import hash_token
from relay.webrtc.client import WhepClient

TOKEN = "bench-admin-token"
NODE_TOKEN = "bench-station-node-token"
CAMERAS = {
    "loop": "synthetic://320x180?fps=10&keyframe_interval=2&bitrate=300&loop=4",
    "live": "synthetic://320x180?fps=10&keyframe_interval=2&bitrate=300",
}


def users(extra: str = "") -> str:
    return f"users:\n  - {{name: admin, role: admin, token_hash: '{hash_token(TOKEN)}'}}\n" + extra


def village(name: str, cameras: int, nats: str, camera: str) -> str:
    cams = "".join(
        f"  - {{id: c{i}, name: {name} c{i}, site: {name}, main: '{camera}'}}\n"
        for i in range(cameras)
    )
    digest = hash_token(NODE_TOKEN)
    node_user = f"  - {{name: station, role: node, sites: [{name}], token_hash: '{digest}'}}\n"
    return (
        f"node: {{id: {name}, name: {name}}}\n"
        f"sites: [{{id: station, name: Station}}, {{id: {name}, name: {name}, parent: station}}]\n"
        f"cameras:\n{cams}bus: {{nats: {{servers: ['{nats}']}}}}\n" + users(node_user)
    )


def station(ports: dict[str, int], nats: str) -> str:
    sites = "".join(f"  - {{id: {v}, name: {v}, parent: station}}\n" for v in ports)
    peers = "".join(
        f"  - {{id: {v}, url: 'http://{HOST}:{p}', token: {NODE_TOKEN}, site: station}}\n"
        for v, p in ports.items()
    )
    return (
        "node: {id: station, name: Station}\n"
        f"sites:\n  - {{id: station, name: Station}}\n{sites}"
        f"webrtc: {{host_addresses: [{HOST}]}}\n"
        f"peers:\n{peers}bus: {{nats: {{servers: ['{nats}']}}}}\n" + users()
    )


async def until_online(http: aiohttp.ClientSession, url: str, count: int) -> None:
    async with asyncio.timeout(90):
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{url}/api/cameras", headers=bearer(TOKEN)) as r:
                    if r.status == 200:
                        found = await r.json()
                        if sum(c["state"] == "online" for c in found) >= count:
                            return
            await asyncio.sleep(0.5)


async def first_frames(
    http: aiohttp.ClientSession, url: str, ids: list[str]
) -> tuple[list[float], list[WhepClient]]:
    clients = [WhepClient(f"{url}/whep/{i}", token=TOKEN) for i in ids]
    await asyncio.gather(*(c.prepare() for c in clients))
    await asyncio.gather(*(c.connect(http) for c in clients))
    async with asyncio.timeout(30):
        times = await asyncio.gather(*(c.first_frame() for c in clients))
    return sorted(times), clients


async def alert_latency(
    http: aiohttp.ClientSession, villages: dict[str, int], station_url: str, count: int
) -> list[float]:
    latencies = []
    names = list(villages)
    for n in range(count):
        name = names[n % len(names)]
        body = {"type": "alarm", "camera": "c0", "reason": f"bench {n}"}
        start = time.monotonic()
        async with http.post(
            f"http://{HOST}:{villages[name]}/api/events", json=body, headers=bearer(TOKEN)
        ) as r:
            event_id = (await r.json())["id"]
        async with asyncio.timeout(10):
            while True:
                async with http.get(
                    f"{station_url}/api/events?type=alarm&limit=50", headers=bearer(TOKEN)
                ) as r:
                    if any(e["id"] == event_id for e in await r.json()):
                        break
                await asyncio.sleep(0.02)
        latencies.append(time.monotonic() - start)
    return sorted(latencies)


async def run(args: argparse.Namespace, tmp: Path, camera: str) -> dict[str, str]:
    """One whole network with cameras from `camera`; its figures, as table cells."""
    nats_port = free_port()
    nats_bin = str(Path(sys.executable).parent / "nats-server")
    nats = subprocess.Popen(  # noqa: ASYNC220 (started once, before anything runs)
        [nats_bin, "-a", HOST, "-p", str(nats_port), "-js", "-sd", str(tmp / "nats")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    nats_url = f"nats://{HOST}:{nats_port}"
    ports = {f"v{i}": free_port() for i in range(args.villages)}
    texts = {v: village(v, args.cameras, nats_url, camera) for v in ports}
    ports["station"] = free_port()
    texts["station"] = station({v: p for v, p in ports.items() if v != "station"}, nats_url)
    procs: dict[str, asyncio.subprocess.Process] = {}
    try:
        for name, text in texts.items():
            (tmp / name).mkdir()
            path = tmp / name / "config.yaml"
            path.write_text(
                text.replace("node: {id: " + name, f"node: {{data_dir: '{tmp / name}', id: {name}")
            )
            with (tmp / f"{name}.log").open("wb") as log:
                procs[name] = await asyncio.create_subprocess_exec(
                    *relay_run(path, ports[name]), stderr=log
                )
        station_url = f"http://{HOST}:{ports['station']}"
        async with aiohttp.ClientSession() as http:
            await until_online(http, station_url, args.villages * args.cameras)
            tiles = [f"v{i % args.villages}.c{i // args.villages}" for i in range(16)]
            cold, wall = await first_frames(http, station_url, tiles)
            warm, extra = await first_frames(http, station_url, tiles)
            for c in extra:
                await c.close(http)
            ps = {n: psutil.Process(p.pid) for n, p in procs.items()}
            before = {n: cpu_seconds(p) for n, p in ps.items()}
            machine = machine_cpu()
            await asyncio.sleep(args.seconds)
            used = {n: cpu_seconds(p) - before[n] for n, p in ps.items()}
            busy = machine_cpu() - machine
            latency = await alert_latency(
                http, {v: p for v, p in ports.items() if v != "station"}, station_url, 20
            )
            for c in wall:
                await c.close(http)
        return figures(cold, warm, latency, used=used, busy=busy, seconds=args.seconds)
    finally:
        for proc in procs.values():
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        for proc in procs.values():
            await proc.wait()
        nats.kill()
        nats.wait()


def _p(values: list[float]) -> str:
    return f"{percentile(values, 50):.3f} / {percentile(values, 95):.3f}"


def figures(
    cold: list[float],
    warm: list[float],
    latency: list[float],
    *,
    used: dict[str, float],
    busy: float,
    seconds: float,
) -> dict[str, str]:
    villages = [percent(v, seconds) for n, v in used.items() if n != "station"]
    return {
        "first frame, cold (16 at once), p50 / p95, s": _p(cold),
        "first frame, warm (16 at once), p50 / p95, s": _p(warm),
        "alarm village -> listed at the station, p50 / p95, s": _p(latency),
        "CPU station, % of one core": f"{percent(used['station'], seconds):.0f}",
        "CPU village, mean / max, % of one core": (
            f"{sum(villages) / len(villages):.0f} / {max(villages):.0f}"
        ),
        "CPU all nodes, % of one core": f"{percent(sum(used.values()), seconds):.0f}",
        "CPU other processes, % of one core": others_cell(
            percent(others(busy, used.values()), seconds)
        ),
    }


def main() -> None:
    parser = argument_parser(
        __doc__, "--cameras-from", "loop,live", str, "loop (pre-encoded clip) or live"
    )
    parser.add_argument("--villages", type=int, default=8)
    parser.add_argument("--cameras", type=int, default=4)
    args = parser.parse_args()
    columns: dict[str, dict[str, str]] = {}
    for mode in args.cameras_from:
        with tempfile.TemporaryDirectory() as tmp:
            columns[mode] = asyncio.run(run(args, Path(tmp), CAMERAS[mode]))
    print(command_line())
    print(f"{machine_facts()}; {args.villages} villages x {args.cameras} cameras,")
    print(f"station wall of 16 remote tiles, CPU over {args.seconds:.0f} s")
    rows = [("figure", *(f"cameras: {m}" for m in columns))]
    for name in next(iter(columns.values())):
        rows.append((name, *(c[name] for c in columns.values())))
    print("\n".join(table(rows, left={0})))


if __name__ == "__main__":
    main()
