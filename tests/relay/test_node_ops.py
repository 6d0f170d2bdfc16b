"""The node as operators run it: JSON logs with camera ids, `reload` and SIGHUP,
the pid file, `restore` refused while it runs."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp

from relay.backup import PID_NAME
from tests.conftest import ADMIN, users_yaml
from tests.helpers import free_port

CAM = "synthetic://160x96?fps=10&keyframe_interval=1&bitrate=100"


def config_text(data_dir: Path, cameras: list[str], site: str = "village") -> str:
    cams = "".join(f"  - {{id: {c}, name: {c}, site: {site}, main: '{CAM}'}}\n" for c in cameras)
    return (
        f"node: {{id: ops, name: Ops node, data_dir: '{data_dir}'}}\n"
        "sites: [{id: village, name: Village}]\n"
        f"{users_yaml()}cameras:\n{cams}"
    )


async def command(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "relay",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode()


class Log:
    def __init__(self, stream: asyncio.StreamReader) -> None:
        self.stream = stream
        self.lines: list[dict[str, Any]] = []

    async def until(self, text: str, within: float = 20) -> dict[str, Any]:
        """The first line with `text`, logged already or to come."""
        for seen in self.lines:
            if text in seen["message"] and not seen.get("_taken"):
                seen["_taken"] = True
                return seen
        async with asyncio.timeout(within):
            while True:
                raw = await self.stream.readline()
                assert raw, f"the node exited before logging {text!r}"
                line: dict[str, Any] = json.loads(raw)  # every line is one JSON object
                self.lines.append(line)
                if text in line["message"]:
                    line["_taken"] = True
                    return line


async def camera_ids(http: aiohttp.ClientSession) -> list[str]:
    async with http.get("/api/cameras", headers=ADMIN) as r:
        return [c["id"] for c in await r.json()]


async def test_reload_command_sighup_and_json_logs(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    path = tmp_path / "config.yaml"
    path.write_text(config_text(data_dir, ["a"]))
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "relay",
        "run",
        "--config",
        str(path),
        "--listen",
        f"127.0.0.1:{port}",
        "--log-format",
        "json",
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    log = Log(process.stderr)
    try:
        await log.until("in a browser")
        online = await log.until("online")
        assert (data_dir / PID_NAME).read_text().strip() == str(process.pid)
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
            path.write_text(config_text(data_dir, ["a", "b"]))
            code, said = await command("reload", "--config", str(path))
            assert code == 0, said
            await log.until("config reloaded")
            assert await camera_ids(http) == ["a", "b"]

            bad = config_text(data_dir, ["a", "b", "c"], site="nowhere")
            path.write_text(bad)
            code, said = await command("reload", "--config", str(path))
            assert code == 1 and f"{path}:" in said and "unknown site 'nowhere'" in said
            process.send_signal(signal.SIGHUP)  # the node itself refuses it, too
            refused = await log.until("config not reloaded")
            assert await camera_ids(http) == ["a", "b"], "the running config stays"

            path.write_text(config_text(data_dir, ["a", "b"]))
            code, said = await command("restore", "--config", str(path), str(tmp_path / "x"))
            assert code == 1 and "running" in said
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert online["camera"] == "a" and online["stream"] == "main" and online["level"] == "info"
    assert f"{path}:" in refused["message"] and refused["level"] == "error"
    assert not (data_dir / PID_NAME).exists(), "the pid file goes with the node"
    code, said = await command("reload", "--config", str(path))
    assert code == 1 and "no node is running" in said
