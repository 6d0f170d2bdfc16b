"""Run inside a network namespace of its own (`unshare -n`, as root): a node and
Chromium on its loopback, with whatever firewall the caller asked for, and print
what Chromium played as one JSON line.

    unshare -n python tests/netns_play.py CONFIG CAMERA [--block-udp] [--seconds 20]

The caller's test (e.g. tests/relay/webrtc/test_ice_tcp.py) reads that line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import CHROMIUM_ARGS, PASSWORD  # noqa: E402
from tests.helpers import free_port, node_process  # noqa: E402

PLAYED_JS = """
async (seconds) => {
  // Frames decoded, and the protocol of the candidate pair they came over: the
  // transport's selected pair (or a nominated one), polled until the stats have
  // one, as they may lag the first frames.
  const deadline = performance.now() + seconds * 1000;
  let frames = 0;
  while (performance.now() < deadline) {
    const stats = window.player && await window.player.stats();
    frames = stats ? stats.framesDecoded : 0;
    if (frames > 0) {
      const report = await window.player.pc.getStats();
      let pair = null;
      report.forEach((s) => {
        if (s.type === "transport" && s.selectedCandidatePairId) {
          pair = report.get(s.selectedCandidatePairId) || pair;
        }
      });
      report.forEach((s) => {
        if (!pair && s.type === "candidate-pair" && s.nominated && s.state === "succeeded") {
          pair = s;
        }
      });
      const local = pair && report.get(pair.localCandidateId);
      if (local && local.protocol) {
        return {frames, protocol: local.protocol};
      }
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {frames, protocol: null};
}
"""


def prepare(block_udp: bool) -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    if block_udp:
        rules = (
            "table inet blockudp {\n"
            "  chain out { type filter hook output priority 0; meta l4proto udp drop; }\n"
            "}\n"
        )
        subprocess.run(["nft", "-f", "-"], input=rules.encode(), check=True)


async def play(config: Path, camera: str, seconds: float) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    node = await node_process(config, port, stderr=asyncio.subprocess.PIPE)
    assert node.stderr is not None
    try:
        async with asyncio.timeout(20):
            while b"in a browser" not in (line := await node.stderr.readline()):
                if not line:
                    return {"error": "the node exited"}
        async with async_playwright() as playwright:
            chromium = shutil.which("chromium")
            browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = await browser.new_page()
            response = await page.request.post(
                f"{url}/api/login", data={"name": "admin", "password": PASSWORD}
            )
            if not response.ok:
                return {"error": f"login: {response.status}"}
            await page.goto(f"{url}/view/{camera}")
            played: dict[str, Any] = await page.evaluate(PLAYED_JS, seconds)
            await browser.close()
            return played
    finally:
        node.terminate()
        await node.wait()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("config", type=Path)
    parser.add_argument("camera")
    parser.add_argument("--block-udp", action="store_true")
    parser.add_argument("--seconds", type=float, default=20.0, help="wait for a frame this long")
    args = parser.parse_args()
    prepare(args.block_udp)
    print(json.dumps(asyncio.run(play(args.config, args.camera, args.seconds))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
