"""Seen from three metres, used by anyone (issue 18, items 7, 10, 13), in real
Chromium: keyboard reach, legible wall labels clear of the camera's own text,
a phone photo shrunk before it is sent, a refused form that keeps its text."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from PIL import Image

from tests.conftest import NodeFactory, log_in
from tests.relay.web.operator_config import get_json, operator_config, post_event

pytestmark = pytest.mark.browser


async def test_tree_tiles_and_dialogs_work_from_the_keyboard(
    start_node: NodeFactory, browser: Any
) -> None:
    node = await start_node(operator_config())
    page = await browser.new_page(viewport={"width": 1366, "height": 768})
    await log_in(page, node, "officer")
    await page.goto(f"{node.url}/station")
    await page.evaluate("() => window.station.alerts")
    camera = page.locator('#tree li.camera[data-camera="cam1"]')
    await camera.focus()
    assert await camera.evaluate(
        "(el) => el.matches(':focus-visible') || el === document.activeElement"
    )
    await page.keyboard.press("Enter")
    await page.wait_for_function("() => window.station.tiles.some((t) => t.camera?.id === 'cam1')")
    # Tab moves on from the tree to the tiles; Enter enlarges the focused one.
    index = await page.evaluate(
        "() => window.station.tiles.findIndex((t) => t.camera?.id === 'cam1')"
    )
    tile = page.locator(".tile").nth(index)
    await tile.focus()
    outline = await tile.evaluate("(el) => getComputedStyle(el).outlineStyle")
    await page.keyboard.press("Enter")
    await page.wait_for_function(
        f"() => window.station.tiles[{index}].el.classList.contains('focused')"
    )
    await page.keyboard.press("Escape")
    await page.wait_for_function("() => !document.querySelector('.tile.focused')")
    assert outline != "none", "a focused tile shows it"
    # The alarm dialog opens from the keyboard and Escape closes it.
    await tile.focus()
    await page.keyboard.press("Tab")  # into the tile's own buttons
    focused = await page.evaluate("() => document.activeElement.className")
    assert focused == "alarm", focused  # no lookout is active: no sighting button
    await page.keyboard.press("Enter")
    await page.locator(".alarm-dialog[open]").wait_for(timeout=15000)
    assert await page.evaluate("() => document.activeElement.closest('dialog') !== null")
    await page.keyboard.press("Escape")
    await page.locator(".alarm-dialog[open]").wait_for(state="detached", timeout=15000)
    await page.close()


async def test_wall_labels_are_large_at_1080p_and_clear_of_the_burnt_in_text(
    start_node: NodeFactory, browser: Any
) -> None:
    node = await start_node(operator_config(extra=""))
    page = await browser.new_page(viewport={"width": 1920, "height": 1080})
    await log_in(page, node, "east-op")
    await page.goto(f"{node.url}/wall/room")
    await page.evaluate("() => window.wall.ready")
    size = await page.evaluate(
        "() => parseFloat(getComputedStyle(document.querySelector('.tile .bar')).fontSize)"
    )
    assert size >= 20, f"tile labels {size} px high on a 1080p wall"
    box = await page.evaluate("""() => {
      const tile = document.querySelector('.tile').getBoundingClientRect();
      const bar = document.querySelector('.tile .bar').getBoundingClientRect();
      return {top: bar.top - tile.top, bottom: tile.bottom - bar.bottom,
              right: tile.right - bar.right, width: tile.width};
    }""")
    # Cameras burn their clock in at the top left and their name at the bottom right.
    assert box["bottom"] < 1 and box["top"] > 100 and box["right"] > box["width"] * 0.3, box
    await page.close()


async def test_a_phone_photo_is_shrunk_and_a_refused_lookout_keeps_its_text(
    start_node: NodeFactory, browser: Any
) -> None:
    node = await start_node(operator_config())
    context = await browser.new_context(viewport={"width": 1366, "height": 768})
    page = await context.new_page()
    await log_in(page, node, "officer")
    await page.goto(f"{node.url}/station")
    await page.evaluate("() => window.station.alerts")
    image = Image.effect_noise((4000, 3000), 90).convert("RGB")
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=97)
    assert len(out.getvalue()) > 2_000_000
    await page.click("#issue")
    await page.fill("#lookout-dialog textarea[name=text]", "红色电动车，车筐有划痕")
    await page.set_input_files(
        "#lookout-dialog input[name=photo]",
        files=[{"name": "bike.jpg", "mimeType": "image/jpeg", "buffer": out.getvalue()}],
    )

    # The real node refuses the first send (its expiry made too short on the way):
    # the form is back with what was typed.
    async def too_short(route: Any) -> None:
        body = json.loads(route.request.post_data)
        sizes.append(len(route.request.post_data))
        await route.continue_(post_data=json.dumps({**body, "expires_in": 10}))

    sizes: list[int] = []
    await page.route("**/api/events", too_short)
    await page.click("#lookout-dialog button.send")
    await page.wait_for_function(
        "() => document.getElementById('toast')?.textContent.includes('有效时间')"
    )
    await page.unroute("**/api/events")
    assert sizes and sizes[0] < 700_000, "the photo was shrunk before it was sent"
    await page.locator("#lookout-dialog[open]").wait_for(timeout=15000)
    text = await page.input_value("#lookout-dialog textarea[name=text]")
    assert text == "红色电动车，车筐有划痕"
    async with page.expect_response("**/api/events") as answer:
        await page.click("#lookout-dialog button.send")
    assert (await answer.value).status == 201
    (lookout,) = await get_json(node, "/api/lookouts")
    assert lookout["data"]["text"] == "红色电动车，车筐有划痕"
    response = await page.request.get(node.url + lookout["image"])
    photo = Image.open(io.BytesIO(await response.body()))
    assert max(photo.size) == 1280
    await context.close()


# Each link's (and link-styled button's) text colour against the first opaque
# background behind it: the WCAG contrast ratio.
CONTRAST_JS = """() => {
  const rgb = (text) => text.match(/[\\d.]+/g).map(Number);
  const lum = ([r, g, b]) => {
    const c = [r, g, b].map((v) => v / 255)
      .map((v) => (v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4));
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  };
  const background = (el) => {
    for (; el; el = el.parentElement) {
      const c = rgb(getComputedStyle(el).backgroundColor);
      if (c.length < 4 || c[3] > 0.9) return c;
    }
    return [0, 0, 0];
  };
  const links = [...document.querySelectorAll('a, button.link')].filter((el) => el.offsetParent);
  return links.map((el) => {
    const [a, b] = [lum(rgb(getComputedStyle(el).color)), lum(background(el))];
    return [el.textContent.trim(), (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)];
  });
}"""


async def test_links_on_the_dark_theme_meet_wcag_aa(start_node: NodeFactory, browser: Any) -> None:
    node = await start_node(operator_config())
    await post_event(node, "east-op", {"type": "alarm", "camera": "cam0", "reason": "测试"})
    page = await browser.new_page(viewport={"width": 1366, "height": 768})
    await log_in(page, node, "officer")
    for path, ready in (("/station", "window.station.alerts"), ("/", "window.overview.ready")):
        await page.goto(node.url + path)
        await page.evaluate(f"() => {ready}")
        await page.wait_for_function("() => document.querySelectorAll('.vw-header a').length > 3")
        await page.keyboard.press("Escape")  # the station's pop-up of the alarm
        found = await page.evaluate(CONTRAST_JS)
        assert len(found) > 5, found
        low = [(text, round(ratio, 1)) for text, ratio in found if ratio < 4.5]
        assert not low, f"{path}: {low}"
    await page.close()


# Items of the headers that wrapped inside themselves (taller than two lines).
WRAPPED_JS = """() => [...document.querySelectorAll(
    '.vw-header a, .vw-header button, .vw-header .who, header button, header label, #bar > *')]
  .filter((el) => el.offsetParent)
  .filter((el) => {
    const line = parseFloat(getComputedStyle(el).fontSize) * 1.4;
    return el.getBoundingClientRect().height > 2 * line;
  })
  .map((el) => el.textContent.trim())"""


async def test_station_wall_and_camera_page_on_a_phone(
    start_node: NodeFactory, browser: Any
) -> None:
    node = await start_node(operator_config())
    context = await browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    page = await context.new_page()
    await log_in(page, node, "officer")
    for path in ("/station", "/wall/room", "/view/cam2"):
        await page.goto(node.url + path)
        await page.locator(".vw-header .logout").wait_for(timeout=15000)
        assert await page.evaluate("() => document.documentElement.scrollWidth") <= 390, path
        assert await page.evaluate(WRAPPED_JS) == [], path
    # The camera page: a way back, its state, its actions.
    await page.wait_for_function("() => document.getElementById('state').textContent === '在线'")
    assert await page.locator("#back").is_visible()
    assert await page.locator("#raise").is_visible()
    await page.goto(node.url + "/station")
    await page.evaluate("() => window.station.alerts")
    assert await page.locator("aside").is_visible()
    await page.click("#sidebar-toggle")
    assert await page.locator("aside").is_hidden()
    await context.close()


async def test_a_refused_alarm_keeps_what_was_typed(start_node: NodeFactory, browser: Any) -> None:
    node = await start_node(operator_config())
    page = await browser.new_page(viewport={"width": 1366, "height": 768})
    await log_in(page, node, "east-op")
    await page.goto(f"{node.url}/wall/room")
    await page.evaluate("() => window.wall.ready")
    tile = page.locator(".tile").nth(0)
    await tile.hover()
    await tile.locator("button.alarm").click()
    await page.select_option(".alarm-dialog select.kind", "missing")
    await page.fill(".alarm-dialog input[name=reason]", "小孩在河边走失")

    # The real node refuses it (its type spoilt on the way): the dialog is back as typed.
    async def spoilt(route: Any) -> None:
        body = json.loads(route.request.post_data)
        await route.continue_(post_data=json.dumps({**body, "kind": "ufo"}))

    await page.route("**/api/events", spoilt)
    await page.click(".alarm-dialog .send")
    await page.wait_for_function(
        "() => document.getElementById('toast')?.textContent.includes('请选择报警类型')"
    )
    await page.locator(".alarm-dialog[open]").wait_for(timeout=15000)
    assert await page.input_value(".alarm-dialog input[name=reason]") == "小孩在河边走失"
    assert await page.input_value(".alarm-dialog select.kind") == "missing"
    await page.unroute("**/api/events")
    async with page.expect_response("**/api/events") as answer:
        await page.click(".alarm-dialog .send")
    assert (await answer.value).status == 201
    await page.close()
