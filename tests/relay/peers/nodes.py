"""Three real nodes on 127.0.0.1: a station and two villages with synthetic cameras."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from aiohttp import web

from relay.access.passwords import hash_token
from relay.app import create_app
from relay.config import parse_config
from tests.conftest import ADMIN, users_yaml
from tests.helpers import free_port

STATION_TOKEN = "station-node-token-0123456789"
NODE = {"Authorization": f"Bearer {STATION_TOKEN}"}  # the station, at a village
LI = {"Authorization": "Bearer li-token"}  # an officer of dongcun at the station
CAMERA = "synthetic://320x180?fps=10&keyframe_interval=1&bitrate=200"

T = TypeVar("T")


def village_yaml(village: str, cameras: list[tuple[str, str]]) -> str:
    """A village node with its own root site, an east sub-site, `cameras` as (id, site)
    with a main and a sub stream, and the station as a node user of the whole village."""
    lines = [
        f"node: {{id: {village}, name: {village.title()} node}}",
        f"sites: [{{id: {village}, name: {village.title()}}},"
        f" {{id: {village}-east, name: {village.title()} east, parent: {village}}}]",
        "webrtc: {host_addresses: [127.0.0.1]}",
        users_yaml().rstrip("\n"),
        f"  - {{name: station, role: node, sites: [{village}],"
        f" token_hash: '{hash_token(STATION_TOKEN)}'}}",
        "cameras:",
    ]
    for cam_id, site in cameras:
        lines.append(
            f"  - {{id: {cam_id}, name: {cam_id.title()} {village}, site: {site},"
            f" main: '{CAMERA}', sub: '{CAMERA}'}}"
        )
    return "\n".join(lines) + "\n"


def station_yaml(ports: dict[str, int], extra: str = "") -> str:
    peers = "\n".join(
        f"  - {{id: {v}, url: 'http://127.0.0.1:{p}', token: {STATION_TOKEN}, site: station,"
        f" idle_timeout: 2}}"
        for v, p in ports.items()
    )
    return (
        "node: {id: station, name: Station}\n"
        "sites: [{id: station, name: Station},"
        " {id: dongcun, name: Dongcun, parent: station},"
        " {id: xicun, name: Xicun, parent: station}]\n"
        "webrtc: {host_addresses: [127.0.0.1]}\n"
        + users_yaml(("li", "officer", "dongcun"))
        + f"peers:\n{peers}\n"
        + extra
    )


@dataclass
class Running:
    url: str
    port: int
    app: web.Application
    runner: web.AppRunner


@dataclass
class Cascade:
    tmp: Path
    texts: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    nodes: dict[str, Running] = field(default_factory=dict)

    async def start(self, name: str) -> Running:
        config = parse_config(self.texts[name])
        data_dir = str(self.tmp / name)
        config = config.model_copy(
            update={"node": config.node.model_copy(update={"data_dir": data_dir})}
        )
        app = create_app(config)
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=5)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.ports[name], reuse_address=True).start()
        self.nodes[name] = Running(
            f"http://127.0.0.1:{self.ports[name]}", self.ports[name], app, runner
        )
        return self.nodes[name]

    async def stop(self, name: str) -> None:
        await self.nodes.pop(name).runner.cleanup()

    @property
    def station(self) -> Running:
        return self.nodes["station"]


async def cascade_of(
    tmp: Path, station_extra: str = "", village_extra: str = ""
) -> AsyncIterator[Cascade]:
    net = Cascade(tmp)
    net.ports = {name: free_port() for name in ("dongcun", "xicun", "station")}
    dongcun = village_yaml("dongcun", [("gate", "dongcun"), ("well", "dongcun-east")])
    net.texts["dongcun"] = dongcun + village_extra
    net.texts["xicun"] = village_yaml("xicun", [("gate", "xicun")]) + village_extra
    villages = {v: net.ports[v] for v in ("dongcun", "xicun")}
    net.texts["station"] = station_yaml(villages, station_extra)
    try:
        for name in ("dongcun", "xicun", "station"):
            await net.start(name)
        yield net
    finally:
        for name in list(net.nodes)[::-1]:
            await net.stop(name)


async def get_json(http: aiohttp.ClientSession, url: str, headers: dict[str, str] = ADMIN) -> Any:
    async with http.get(url, headers=headers) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def cameras_by_id(http: aiohttp.ClientSession, node: Running) -> dict[str, Any]:
    return {c["id"]: c for c in await get_json(http, f"{node.url}/api/cameras")}


async def wait_states(
    http: aiohttp.ClientSession, node: Running, wanted: dict[str, str], within: float
) -> dict[str, Any]:
    """Ask the node's camera list until each camera named is in the state given."""
    found: dict[str, Any] = {}
    try:
        async with asyncio.timeout(within):
            while True:
                found = await cameras_by_id(http, node)
                if all(found.get(k, {}).get("state") == v for k, v in wanted.items()):
                    return found
                await asyncio.sleep(0.2)
    except TimeoutError:
        states = {k: (found.get(k) or {}).get("state") for k in wanted}
        raise AssertionError(f"not within {within} s: {wanted}, found {states}") from None


async def wait_until_async(
    ask: Callable[[], Awaitable[T]], good: Callable[[T], bool], within: float
) -> T:
    """Ask until the answer is good; the last answer in the failure."""
    answer: T | None = None
    try:
        async with asyncio.timeout(within):
            while True:
                answer = await ask()
                if good(answer):
                    return answer
                await asyncio.sleep(0.2)
    except TimeoutError:
        raise AssertionError(f"not within {within} s: {answer}") from None
