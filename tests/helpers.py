"""Small helpers shared by the tests."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

from aioice import stun

from ingest.packet import MediaPacket
from ingest.readers.base import Reader


async def wait_until(predicate: Callable[[], bool], within: float, what: str = "") -> float:
    """Poll `predicate` until true; return the seconds it took. Fails after `within` s.

    For state that has no event to await: threads, file descriptors, what another
    process did. Where the code under test offers an event, tests await that.
    """
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        async with asyncio.timeout(within):
            while not predicate():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"not within {within} s: {what or predicate}") from None
    return loop.time() - start


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def thread_names() -> list[str]:
    return sorted(t.name for t in threading.enumerate())


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def node_process(
    config: Path, port: int, *, cwd: Path | None = None, stderr: int | None = None
) -> asyncio.subprocess.Process:
    """`python -m relay run` on 127.0.0.1:PORT, as an installer would start it."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "relay",
        "run",
        "--config",
        str(config),
        "--listen",
        f"127.0.0.1:{port}",
        cwd=cwd,
        stderr=stderr,
    )


GOP = 25  # frames per GOP in the generated stream


def packet(index: int, size: int = 10_000) -> MediaPacket:
    return MediaPacket(
        "video",
        bytes(size),
        index * 3600,
        Fraction(1, 90000),
        index % GOP == 0,
        time.monotonic(),
    )


def binding_request(username: str | None) -> bytes:
    message = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
    if username is not None:
        message.attributes["USERNAME"] = username
    message.attributes["PRIORITY"] = 1
    return bytes(message)


def needs_root(why: str) -> None:
    """Skip a test that needs what only root may do (namespaces, mounts) on a
    developer's machine without it; under CI, which runs as root, fail instead:
    there the test must run, never pass silently."""
    import pytest

    if os.environ.get("CI"):
        pytest.fail(f"{why}, and CI runs as root: this test must run here")
    pytest.skip(why)


def read_packets(reader: Reader, count: int) -> list[MediaPacket]:
    """The next `count` packets of a reader (blocking: run it in a thread)."""
    packets: list[MediaPacket] = []
    while len(packets) < count:
        packet = reader.read()
        if packet is not None:
            packets.append(packet)
    return packets
