"""The camera JSON says why a camera is not online now (`last_error`) and what its
last fault was, with its time (`last_failure`), in the operator's words."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from ingest.state import SourceState
from tests.conftest import ADMIN, NodeFactory, node_yaml
from tests.helpers import wait_until


async def test_camera_json_names_a_server_that_closes_at_once(start_node: NodeFactory) -> None:
    async def closes_at_once(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(closes_at_once, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        began = time.time()
        node = await start_node(
            node_yaml(
                f"  - {{id: gate, name: Gate, site: village, main: 'rtsp://127.0.0.1:{port}/x'}}\n"
            )
        )
        channel = node.hub.channel("gate")
        assert channel is not None
        await wait_until(lambda: channel.source.state is SourceState.OFFLINE, 10)
        async with (
            aiohttp.ClientSession(node.url, headers=ADMIN) as http,
            http.get("/api/cameras/gate") as r,
        ):
            gate = await r.json()
    finally:
        server.close()
    assert gate["state"] == "offline"
    assert gate["last_error"] == "camera closed the connection"
    assert gate["last_failure"]["error"] == "camera closed the connection"
    assert began <= gate["last_failure"]["time"] <= time.time()
