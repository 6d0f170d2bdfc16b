"""The node as a process: a SIGTERM ends it promptly, whatever is open."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from pathlib import Path

import aiohttp

from relay.webrtc.client import WhepClient
from tests.helpers import free_port, node_process

ROOT = Path(__file__).resolve().parents[2]


async def test_sigterm_with_a_feed_and_a_viewer_open_exits_at_once(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = await node_process(
        ROOT / "config.yaml", port, cwd=tmp_path, stderr=asyncio.subprocess.PIPE
    )
    assert process.stderr is not None
    try:
        async with asyncio.timeout(20):
            while b"log in:" not in await process.stderr.readline():
                assert process.returncode is None
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(url, cookie_jar=jar) as http:
            login = {"name": "operator", "password": "operator-demo"}
            async with http.post("/api/login", json=login) as r:
                assert r.status == 200
            async with http.post("/api/tokens", json={"name": "t"}, headers={"Origin": url}) as r:
                token = (await r.json())["token"]
            feed = await http.ws_connect("/api/events", headers={"Origin": url})
            viewer = WhepClient(f"{url}/whep/east-gate", token=token)
            await viewer.connect(http)
            async with asyncio.timeout(10):
                await viewer.first_frame()
            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(5):
                closing = await feed.receive()
                await process.communicate()
            took = time.monotonic() - started
            await viewer.close(http, delete=False)  # the node ended it
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert closing.type == aiohttp.WSMsgType.CLOSE and closing.data == 1001
    assert took < 5 and process.returncode == 0
    db = tmp_path / "var" / "demo" / "node.sqlite"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        ended = conn.execute("SELECT count(*) FROM audit WHERE action = 'view.end'").fetchone()
    assert ended == (1,), "the viewing session was ended, and its end recorded, before exit"
