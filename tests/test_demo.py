"""The README's first command runs the shipped demo config and says how to log in."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from pathlib import Path

import aiohttp

from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[1]


async def test_demo_node_starts_tells_how_to_log_in_and_stops(tmp_path: Path) -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "relay",
        "run",
        "--config",
        str(ROOT / "config.yaml"),
        "--listen",
        f"127.0.0.1:{port}",
        cwd=tmp_path,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(20):
            while not any("log in:" in line for line in lines):
                line = (await process.stderr.readline()).decode()
                assert line, "the node exited: " + "".join(lines)
                lines.append(line)
        assert any(f"http://127.0.0.1:{port}/" in line for line in lines)
        assert "password = name + '-demo'" in "".join(lines)
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
            login = {"name": "operator", "password": "operator-demo"}
            async with http.post("/api/login", json=login) as r:
                assert r.status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            await process.communicate()
    assert process.returncode == 0
    assert (tmp_path / "var" / "demo" / "node.sqlite").exists()


async def test_a_taken_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "relay",
            "run",
            "--config",
            str(ROOT / "config.yaml"),
            "--listen",
            f"127.0.0.1:{port}",
            cwd=tmp_path,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(20):
            _, err = await process.communicate()
    assert process.returncode == 1
    last = err.decode().strip().splitlines()[-1]
    assert last == (
        f"cannot listen on 127.0.0.1:{port}: address already in use;"
        " choose another address with --listen HOST:PORT"
    )
