"""A village behind a thin uplink: its own network namespace, joined to this one by
a veth pair whose village end is rate-limited with tbf (needs root)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from relay.access.passwords import hash_token
from relay.webrtc.client import WhepClient
from tests.conftest import ADMIN, ADMIN_TOKEN, NodeFactory
from tests.helpers import needs_root
from tests.relay.peers.nodes import STATION_TOKEN, Running, station_yaml, wait_states

RATE = "400kbit"  # half the main stream's bitrate (about 850 kbit/s), 6x the sub-stream's
MAIN = "synthetic://640x360?fps=30&keyframe_interval=2&bitrate=4000"
SUB = "synthetic://160x90?fps=10&keyframe_interval=1&bitrate=60"


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


@pytest.fixture
def namespace() -> Iterator[tuple[str, str]]:
    """A namespace with a veth to this one: (namespace, the village's address)."""
    if os.geteuid() != 0:
        needs_root("network namespaces need root")
    tag = f"vw{os.getpid() % 100000}"
    net = f"10.{77 + os.getpid() % 100}.{os.getpid() % 250}"
    ns, here, there = f"{tag}ns", f"{tag}a", f"{tag}b"
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "link", "add", here, "type", "veth", "peer", "name", there)
        sh("ip", "link", "set", there, "netns", ns)
        sh("ip", "addr", "add", f"{net}.1/30", "dev", here)
        sh("ip", "link", "set", here, "up")
        inside = ("ip", "netns", "exec", ns)
        sh(*inside, "ip", "addr", "add", f"{net}.2/30", "dev", there)
        sh(*inside, "ip", "link", "set", there, "up")
        sh(*inside, "ip", "link", "set", "lo", "up")
        tbf = ("tc", "qdisc", "add", "dev", there, "root", "tbf", "rate", RATE)
        sh(*inside, *tbf, "burst", "16kb", "latency", "300ms")
        yield ns, f"{net}.2"
    finally:
        subprocess.run(["ip", "link", "del", here], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def village_text(tmp: Path) -> str:
    station = hash_token(STATION_TOKEN)
    return (
        f"node: {{id: dongcun, name: Dongcun, data_dir: '{tmp}'}}\n"
        "sites: [{id: dongcun, name: Dongcun}]\n"
        f"users:\n  - {{name: admin, role: admin, token_hash: '{hash_token(ADMIN_TOKEN)}'}}\n"
        f"  - {{name: station, role: node, sites: [dongcun], token_hash: '{station}'}}\n"
        f"cameras:\n  - {{id: gate, name: Gate, site: dongcun, main: '{MAIN}', sub: '{SUB}'}}\n"
    )


@pytest.mark.slow
async def test_a_thin_uplink_keeps_the_sub_stream_playing_and_the_main_skips(
    namespace: tuple[str, str], start_node: NodeFactory, tmp_path: Path
) -> None:
    ns, address = namespace
    config = tmp_path / "village.yaml"
    config.write_text(village_text(tmp_path / "village"))
    with (tmp_path / "village.log").open("wb") as log:
        village = await asyncio.create_subprocess_exec(
            *("ip", "netns", "exec", ns, sys.executable, "-m", "relay", "run"),
            *("--config", str(config), "--listen", f"{address}:8080"),
            stderr=log,
        )
    try:
        station_text = station_yaml({"dongcun": 8080}).replace("127.0.0.1:8080", f"{address}:8080")
        node = await start_node(station_text.replace("xicun", "nowhere"))
        station = Running(node.url, 0, node.app, None)  # type: ignore[arg-type]
        async with aiohttp.ClientSession() as http:
            await wait_states(http, station, {"dongcun.gate": "online"}, 40)
            sub = WhepClient(f"{node.url}/whep/dongcun.gate?stream=sub", token=ADMIN_TOKEN)
            main = WhepClient(f"{node.url}/whep/dongcun.gate?stream=main", token=ADMIN_TOKEN)
            try:
                await sub.connect(http)
                async with asyncio.timeout(15):
                    await sub.first_frame()
                await main.connect(http)
                async with asyncio.timeout(20):
                    await main.first_frame()
                sub_start, main_start = sub.watch.frames, main.watch.frames
                await asyncio.sleep(8)
                sub_fps = (sub.watch.frames - sub_start) / 8
                main_fps = (main.watch.frames - main_start) / 8
                async with http.get(f"http://{address}:8080/api/cameras/gate", headers=ADMIN) as r:
                    stats = (await r.json())["streams"]["main"]["stats"]
                print(f"village main: {stats['fps']} fps, {stats['bitrate_kbps']} kbit/s")
                print(f"through {RATE}: sub {sub_fps:.1f} fps (of 10), main {main_fps:.1f} (of 30)")
                assert sub_fps > 6, "the sub-stream tile plays on"
                assert main_fps < 27, "the main stream skips rather than queues"
            finally:
                await sub.close(http)
                await main.close(http)
            # The village's own account of the main stream: packets it skipped for us.
            audit_url = f"http://{address}:8080/api/audit?action=peer.stream.end"
            async with asyncio.timeout(20):
                while True:
                    async with http.get(audit_url, headers=ADMIN) as r:
                        entries = (await r.json())["entries"]
                    mains = [e for e in entries if '"main"' in str(e) or "'main'" in str(e)]
                    if mains:
                        break
                    await asyncio.sleep(0.5)  # the pull closes after the idle grace
            print(mains[0])
            assert mains[0]["detail"]["dropped"] > 0, "the village skipped, not queued"
    finally:
        village.terminate()
        await village.wait()
