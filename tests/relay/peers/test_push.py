"""Catalog changes pushed: a village camera's state reaches the station as it changes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from camsim import CameraSimulator, MountSpec
from relay.access.passwords import hash_token
from relay.web.events import BUS
from tests.conftest import NodeFactory, users_yaml
from tests.helpers import free_port, wait_until
from tests.natsserver import NatsServer
from tests.relay.peers.nodes import (
    STATION_TOKEN,
    Cascade,
    Running,
    station_yaml,
    village_yaml,
    wait_states,
)

NODE = {"Authorization": f"Bearer {STATION_TOKEN}"}
GRANTED = ("gate", "dongcun")  # the station's node user sees the site dongcun only
HIDDEN = ("hidden", "xicun")
NODE_HASH = hash_token(STATION_TOKEN)


def village_text(sim: CameraSimulator) -> str:
    """Two camsim cameras (a mount each): one in the granted site, one outside it."""
    cameras = "".join(
        f"  - {{id: {cam}, name: {cam}, site: {site}, main: '{sim.url(cam)}', backoff_max: 1}}\n"
        for cam, site in (GRANTED, HIDDEN)
    )
    return (
        "node: {id: dongcun, name: Dongcun}\n"
        "sites: [{id: dongcun, name: Dongcun}, {id: xicun, name: Xicun}]\n"
        + users_yaml()
        + f"  - {{name: station, role: node, sites: [dongcun], token_hash: '{NODE_HASH}'}}\n"
        + f"cameras:\n{cameras}"
    )


@contextlib.asynccontextmanager
async def village_and_station_on(
    tmp_path: Path, bus: str
) -> AsyncIterator[tuple[Cascade, CameraSimulator]]:
    """A village and its station, both with the bus settings `bus`."""
    mounts = [MountSpec(cam, width=160, height=120, fps=5) for cam, _ in (GRANTED, HIDDEN)]
    with CameraSimulator(mounts) as sim:
        net = Cascade(tmp_path)
        net.ports = {"dongcun": free_port(), "station": free_port()}
        net.texts["dongcun"] = village_text(sim) + bus
        # poll 300: a ping every 5 minutes, so only a push can bring a change fast.
        station = station_yaml({"dongcun": net.ports["dongcun"]}, bus)
        net.texts["station"] = station.replace("idle_timeout: 2", "idle_timeout: 2, poll: 300")
        try:
            for name in ("dongcun", "station"):
                await net.start(name)
            yield net, sim
        finally:
            for name in list(net.nodes)[::-1]:
                await net.stop(name)


@pytest.fixture
async def village_and_station(tmp_path: Path) -> AsyncIterator[tuple[Cascade, CameraSimulator]]:
    async with village_and_station_on(tmp_path, "bus: {offline_debounce: 1}\n") as both:
        yield both


async def _feed(http: aiohttp.ClientSession, url: str, seen: list[Any]) -> None:
    async with http.ws_connect(f"{url}/api/catalog", headers=NODE) as ws:
        async for message in ws:
            seen.append(json.loads(message.data))


async def test_a_camera_state_change_reaches_the_station_at_once(
    village_and_station: tuple[Cascade, CameraSimulator],
) -> None:
    net, sim = village_and_station
    village, station = net.nodes["dongcun"], net.station
    seen: list[Any] = []
    async with aiohttp.ClientSession() as http:
        await wait_states(http, station, {"dongcun.gate": "online"}, 30)
        feed = asyncio.create_task(_feed(http, village.url, seen))
        try:
            await wait_until(lambda: bool(seen), 10, "the whole catalog first")
            (whole,) = seen
            assert [c["id"] for c in whole["catalog"]["cameras"]] == ["gate"]
            assert [s["id"] for s in whole["catalog"]["sites"]] == ["dongcun"]

            await asyncio.to_thread(sim.stop)
            down = await wait_states(http, village, {"gate": "offline"}, 15)
            at_village = time.monotonic()
            found = await wait_states(http, station, {"dongcun.gate": "offline"}, 5)
            lag = time.monotonic() - at_village
            print(f"offline at the station {lag:.2f} s after the village")
            assert lag < 2.0, "pushed, not polled (the station's poll is 300 s)"
            assert found["dongcun.gate"]["last_error"] == down["gate"]["last_error"]
            bus = station.app[BUS]  # the station's bus hears of it as of a local camera
            await wait_until(lambda: bus.cameras_down == {"dongcun.gate"}, 10, "camera.offline")

            await asyncio.to_thread(sim.start)
            await wait_states(http, village, {"gate": "online"}, 20)
            at_village = time.monotonic()
            await wait_states(http, station, {"dongcun.gate": "online"}, 5)
            assert time.monotonic() - at_village < 2.0
            await wait_until(lambda: not bus.cameras_down, 10, "camera.online")
        finally:
            feed.cancel()
            await asyncio.gather(feed, return_exceptions=True)
    changed = [c for message in seen[1:] for c in message["changed"]]
    assert {c["id"] for c in changed} == {"gate"}, "the hidden camera changed too, unsent"
    assert {c["state"] for c in changed} >= {"offline", "online"}


async def test_on_a_shared_bus_an_outage_is_one_alert_raised_by_the_village(
    tmp_path: Path,
) -> None:
    """Village and station on one NATS bus: the village raises its camera's outage,
    the station raises none of its own for it (one outage, one alert); only when the
    village cannot be reached does the station speak for its cameras."""
    with NatsServer(tmp_path / "nats") as nats:
        bus = f"bus: {{offline_debounce: 1, nats: {{servers: ['{nats.url}'], stream: PUSH}}}}\n"
        async with village_and_station_on(tmp_path, bus) as (net, sim):
            village, station = net.nodes["dongcun"], net.station
            at_village, at_station = village.app[BUS], station.app[BUS]
            async with aiohttp.ClientSession() as http:
                await wait_states(http, station, {"dongcun.gate": "online"}, 30)
                await asyncio.to_thread(sim.stop)
                await wait_until(
                    lambda: at_station.received["camera.offline"] >= 1, 20, "the village's alert"
                )
                await wait_states(http, station, {"dongcun.gate": "offline"}, 5)
                await asyncio.sleep(2)  # twice the debounce: the station raises nothing
                assert "gate" in at_village.cameras_down
                assert at_station.raised["camera.offline"] == 0
                assert not at_station.cameras_down

                await asyncio.to_thread(sim.start)
                await wait_until(
                    lambda: at_station.received["camera.online"] >= 1,
                    30,
                    "back, said by the village",
                )
                await net.stop("dongcun")  # now nobody else can say it
                await wait_until(
                    lambda: at_station.raised["camera.offline"] >= 1, 10, "unreachable"
                )
                assert at_station.cameras_down == {"dongcun.gate"}
                assert at_station.raised["camera.offline"] == 1


async def _village_process(config: Path, port: int) -> asyncio.subprocess.Process:
    with config.with_suffix(".log").open("ab") as log:
        return await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "relay", "run", "--config", str(config)),
            *("--listen", f"127.0.0.1:{port}"),
            stderr=log,
        )


@pytest.mark.slow
async def test_a_killed_village_is_unreachable_at_once_and_comes_back(
    tmp_path: Path, start_node: NodeFactory
) -> None:
    port = free_port()
    config = tmp_path / "village.yaml"
    text = village_yaml("dongcun", [("gate", "dongcun")])
    config.write_text(
        text.replace("node: {id: dongcun", f"node: {{data_dir: '{tmp_path}', id: dongcun")
    )
    village = await _village_process(config, port)
    try:
        station = station_yaml({"dongcun": port}).replace("xicun", "nowhere")
        node = await start_node(station.replace("idle_timeout: 2", "idle_timeout: 2, poll: 300"))
        at_station = Running(node.url, 0, node.app, None)  # type: ignore[arg-type]
        async with aiohttp.ClientSession() as http:
            await wait_states(http, at_station, {"dongcun.gate": "online"}, 40)
            village.kill()  # -9: no goodbye, only the kernel closing its sockets
            await village.wait()
            found = await wait_states(http, at_station, {"dongcun.gate": "offline"}, 3)
            assert found["dongcun.gate"]["last_error"] == "village node unreachable"
            village = await _village_process(config, port)
            await wait_states(http, at_station, {"dongcun.gate": "online"}, 40)
    finally:
        with contextlib.suppress(ProcessLookupError):
            village.kill()
        await village.wait()
