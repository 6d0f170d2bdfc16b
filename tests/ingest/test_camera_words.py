"""What an operator reads about a camera that misbehaves, on every attempt: real
misbehaving TCP servers of the test's own on 127.0.0.1, and camsim."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from camsim import CameraSimulator, MountSpec
from ingest.packet import MediaPacket
from ingest.source import CameraSource
from ingest.state import SourceSettings, SourceState
from tests.helpers import wait_until

QUICK = SourceSettings(connect_timeout=1.5, stall_timeout=1.5, backoff_initial=0.2, backoff_max=0.4)
SDP = (
    "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=cam\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\n"
    "a=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1;"
    "sprop-parameter-sets=Z0LAHtkDxWhAAAADAEAAAAwDxYuS,aMuMsg==\r\na=control:track1\r\n"
)
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def closes_at_once(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


async def answers_junk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(100)
    writer.write(b"SSH-2.0-OpenSSH_9.2\r\nProtocol mismatch.\r\n")
    await writer.drain()
    await reader.read(100)  # then holds the line open, as such servers do


async def rtsp_without_media(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers OPTIONS, DESCRIBE, SETUP and PLAY as a camera does, and then sends
    not one RTP packet."""
    extra = {
        "OPTIONS": "Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN\r\n",
        "DESCRIBE": f"Content-Type: application/sdp\r\nContent-Length: {len(SDP)}\r\n",
        "SETUP": "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\nSession: 1234\r\n",
        "PLAY": "Session: 1234\r\n",
    }
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        lines = head.decode().split("\r\n")
        method = lines[0].split()[0]
        cseq = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("CSeq"))
        body = SDP if method == "DESCRIBE" else ""
        writer.write(
            f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n{extra.get(method, '')}\r\n{body}".encode()
        )
        await writer.drain()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    servers: list[asyncio.Server] = []
    handlers: set[asyncio.Task[None]] = set()

    async def start(handler: Handler) -> str:
        async def tracked(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            handlers.add(task)
            try:
                await handler(r, w)
            finally:
                w.close()
                handlers.discard(task)

        server = await asyncio.start_server(tracked, "127.0.0.1", 0)
        servers.append(server)
        return f"rtsp://127.0.0.1:{server.sockets[0].getsockname()[1]}/cam"

    yield start
    for server in servers:
        server.close()
    for task in list(handlers):
        task.cancel()
    await asyncio.gather(*handlers, return_exceptions=True)


async def words_over_attempts(
    url: str, caplog: pytest.LogCaptureFixture, attempts: int = 3
) -> tuple[set[str], CameraSource]:
    """What the operator is told after each of `attempts` failed connects."""
    caplog.set_level(logging.INFO, "ingest.source")
    packets: list[MediaPacket] = []
    cam = CameraSource("cam", url, label="cam", settings=QUICK, on_packet=packets.append)
    cam.start()
    try:
        await wait_until(lambda: cam.stats.reconnects >= attempts, 30, f"{attempts} attempts")
    finally:
        await cam.stop()
    said = {
        match.group(1)
        for record in caplog.records
        if (match := re.fullmatch(r"camera cam: (.*); retrying in .*", record.getMessage()))
    }
    return said, cam


async def test_a_server_that_closes_at_once_closed_the_connection(
    serve: Callable[[Handler], Awaitable[str]], caplog: pytest.LogCaptureFixture
) -> None:
    said, _ = await words_over_attempts(await serve(closes_at_once), caplog)
    assert said == {"camera closed the connection"}


async def test_junk_in_answer_to_rtsp_is_not_an_rtsp_camera(
    serve: Callable[[Handler], Awaitable[str]], caplog: pytest.LogCaptureFixture
) -> None:
    said, _ = await words_over_attempts(await serve(answers_junk), caplog)
    assert said == {"not an RTSP camera, or a wrong path"}


async def test_rtsp_without_media_is_connected_but_no_video(
    serve: Callable[[Handler], Awaitable[str]], caplog: pytest.LogCaptureFixture
) -> None:
    said, _ = await words_over_attempts(await serve(rtsp_without_media), caplog)
    assert said == {"connected, but no video"}


async def test_a_camsim_mount_that_stalls_is_then_connected_but_no_video_until_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Online, then the mount stops sending: first "stream stopped sending", then
    on every reconnect "connected, but no video" (the server accepts, and hangs
    waiting for pictures), never "no answer". Online again clears last_error and
    keeps the last failure, with its time."""
    caplog.set_level(logging.INFO, "ingest.source")
    with CameraSimulator([MountSpec("cam", width=320, height=180, fps=10)]) as sim:
        cam = CameraSource(
            "cam", sim.url("cam"), label="cam", settings=QUICK, on_packet=lambda _: None
        )
        cam.start()
        try:
            await wait_until(lambda: cam.state is SourceState.ONLINE, 10)
            await asyncio.to_thread(sim.stall, "cam")
            await wait_until(lambda: cam.stats.reconnects >= 3, 20, "three reconnects")
            said = [
                match.group(1)
                for record in caplog.records
                if (match := re.fullmatch(r"camera cam: (.*); retrying in .*", record.getMessage()))
            ]
            assert said[0] == "stream stopped sending"
            assert set(said[1:]) == {"connected, but no video"}, said
            failed_at = time.time()
            await asyncio.to_thread(sim.unstall, "cam")
            await wait_until(lambda: cam.state is SourceState.ONLINE, 30)
            snapshot = cam.snapshot()
            assert snapshot["last_error"] is None, "online again: no error now"
            failure = snapshot["last_failure"]
            assert isinstance(failure, dict)
            assert failure["error"] == "connected, but no video"
            assert abs(float(failure["time"]) - failed_at) < 5
        finally:
            await cam.stop()
