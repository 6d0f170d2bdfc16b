"""Real Chromium plays the node's pages: frames decoded, counted by getStats()."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from pylibsrtp import Policy

from camsim import CameraSimulator, MountSpec
from relay.web.whep import WHEP
from relay.webrtc import srtp
from tests.conftest import ARTIFACTS, NodeFactory, log_in, node_yaml
from tests.helpers import wait_until

# In the page: poll getStats() until a frame is decoded; ms since the offer left.
FIRST_FRAME_JS = """
async () => {
  const deadline = performance.now() + 10000;
  while (performance.now() < deadline) {
    const stats = window.player && await window.player.stats();
    if (stats && stats.framesDecoded > 0) {
      const report = await window.player.pc.getStats();
      const codec = report.get(stats.codecId);
      return {ms: performance.now() - window.player.offerSentAt, fmtp: codec.sdpFmtpLine};
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  return null;
}
"""

# The SRTP cipher of the page's transport, as Chromium names it, and who protects it.
PROTECTED_HERE = {
    "AEAD_AES_128_GCM": (Policy.SRTP_PROFILE_AEAD_AES_128_GCM, "aes-gcm"),
    "AEAD_AES_256_GCM": (Policy.SRTP_PROFILE_AEAD_AES_256_GCM, "aes-gcm"),
    "SRTP_AES128_CM_HMAC_SHA1_80": (Policy.SRTP_PROFILE_AES128_CM_SHA1_80, "aes-cm-hmac-sha1"),
}
SRTP_CIPHER_JS = """
async () => {
  const report = await window.player.pc.getStats();
  return [...report.values()].find((s) => s.type === "transport").srtpCipher;
}
"""


async def test_first_frame_within_a_second_despite_4s_keyframes(
    start_node: NodeFactory, browser: Any
) -> None:
    node = await start_node(
        node_yaml(
            "  - {id: gate, name: 村口 Gate, site: village,\n"
            "     main: 'synthetic://640x360?fps=15&keyframe_interval=4'}\n"
        )
    )
    channel = node.hub.channel("gate")
    assert channel is not None
    await wait_until(lambda: len(channel.gop()) > 0, 10, "a keyframe in the GOP cache")
    # Join late in the GOP: without the cache a viewer would wait for the next keyframe.
    await wait_until(
        lambda: time.monotonic() - channel.gop()[0].received > 1.5, 5, "an old keyframe"
    )
    page = await browser.new_page()
    await log_in(page, node)
    await page.goto(f"{node.url}/view/gate")
    first = await page.evaluate(FIRST_FRAME_JS)
    assert first is not None, "no frame decoded within 10 s"
    assert first["ms"] < 1000, f"first frame after {first['ms']:.0f} ms"
    decoded = await page.evaluate("async () => (await window.player.stats()).framesDecoded")
    await asyncio.sleep(1)  # then live frames keep coming
    later = await page.evaluate("async () => (await window.player.stats()).framesDecoded")
    assert later > decoded
    # Chromium read what the node protected, itself where it can (relay/webrtc/srtp.py).
    cipher = await page.evaluate(SRTP_CIPHER_JS)
    (session,) = node.app[WHEP].sessions.values()
    writer = session.pc.getTransceivers()[0].sender._run_rtp.__self__  # type: ignore[attr-defined]
    profile, name = PROTECTED_HERE[cipher]
    assert writer._frames.cipher == (name if profile in srtp.HERE else "libsrtp"), cipher
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "view-gate.png"))
    await page.close()


async def test_high_profile_camera_passes_through_to_chromium(
    start_node: NodeFactory, browser: Any
) -> None:
    """Real cameras send High profile: Chromium decodes it as sent, no transcode.

    Debian's Chromium offers no High profile, so the node answers Main for it."""
    with CameraSimulator([MountSpec("high", profile="high", fps=15)]) as sim:
        node = await start_node(
            node_yaml(f"  - {{id: high, name: High, site: village, main: '{sim.url('high')}'}}\n")
        )
        page = await browser.new_page()
        await log_in(page, node)
        await page.goto(f"{node.url}/view/high")
        first = await page.evaluate(FIRST_FRAME_JS)
        assert first is not None, "Chromium decoded no frame"
        assert "profile-level-id=4d001f" in first["fmtp"], first
        assert node.app[WHEP].transcoders == {}, "passed through, not transcoded"
        await page.close()
