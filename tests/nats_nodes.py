"""Two nodes on one NATS server, and how the tests raise alarms on them."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from relay.web.events import LINK
from tests.conftest import Node, NodeFactory, users_yaml
from tests.natsserver import NatsServer


def node_config(node_id: str, nats_url: str, *, station: bool, data_dir: str = "var") -> str:
    sites = "  - {id: station, name: Station}\n  - {id: east, name: East, parent: station}\n"
    if station:
        sites += "  - {id: west, name: West, parent: station}\n"
    return (
        f"node: {{id: {node_id}, name: {node_id}, data_dir: '{data_dir}'}}\n"
        f"sites:\n{sites}"
        "cameras:\n"
        "  - {id: e1, name: E1, site: east, main: 'synthetic://160x120?fps=5'}\n"
        f"bus: {{nats: {{servers: ['{nats_url}'], stream: TEST}}}}\n"
        + users_yaml(("officer", "officer", "station"), ("east-op", "operator", "east"))
    )


async def two_nodes(start_node: NodeFactory, nats: NatsServer) -> tuple[Node, Node]:
    village = await start_node(node_config("village", nats.url, station=False))
    station = await start_node(node_config("station", nats.url, station=True))
    for node in (village, station):
        async with asyncio.timeout(10):
            await node.app[LINK].connected.wait()
    return village, station


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {name}-token"}


async def raise_alarm(
    http: aiohttp.ClientSession, url: str, reason: str, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """An alarm on camera e1 (by east-op unless told), accepted."""
    async with http.post(
        f"{url}/api/events",
        headers=headers or bearer("east-op"),
        json={"type": "alarm", "camera": "e1", "reason": reason},
    ) as r:
        assert r.status == 201, await r.text()
        alarm: dict[str, Any] = await r.json()
        return alarm
