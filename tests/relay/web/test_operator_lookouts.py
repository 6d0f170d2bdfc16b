"""Lookouts that can be acted on, and a Chinese UI without English technical text,
in real Chromium (issue 18, items 6 and 11)."""

from __future__ import annotations

import base64
import io
import re
from typing import Any

import pytest
from PIL import Image

from tests.conftest import ARTIFACTS, NodeFactory, log_in
from tests.relay.web.operator_config import get_json, operator_config, post_event

pytestmark = pytest.mark.browser
DESK = {"width": 1366, "height": 768}


def photo() -> str:
    out = io.BytesIO()
    Image.new("RGB", (320, 240), (40, 90, 200)).save(out, format="JPEG")
    return base64.b64encode(out.getvalue()).decode()


async def test_lookout_photo_enlarges_sighting_from_a_tile_hide_asks_station_cancels(
    start_node: NodeFactory, browser: Any
) -> None:
    node = await start_node(operator_config())
    lookout = await post_event(
        node,
        "officer",
        {"type": "lookout", "text": "寻找走失老人：男，70岁，蓝色外套", "photo": photo()},
    )
    wall = await browser.new_page(viewport=DESK)
    await log_in(wall, node, "east-op")
    await wall.goto(f"{node.url}/wall/room")
    await wall.evaluate("() => window.wall.ready")
    banner = wall.locator(f'#lookouts .lookout[data-id="{lookout["id"]}"]')
    await banner.wait_for(timeout=15000)

    # The photo enlarges.
    await banner.locator("img.photo").click()
    big = wall.locator("dialog.photo-dialog[open] img.big")
    await big.wait_for(timeout=15000)
    assert await big.evaluate("(img) => img.naturalWidth") == 320
    assert (await big.bounding_box())["width"] > 300
    await wall.click("dialog.photo-dialog[open] button.close")

    # A sighting from a tile: that tile's camera, with its snapshot.
    await wall.wait_for_function("() => window.wall.tiles[2].camera?.state === 'online'")
    tile = wall.locator(".tile").nth(2)
    await tile.hover()
    await tile.locator("button.sighting").click()
    assert await wall.locator("dialog[open] select[name=camera]").input_value() == "cam2"
    await wall.fill("dialog[open] textarea[name=note]", "穿蓝外套的老人往北走了")
    async with wall.expect_response("**/api/events") as answer:
        await wall.click("dialog[open] button.send")
    sighting = await (await answer.value).json()
    assert (sighting["type"], sighting["ref"], sighting["camera"]) == (
        "sighting",
        lookout["id"],
        "cam2",
    )
    assert sighting["image"], "the tile's snapshot went with the sighting"
    assert "线索已上报" in await wall.locator("#toast").inner_text()

    # The station lists the lookout with its sighting.
    station = await browser.new_page(viewport=DESK)
    await log_in(station, node, "officer")
    await station.goto(f"{node.url}/station")
    await station.evaluate("() => window.station.alerts")
    item = station.locator(f'#lookout-list li[data-id="{lookout["id"]}"]')
    await item.locator(f'li.sighting[data-id="{sighting["id"]}"]').wait_for(timeout=15000)
    assert "往北走了" in await item.inner_text()

    # Hiding on the wall asks first; "cancel" keeps it.
    await banner.locator("button.dismiss").click()
    await wall.click("dialog[open] button.cancel")
    assert await banner.count() == 1
    ARTIFACTS.mkdir(exist_ok=True)
    await station.screenshot(path=str(ARTIFACTS / "station-lookouts.png"))

    # The station cancels it (asked first): every wall drops the banner.
    await item.locator("button.cancel-lookout").click()
    await station.click("dialog[open] button.send")
    await banner.wait_for(state="detached", timeout=15000)
    await item.wait_for(state="detached", timeout=15000)
    assert await get_json(node, "/api/lookouts") == []
    await wall.close()
    await station.close()


# Text with Latin words and no Chinese at all: English leaking into the Chinese UI.
ENGLISH_ONLY = re.compile(r"^[^\u4e00-\u9fff]*[A-Za-z]{3,}[^\u4e00-\u9fff]*$")
ALLOWED = {"English"}  # the language button names the other language in itself
SHOWN_TEXTS_JS = """() => {
  const texts = [...(window.__shown || [])];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    const el = node.parentElement;
    const shown = el && el.closest('script, style') === null && el.offsetParent !== null;
    if (shown) texts.push(node.textContent);
  }
  return texts.map((t) => t.trim()).filter(Boolean);
}"""
RECORD_TOASTS_JS = """() => {
  window.__shown = [];
  new MutationObserver(() => {
    const toast = document.getElementById('toast');
    if (toast) window.__shown.push(toast.textContent);
  }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


def english(texts: list[str]) -> list[str]:
    return [t for t in texts if ENGLISH_ONLY.match(t) and t not in ALLOWED]


async def test_chinese_ui_shows_refusals_and_camera_faults_in_chinese(
    start_node: NodeFactory, browser: Any
) -> None:
    node = await start_node(operator_config())
    page = await browser.new_page(viewport=DESK)
    await log_in(page, node, "watcher")  # a viewer: layouts of their own, not shared
    await page.goto(f"{node.url}/station")
    await page.evaluate("() => window.station.alerts")
    await page.evaluate(RECORD_TOASTS_JS)
    # Refusals the operator can run into: a layout without a name, with no camera,
    # shared by a role that may not share. Each is told in Chinese.
    toast_has = "(text) => document.getElementById('toast')?.textContent.includes(text)"
    await page.click("#save")
    await page.wait_for_function(toast_has, arg="名称须为 1 至 64 个字", timeout=15000)
    await page.fill("#layout-name", "夜班")
    await page.click("#save")
    await page.wait_for_function(toast_has, arg="布局中至少要有一台摄像机", timeout=15000)
    await page.click('#tree li.camera[data-camera="cam0"]')
    await page.check("#shared")
    await page.click("#save")
    await page.wait_for_function(toast_has, arg="您的账号不能共享布局", timeout=15000)
    shown = await page.evaluate("() => window.__shown")
    assert shown and all(re.search(r"[\u4e00-\u9fff]", t) for t in shown), shown
    leaked = english(await page.evaluate(SHOWN_TEXTS_JS))
    assert not leaked, leaked
    await page.close()

    # The overview as an admin (west's camera is down: its reason shows).
    overview = await browser.new_page(viewport=DESK)
    await log_in(overview, node, "admin")
    await overview.goto(f"{node.url}/")
    await overview.evaluate("() => window.overview.ready")
    await overview.wait_for_function(
        "() => [...document.querySelectorAll('#cameras td.offline')].length === 1",
        timeout=20000,
    )
    offline = await overview.locator("#cameras td.offline").inner_text()
    assert "摄像机拒绝连接" in offline, offline
    leaked = english(await overview.evaluate(SHOWN_TEXTS_JS))
    assert not leaked, leaked
    await overview.close()


async def test_a_viewer_is_not_shown_buttons_they_may_not_use(
    start_node: NodeFactory, browser: Any
) -> None:
    node = await start_node(operator_config())
    await post_event(node, "officer", {"type": "lookout", "text": "银色轿车"})
    page = await browser.new_page(viewport=DESK)
    await log_in(page, node, "watcher")
    await page.goto(f"{node.url}/wall/room")
    await page.evaluate("() => window.wall.ready")
    await page.wait_for_function("() => window.wall.tiles[0].camera !== null")
    # Rendered again until the node has said who this is; then no alarm button shows.
    await page.wait_for_function(
        "() => (window.wall.tiles.forEach((t) => t.render()),"
        " [...document.querySelectorAll('.tile button.alarm, .tile button.sighting')]"
        ".every((b) => b.hidden))",
        timeout=15000,
    )
    await page.locator("#lookouts .lookout").wait_for(timeout=15000)
    assert await page.locator("#lookouts button.sighting").count() == 0
    await page.goto(f"{node.url}/station")
    await page.evaluate("() => window.station.alerts")
    assert await page.locator("#issue").is_hidden()
    await page.close()
