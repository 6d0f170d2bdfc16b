"""CameraSource against a real RTSP server: faults, recovery, and clean stops."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from camsim import CameraSimulator, MountSpec
from ingest.packet import MediaPacket
from ingest.source import CameraSource
from ingest.state import SourceSettings, SourceState
from tests.helpers import free_port, open_fds, wait_until

FAST = SourceSettings(connect_timeout=3.0, stall_timeout=2.0, backoff_initial=0.3, backoff_max=2.0)
SECRET = "Pa55-never-shown"


def source(url: str, name: str = "cam", settings: SourceSettings = FAST) -> CameraSource:
    packets: list[MediaPacket] = []
    return CameraSource(name, url, label=name, settings=settings, on_packet=packets.append)


def reader_threads() -> int:
    return sum(t.name.startswith("camera-") for t in threading.enumerate())


def tasks() -> int:
    return len(asyncio.all_tasks())


@pytest.fixture(scope="module")
def sixteen() -> Iterator[CameraSimulator]:
    mounts = [MountSpec(f"cam{i}", width=320, height=180, fps=10) for i in range(16)]
    with CameraSimulator(mounts) as sim:
        yield sim


@pytest.mark.slow
async def test_sixteen_cameras_ride_out_five_server_restarts(sixteen: CameraSimulator) -> None:
    sources = [source(sixteen.url(f"cam{i}"), f"cam{i}") for i in range(16)]
    for s in sources:
        s.start()
    try:
        await wait_until(lambda: all(s.state is SourceState.ONLINE for s in sources), 15)
        baseline = (reader_threads(), tasks(), open_fds())
        for _cycle in range(5):
            await asyncio.to_thread(sixteen.stop)
            await wait_until(
                lambda: not any(s.state is SourceState.ONLINE for s in sources),
                FAST.stall_timeout + 1,
                "every camera leaves online",
            )
            assert {s.last_error for s in sources} <= {
                "camera closed the stream",
                f"connection refused by 127.0.0.1:{sixteen.port} (camera off, or wrong port)",
            }
            await asyncio.to_thread(sixteen.restart)
            await wait_until(
                lambda: all(s.state is SourceState.ONLINE for s in sources),
                FAST.backoff_max + 2,
                "every camera back online",
            )
        await wait_until(
            lambda: (reader_threads(), tasks(), open_fds()) == baseline,
            3,
            f"threads, tasks and fds back to {baseline}",
        )
        assert all(s.stats.reconnects >= 5 for s in sources)
    finally:
        await asyncio.gather(*(s.stop() for s in sources))
    assert reader_threads() == 0


async def test_stream_info_and_stats() -> None:
    mounts = [MountSpec("high", profile="high", width=640, height=360, fps=15, audio="pcma")]
    with CameraSimulator(mounts) as sim:
        cam = source(sim.url("high"))
        cam.start()
        try:
            await wait_until(lambda: cam.stats.keyframe_interval is not None, 10)
            info = cam.info
            assert info is not None
            assert (info.codec, info.profile, info.width, info.height) == ("h264", "High", 640, 360)
            assert info.audio_codec == "pcm_alaw"
            stats = cam.snapshot()["stats"]
            assert isinstance(stats, dict)
            assert 10 <= float(stats["fps"]) <= 20
            assert float(stats["bitrate_kbps"]) > 0
            assert abs(float(stats["keyframe_interval"]) - 2.0) < 0.5
        finally:
            await cam.stop()


async def test_stalled_mount_is_detected_and_recovered() -> None:
    with CameraSimulator([MountSpec("cam", width=320, height=180, fps=10)]) as sim:
        cam = source(sim.url("cam"))
        cam.start()
        try:
            await wait_until(lambda: cam.state is SourceState.ONLINE, 10)
            await asyncio.to_thread(sim.stall, "cam")
            took = await wait_until(lambda: cam.state is SourceState.STALLED, 5)
            assert took < FAST.stall_timeout + 1
            assert cam.last_error == "stream stopped sending"
            await asyncio.to_thread(sim.unstall, "cam")
            await wait_until(lambda: cam.state is SourceState.ONLINE, FAST.backoff_max + 5)
        finally:
            await cam.stop()


async def test_wrong_password_is_named_and_never_shown(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with CameraSimulator([MountSpec("cam")], user="admin", password="right") as sim:
        url = sim.url("cam").replace("admin:right@", f"admin:{SECRET}@")
        cam = source(url)
        cam.start()
        try:
            await wait_until(lambda: cam.state is SourceState.OFFLINE, 10)
            assert cam.last_error == "wrong user or password"
            assert SECRET not in repr(cam.snapshot())
        finally:
            await cam.stop()
    assert SECRET not in caplog.text
    assert "wrong user or password" in caplog.text


async def test_closed_port_backs_off_instead_of_spinning() -> None:
    port = free_port()
    cam = source(f"rtsp://127.0.0.1:{port}/cam")
    cam.start()
    try:
        await asyncio.sleep(4)  # the thing measured is how little happens in this time
        assert cam.state is SourceState.OFFLINE
        refused = f"connection refused by 127.0.0.1:{port} (camera off, or wrong port)"
        assert cam.last_error == refused
        # 0.3 s doubling to a 2 s cap (jittered down to half) gives at most ~8 tries in 4 s.
        assert 2 <= cam.stats.reconnects <= 9, cam.stats.reconnects
    finally:
        await cam.stop()


def unreachable_port() -> tuple[socket.socket, list[socket.socket]]:
    """A port whose SYNs go unanswered, like a host that is down: a listener that
    never accepts, its backlog already full. Stays on 127.0.0.1."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    fillers = []
    for _ in range(2):
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex(server.getsockname())
        fillers.append(c)
    return server, fillers


async def test_unreachable_host_times_out_and_backs_off() -> None:
    server, fillers = unreachable_port()
    port = server.getsockname()[1]
    settings = SourceSettings(connect_timeout=1.0, backoff_initial=0.3, backoff_max=2.0)
    cam = source(f"rtsp://127.0.0.1:{port}/cam", settings=settings)
    cam.start()
    try:
        await wait_until(lambda: cam.state is SourceState.OFFLINE, 5)
        assert cam.last_error == f"no answer from 127.0.0.1:{port}"
        tries = cam.stats.reconnects
        await asyncio.sleep(3)  # measuring how little happens
        assert cam.stats.reconnects - tries <= 3
    finally:
        await cam.stop()
        server.close()
        for c in fillers:
            c.close()


async def test_silent_server_does_not_hold_up_stop() -> None:
    """A server that accepts TCP and never says a word: stop is clean within 2 s."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True).start()
    settings = SourceSettings(connect_timeout=30.0)
    cam = source(f"rtsp://u:{SECRET}@127.0.0.1:{server.getsockname()[1]}/cam", settings=settings)
    cam.start()
    try:
        await wait_until(lambda: bool(accepted), 5, "the camera connected")
        await asyncio.sleep(0.5)  # let the reader block in the RTSP handshake
        started = time.monotonic()
        await cam.stop()
        await wait_until(lambda: reader_threads() == 0, 2, "the reader thread ended")
        assert time.monotonic() - started < 2
        assert cam.state is SourceState.IDLE
    finally:
        await cam.stop()
        server.close()
        for c in accepted:
            c.close()
