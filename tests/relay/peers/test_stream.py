"""The HTTP stream a node serves its peers: the GOP first, timestamps kept, bounded."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from ingest.packet import MediaPacket
from ingest.readers.peer import PeerReader
from ingest.wire import FrameBuffer, packet_frame, parse_packet
from relay.app import create_app
from relay.config import PeerConfig, parse_config
from relay.media.hub import HubSettings
from relay.peers.channel import stream_url
from relay.web.keys import HUB
from relay.web.peers import STREAMS
from tests.helpers import free_port, packet, read_packets, wait_until
from tests.relay.peers.nodes import STATION_TOKEN, village_yaml

FAST = "synthetic://640x360?fps=30&keyframe_interval=4&bitrate=4000"


@pytest.fixture
async def village(tmp_path: Path) -> AsyncIterator[tuple[web.Application, int]]:
    text = village_yaml("dongcun", [("gate", "dongcun")]).replace(
        "synthetic://320x180?fps=10&keyframe_interval=1&bitrate=200", FAST
    )
    config = parse_config(text)
    config = config.model_copy(
        update={"node": config.node.model_copy(update={"data_dir": str(tmp_path)})}
    )
    app = create_app(config, HubSettings(queue_packets=20))
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=5)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield app, port
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("dts", [None, -3600], ids=["no-dts", "b-frame-dts"])
def test_a_frame_carries_a_packet_unchanged(dts: int | None) -> None:
    sent = dataclasses.replace(packet(0, 1000), dts=dts)
    buffer = FrameBuffer()
    frame = packet_frame(sent)
    for i in range(len(frame)):  # however the network cuts it
        buffer.feed(frame[i : i + 1])
    body = buffer.next_frame()
    assert body is not None
    got = parse_packet(body, 0.0)
    assert (got.kind, got.data, got.pts, got.dts, got.time_base, got.keyframe) == (
        sent.kind,
        sent.data,
        sent.pts,
        sent.dts,
        sent.time_base,
        sent.keyframe,
    )


async def test_a_peer_starts_at_the_cached_gop_with_the_camera_timestamps(
    village: tuple[web.Application, int],
) -> None:
    app, port = village
    channel = app[HUB].channel("gate", "sub")
    assert channel is not None
    await asyncio.wait_for(channel.wait_online(), 10)
    await wait_until(lambda: len(channel.gop()) > 10, 10, "a GOP cached")
    cached = channel.gop()
    peer = PeerConfig(id="dongcun", url=f"http://127.0.0.1:{port}", token=STATION_TOKEN)
    url = stream_url(peer, "gate", "sub")

    def read(count: int) -> list[MediaPacket]:
        reader = PeerReader(url, connect_timeout=5)
        try:
            assert reader.info.codec == "h264" and reader.info.width == 640
            return read_packets(reader, count)
        finally:
            reader.close()

    got = await asyncio.to_thread(read, 5)
    assert got[0].keyframe and got[0].kind == "video"
    assert [(p.pts, p.data) for p in got] == [(p.pts, p.data) for p in cached[:5]]


async def test_a_slow_peer_drops_to_keyframes_and_stays_bounded(
    village: tuple[web.Application, int],
) -> None:
    app, port = village
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    await asyncio.to_thread(sock.connect, ("127.0.0.1", port))
    request = (
        "GET /api/cameras/gate/stream?stream=main HTTP/1.0\r\n"
        f"Authorization: Bearer {STATION_TOKEN}\r\n\r\n"
    )
    sock.sendall(request.encode())
    try:
        await wait_until(lambda: len(app[STREAMS]) == 1, 10, "the stream served")
        (sub,) = app[STREAMS]
        await wait_until(lambda: sub.dropped > 0, 15, "packets dropped for a reader that stalls")
        assert sub.pending() <= sub.limit
        channel = app[HUB].channel("gate")
        assert channel is not None and channel.source.state == "online"
        stop = threading.Event()

        def drain() -> int:
            sock.settimeout(0.5)
            total = 0
            while not stop.is_set():
                try:
                    total += len(sock.recv(65536))
                except TimeoutError:
                    continue
            return total

        reading = asyncio.create_task(asyncio.to_thread(drain))
        delivered = sub.delivered
        await wait_until(lambda: sub.delivered > delivered + 30, 20, "it plays on once read")
        stop.set()
        assert await reading > 0
    finally:
        sock.close()
