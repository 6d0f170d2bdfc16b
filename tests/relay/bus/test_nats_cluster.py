"""The bus on a 3-server JetStream cluster: a server killed while alarms flow, and
each node's consumer taking only its own sites' events."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from relay.bus import nats as natslink
from relay.web.events import LINK
from tests.conftest import ADMIN, Node, NodeFactory, users_yaml
from tests.helpers import wait_until
from tests.natscluster import NatsCluster
from tests.natsserver import nats_server_binary


def config(node_id: str, sites: list[tuple[str, str | None]], urls: list[str], cams: str) -> str:
    site_lines = "".join(
        f"  - {{id: {s}, name: {s}" + (f", parent: {p}}}\n" if p else "}\n") for s, p in sites
    )
    servers = ", ".join(f"'{u}'" for u in urls)
    return (
        f"node: {{id: {node_id}, name: {node_id}}}\n"
        f"sites:\n{site_lines}"
        + (f"cameras:\n{cams}" if cams else "cameras: []\n")
        + f"bus: {{nats: {{servers: [{servers}], stream: CLUSTER, replicas: 3}}}}\n"
        + users_yaml()
    )


async def alarms_at(http: aiohttp.ClientSession, node: Node) -> list[str]:
    async with http.get(f"{node.url}/api/events?type=alarm&limit=500", headers=ADMIN) as r:
        assert r.status == 200, await r.text()
        found: list[dict[str, Any]] = await r.json()
    return [e["id"] for e in found]


@pytest.mark.slow
async def test_alarms_survive_a_killed_server_and_reach_only_who_they_concern(
    start_node: NodeFactory, tmp_path: Path
) -> None:
    cam = "  - {id: e1, name: E1, site: east, main: 'synthetic://160x120?fps=5'}\n"
    with NatsCluster(tmp_path / "nats") as cluster:
        urls = cluster.urls
        east = await start_node(config("east", [("station", None), ("east", "station")], urls, cam))
        west = await start_node(config("west", [("station", None), ("west", "station")], urls, ""))
        station = await start_node(
            config(
                "station",
                [("station", None), ("east", "station"), ("west", "station")],
                urls,
                "",
            )
        )
        for node in (east, west, station):
            async with asyncio.timeout(20):
                await node.app[LINK].connected.wait()
        assert west.app[LINK].filters == [
            "CLUSTER.events.network",
            "CLUSTER.events.site.station",
            "CLUSTER.events.site.west",
        ]
        accepted: list[str] = []
        async with aiohttp.ClientSession() as http:

            async def raise_alarms(count: int) -> None:
                for i in range(count):
                    body = {"type": "alarm", "camera": "e1", "reason": f"n{i}"}
                    async with http.post(f"{east.url}/api/events", json=body, headers=ADMIN) as r:
                        if r.status == 201:
                            accepted.append((await r.json())["id"])
                    await asyncio.sleep(0.05)

            await raise_alarms(20)
            connected = east.app[LINK]._nc.connected_url  # the server the village uses
            victim = next(s for s in cluster.servers if s.port == connected.port)
            flowing = asyncio.create_task(raise_alarms(60))
            await wait_until(lambda: len(accepted) >= 35, 20, "alarms flowing")
            victim.kill()
            await wait_until(lambda: len(accepted) >= 60, 30, "alarms accepted, a server down")

            def failed_over() -> bool:
                nc = east.app[LINK]._nc
                return nc is not None and nc.is_connected and nc.connected_url.port != victim.port

            # While the server is down: afterwards the village may come back to it.
            await wait_until(failed_over, 30, "the village on another server")
            await asyncio.to_thread(cluster.start, victim)
            await flowing
            assert len(accepted) == 80

            async def all_arrived() -> list[str]:
                async with asyncio.timeout(60):
                    while True:
                        got = await alarms_at(http, station)
                        if set(accepted) <= set(got):
                            return got
                        await asyncio.sleep(0.5)

            got = await all_arrived()
            assert sorted(got) == sorted(set(got)), "an alarm arrived twice"
            assert set(got) == set(accepted)
            assert west.app[LINK].received == 0, "a village took another village's events"
            assert await alarms_at(http, west) == []
            assert station.app[LINK].received >= 80
            print(
                f"station took {station.app[LINK].received} messages, west "
                f"{west.app[LINK].received}, for {len(accepted)} alarms at east"
            )
    assert natslink.site_subject("S.events", None) == "S.events.network"


@pytest.mark.parametrize("server", [1, 2, 3])
def test_the_shipped_cluster_config_is_valid(server: int) -> None:
    path = Path(__file__).resolve().parents[3] / "deploy/nats-cluster" / f"nats-{server}.conf"
    checked = subprocess.run(
        [nats_server_binary(), "-c", str(path), "-t"], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stderr
    text = path.read_text()
    others = {f"nats-route://nats-{i}:6222" for i in (1, 2, 3) if i != server}
    assert all(route in text for route in others) and f"server_name: nats-{server}" in text
