"""A wall page in Chromium: open it, and ask whether its tiles decode and advance."""

from __future__ import annotations

from typing import Any

from ingest.state import SourceState
from tests.conftest import (
    Node,
    log_in,
)
from tests.helpers import wait_until

VIEWPORT = {"width": 960, "height": 540}


DECODING_JS = """
async ({count, within}) => {
  const deadline = performance.now() + within;
  while (performance.now() < deadline) {
    const tiles = window.wall ? window.wall.tiles : window.station ? window.station.tiles : [];
    const stats = await Promise.all(tiles.map((t) => (t.player ? t.player.stats() : null)));
    if (stats.filter((s) => s && s.framesDecoded > 0).length >= count) return performance.now();
    await new Promise((r) => setTimeout(r, 20));
  }
  return null;
}
"""


ADVANCING_JS = """
async ({index, within}) => {
  const deadline = performance.now() + within;
  let player = null, first = 0;
  while (performance.now() < deadline) {
    const tile = window.wall.tiles[index];
    const stats = tile.player && (await tile.player.stats());
    if (stats && tile.player !== player) [player, first] = [tile.player, stats.framesDecoded];
    else if (stats && stats.framesDecoded >= first + 3) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}
"""


async def all_online(node: Node, names: list[str]) -> None:
    await wait_until(
        lambda: all(node.hub.camera_state(n) is SourceState.ONLINE for n in names),
        15,
        "every camera online",
    )


async def open_wall(browser: Any, node: Node, query: str = "") -> Any:
    page = await browser.new_page(viewport=VIEWPORT)
    await log_in(page, node)
    await page.goto(f"{node.url}/wall/w{query}")
    return page
