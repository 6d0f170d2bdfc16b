"""ICE over TCP: with UDP blocked, Chromium plays through the node's TCP port."""

from __future__ import annotations

import asyncio
import json
import struct
import sys
from pathlib import Path
from typing import Any

import pytest

from relay.webrtc.ice_tcp import IceTcpServer
from tests.conftest import node_yaml
from tests.helpers import binding_request, free_port

ROOT = Path(__file__).resolve().parents[3]
CAMERA = "  - {id: gate, name: Gate, site: village, main: 'synthetic://160x120?fps=10'}\n"


async def play_in_namespace(tmp_path: Path, config: str, *flags: str) -> dict[str, Any]:
    path = tmp_path / "node.yaml"
    path.write_text(
        config.replace(
            "node: {id: test, name: Test node}",
            f"node: {{id: test, name: Test node, data_dir: '{tmp_path}'}}",
        )
    )
    process = await asyncio.create_subprocess_exec(
        "unshare",
        "-n",
        sys.executable,
        str(ROOT / "tests" / "netns_play.py"),
        str(path),
        "gate",
        *flags,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(90):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()[-2000:]
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


@pytest.mark.browser
async def test_chromium_plays_over_ice_tcp_when_udp_is_blocked(tmp_path: Path) -> None:
    config = node_yaml(CAMERA).replace(
        "host_addresses: [127.0.0.1]", "host_addresses: [127.0.0.1], tcp_port: 8189"
    )
    played = await play_in_namespace(tmp_path, config, "--block-udp")
    assert played.get("frames", 0) > 0, played
    assert played["protocol"] == "tcp", played


@pytest.mark.browser
async def test_without_a_tcp_port_blocked_udp_plays_nothing(tmp_path: Path) -> None:
    """The firewall really blocks: the same page without ICE-TCP decodes no frame."""
    played = await play_in_namespace(tmp_path, node_yaml(CAMERA), "--block-udp", "--seconds", "6")
    assert played.get("frames") == 0, played


class Recorder:
    """Stands where aioice's StunProtocol would: what the candidate was given."""

    def __init__(self, ufrag: str) -> None:
        self.receiver = type("Receiver", (), {"local_username": ufrag})()
        self.datagrams: list[tuple[bytes, tuple[str, int]]] = []
        self.got = asyncio.Event()

    def connection_made(self, transport: object) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.datagrams.append((data, addr))
        self.got.set()

    def connection_lost(self, exc: Exception | None) -> None:
        pass


async def test_frames_reach_the_session_their_first_check_names() -> None:
    server = IceTcpServer(free_port())
    recorder = Recorder("abcd")
    candidate = await server.candidate(recorder, "127.0.0.1")
    try:
        # A stranger's connection is closed at its first frame.
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(struct.pack("!H", 5) + b"hello")
        async with asyncio.timeout(5):
            assert await reader.read() == b""
        writer.close()
        # A check naming the session, cut in two, then a frame the other way.
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        check = binding_request("abcd:efgh")
        framed = struct.pack("!H", len(check)) + check
        writer.write(framed[:7])
        await writer.drain()
        writer.write(framed[7:])
        async with asyncio.timeout(5):
            await recorder.got.wait()
        assert recorder.datagrams[0][0] == check
        peer = recorder.datagrams[0][1]
        candidate.sendto(b"answer", peer)
        async with asyncio.timeout(5):
            assert await reader.readexactly(8) == struct.pack("!H", 6) + b"answer"
        writer.close()
    finally:
        candidate.close()
        server.close()
