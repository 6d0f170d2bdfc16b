"""The shipped demo on a machine with no network but loopback: a network namespace
with only `lo` (made with unshare, as root), the demo node and Chromium in it. The
demo config names no host addresses: the node offers the address the request
came in on (relay/webrtc/ice.py), so the browser plays."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from tests.helpers import needs_root

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.browser
async def test_the_demo_plays_in_chromium_on_a_loopback_only_machine() -> None:
    if os.geteuid() != 0:
        needs_root("a network namespace of its own needs root (unshare -n)")
    process = await asyncio.create_subprocess_exec(
        "unshare",
        "-n",
        "sh",
        "-c",
        'ip link set lo up && exec "$0" -m tests.offline_demo',
        sys.executable,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(90):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()[-3000:]
    result = json.loads(out.decode().strip().splitlines()[-1])
    assert result["interfaces"] == ["lo"], "only loopback in the namespace"
    assert result["decoded"] > 0, "Chromium decoded no frame of the demo camera"
