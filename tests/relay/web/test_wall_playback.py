"""A wall tile looks back at its camera's recording and returns to live video."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from relay.web.recordings import PLAYBACK, RECORDINGS
from relay.web.whep import WHEP
from tests.conftest import ARTIFACTS, NodeFactory, log_in, node_yaml, users_yaml
from tests.helpers import wait_until
from tests.relay.record.common import closed_segments
from tests.wall_pages import ADVANCING_JS, open_wall

CAMERA = (
    "  - {id: cam1, name: Cam 1, site: village,"
    " main: 'synthetic://320x180?fps=15&keyframe_interval=1'}\n"
)
WALL = (
    "storage: {segment_seconds: 5}\nwalls: [{id: w, site: village, layout: '1', cameras: [cam1]}]\n"
)
TILE_JS = """() => {
  const tile = window.wall.tiles[0];
  return {
    state: tile.el.dataset.state,
    recorded: Number(tile.el.dataset.recorded || 0),
    badge: tile.el.querySelector('.playback-badge')?.textContent || '',
    frames: tile.video.getVideoPlaybackQuality().totalVideoFrames,
    webrtc: Boolean(tile.player),
  };
}"""

# Whether the first tile offers to look back, once the node has said who is logged in.
OFFERS_LOOK_BACK_JS = """async () => {
  await window.wall.ready;
  await (await import('/static/raise.js')).rolesKnown;
  const button = document.querySelector('.tile button.lookback');
  return Boolean(button) && !button.hidden;
}"""
SET_LANG_JS = "async (code) => (await import('/static/i18n.js')).setLang(code)"


async def tile_state(page: Any, ready: str, within: float = 20) -> dict[str, Any]:
    """The first tile's state once the JS condition `ready` (on `s`) holds."""
    state: dict[str, Any] = {}
    try:
        async with asyncio.timeout(within):
            while True:
                state = await page.evaluate(TILE_JS)
                if await page.evaluate(f"(s) => {ready}", state):
                    return state
                await asyncio.sleep(0.05)
    except TimeoutError:
        pytest.fail(f"the tile never got to {ready}: {state}")


@pytest.mark.browser
async def test_a_tile_looks_back_at_a_moment_and_returns_to_live(
    start_node: NodeFactory, browser: Any
) -> None:
    node = await start_node(node_yaml(CAMERA, WALL))
    first = (await closed_segments(node.app[RECORDINGS], "cam1", 2))[0]
    page = await open_wall(browser, node)
    await page.evaluate("window.wall.ready")
    assert await page.evaluate(ADVANCING_JS, {"index": 0, "within": 20_000}), "live first"
    at = first.start + 3.0  # between keyframes, in the first file
    tile = page.locator(".tile").first
    await tile.hover()
    await tile.locator("button.lookback").click()
    menu = tile.locator(".lookback-menu")
    assert await menu.locator("button.back1").text_content() == "1 分钟前"
    await page.evaluate(SET_LANG_JS, "en")  # the menu follows the language, no reload
    assert await menu.locator("button.back1").text_content() == "1 min ago"
    assert await menu.locator("button.go").text_content() == "Go"
    await page.evaluate(SET_LANG_JS, "zh")
    clock = await page.evaluate("(at) => new Date(at * 1000).toTimeString().slice(0, 8)", at)
    await tile.locator(".lookback-menu input.at").fill(clock)
    await tile.locator(".lookback-menu button.go").click()
    state = await tile_state(page, "s.state === 'playback' && s.frames >= 3 && s.recorded > 0")
    # the time input has whole seconds: the moment asked is at, cut to the second
    assert -0.5 < state["recorded"] - int(at) < 2.0, (state, at)
    assert "回放" in state["badge"] and not state["webrtc"]
    await wait_until(lambda: not node.app[WHEP].sessions, 10, "the WebRTC session ends")
    assert len(node.app[PLAYBACK]) == 1, "an audited playback session"
    later = await tile_state(page, f"s.frames > {state['frames'] + 5}")  # it plays on
    assert later["recorded"] > state["recorded"]
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "wall-playback.png"))
    await tile.hover()
    await tile.locator("button.live").click()
    assert await page.evaluate(ADVANCING_JS, {"index": 0, "within": 20_000}), "live again"
    live = await page.evaluate(TILE_JS)
    assert live["state"] != "playback" and live["webrtc"] and not live["badge"]
    assert len(node.app[WHEP].sessions) == 1, "a WHEP session again"
    await wait_until(lambda: not node.app[PLAYBACK], 10, "the playback session ends")
    await page.close()


@pytest.mark.browser
async def test_a_viewer_is_offered_look_back_exactly_when_granted_playback(
    start_node: NodeFactory, browser: Any
) -> None:
    viewers = users_yaml(("looker", "viewer", "village"), ("granted", "viewer", "village"))
    viewers = viewers.replace("{name: granted,", "{name: granted, playback: true,")
    node = await start_node(node_yaml(CAMERA, WALL).replace(users_yaml(), viewers))
    for who, offered in (("looker", False), ("granted", True), ("admin", True)):
        page = await browser.new_page()
        await log_in(page, node, who)
        await page.goto(f"{node.url}/wall/w")
        assert await page.evaluate(OFFERS_LOOK_BACK_JS) is offered, who
        await page.close()
