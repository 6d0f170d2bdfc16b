"""Run inside a loopback-only network namespace (tests/test_demo_offline.py): the
shipped demo node and Debian's Chromium, which plays one of its cameras. Prints
one JSON line: the interfaces it saw, and the frames Chromium decoded."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import sys
import tempfile
from pathlib import Path

import aiohttp

from tests.conftest import CHROMIUM_ARGS
from tests.helpers import free_port, node_process

ROOT = Path(__file__).resolve().parents[1]
FRAMES_JS = """
async () => {
  const deadline = performance.now() + 15000;
  while (performance.now() < deadline) {
    const stats = window.player && await window.player.stats();
    if (stats && stats.framesDecoded > 0) return stats.framesDecoded;
    await new Promise((r) => setTimeout(r, 50));
  }
  return 0;
}
"""


async def wait_for_health(url: str) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(400):
            try:
                async with http.get(f"{url}/api/health") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)
    raise RuntimeError("the demo node did not start")


async def play(url: str) -> int:
    from playwright.async_api import async_playwright

    executable = shutil.which("chromium")
    assert executable is not None, "chromium is not installed"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            login = {"name": "operator", "password": "operator-demo"}
            response = await page.request.post(f"{url}/api/login", data=login)
            assert response.ok, await response.text()
            await page.goto(f"{url}/view/east-gate")
            decoded: int = await page.evaluate(FRAMES_JS)
            return decoded
        finally:
            await browser.close()


async def main() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as work:
        node = await node_process(
            ROOT / "config.yaml", port, cwd=Path(work), stderr=asyncio.subprocess.DEVNULL
        )
        try:
            await wait_for_health(url)
            decoded = await play(url)
        finally:
            node.terminate()
            await node.wait()
    interfaces = [name for _, name in socket.if_nameindex()]
    sys.stdout.write(json.dumps({"interfaces": interfaces, "decoded": decoded}) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
