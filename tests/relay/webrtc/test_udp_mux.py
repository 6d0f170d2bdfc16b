"""One UDP port for every viewer (webrtc.udp_port): demultiplexed by ufrag, then by
the remote address."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import aiohttp
import psutil
from aioice import stun

from relay.web.whep import WHEP
from relay.webrtc.client import WhepClient
from relay.webrtc.udp_mux import stun_local_ufrag
from tests.conftest import ADMIN_TOKEN, NodeFactory, log_in, node_yaml
from tests.helpers import binding_request, free_port, wait_until

CAMERA = "  - {id: gate, name: Gate, site: village, main: 'synthetic://160x120?fps=10'}\n"


def test_the_local_ufrag_is_read_from_a_binding_request_only() -> None:
    assert stun_local_ufrag(binding_request("abcd:efgh")) == "abcd"
    assert stun_local_ufrag(binding_request(None)) is None
    answer = stun.Message(stun.Method.BINDING, stun.Class.RESPONSE)
    answer.attributes["USERNAME"] = "abcd:efgh"
    assert stun_local_ufrag(bytes(answer)) is None
    assert stun_local_ufrag(b"\x17\xfe\xfd" + bytes(40)) is None  # DTLS
    truncated = binding_request("abcd:efgh")
    assert stun_local_ufrag(truncated[:22] + struct.pack("!H", 999)) is None


async def test_eight_viewers_share_one_udp_socket(start_node: NodeFactory) -> None:
    port = free_port()
    node = await start_node(
        node_yaml(CAMERA).replace(
            "host_addresses: [127.0.0.1]",
            f"host_addresses: [127.0.0.1], udp_port: {port}, pending_per_credential_camera: 8",
        )
    )
    async with aiohttp.ClientSession() as http:
        clients = [WhepClient(f"{node.url}/whep/gate", token=ADMIN_TOKEN) for _ in range(8)]
        try:
            await asyncio.gather(*(c.connect(http) for c in clients))
            async with asyncio.timeout(15):
                await asyncio.gather(*(c.first_frame() for c in clients))
            on_port = [
                c for c in psutil.Process().net_connections(kind="udp") if c.laddr.port == port
            ]
            assert len(on_port) == 1, on_port  # the viewers' own are elsewhere
            shared = node.app[WHEP].ice.mux.sockets["127.0.0.1"]  # type: ignore[union-attr]
            assert len(shared.candidates) == 8
            assert len(shared.by_address) >= 8  # each viewer known by its address
            before = [c.watch.frames for c in clients]
            await wait_until(
                lambda: all(c.watch.frames > b + 5 for c, b in zip(clients, before, strict=True)),
                10,
                "every viewer keeps receiving",
            )
        finally:
            for client in clients:
                await client.close(http)
    await wait_until(lambda: not shared.candidates and not shared.by_address, 10, "all let go")


DECODED_JS = """
async () => {
  const deadline = performance.now() + 15000;
  while (performance.now() < deadline) {
    const stats = window.player && await window.player.stats();
    if (stats && stats.framesDecoded > 0) return stats.framesDecoded;
    await new Promise((r) => setTimeout(r, 20));
  }
  return 0;
}
"""


async def test_chromium_plays_eight_views_through_the_one_port(
    start_node: NodeFactory, browser: Any
) -> None:
    port = free_port()
    node = await start_node(
        node_yaml(CAMERA).replace(
            "host_addresses: [127.0.0.1]",
            f"host_addresses: [127.0.0.1], udp_port: {port}, pending_per_credential_camera: 8",
        )
    )
    context = await browser.new_context()
    pages = [await context.new_page() for _ in range(8)]
    await log_in(pages[0], node)  # the context shares its cookie
    await asyncio.gather(*(page.goto(f"{node.url}/view/gate") for page in pages))
    decoded = await asyncio.gather(*(page.evaluate(DECODED_JS) for page in pages))
    assert all(decoded), decoded
    assert len(node.app[WHEP].sessions) == 8
    # Chromium is a process of its own: every UDP socket of this one is the node's.
    sockets = psutil.Process().net_connections(kind="udp")
    assert [c.laddr.port for c in sockets] == [port], sockets
    await context.close()
