"""The station in real Chromium (issue 18): a new alarm comes into view (pop-up
live view beside its snapshot, or the chosen tile), alarms are assigned to the
configured patrol teams, and resolved ones are found in the alarm history and its
CSV; a patrol phone walks an alarm through accept, arrive and done."""

from __future__ import annotations

import asyncio
import csv
import io
from typing import Any

import aiohttp
import pytest
from PIL import Image

from relay.access.passwords import hash_token
from relay.web.events import FEEDS
from tests.conftest import ARTIFACTS, NodeFactory, log_in
from tests.relay.web.operator_config import PATROL, get_json, headers, operator_config, post_event

pytestmark = pytest.mark.browser
DESK = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}
DECODED_JS = """async (tile) => {
  const stats = tile.player && await tile.player.stats();
  return Boolean(stats && stats.framesDecoded > 0);
}"""


def item_in_state(alarm_id: str, state: str) -> str:
    return (
        f"() => document.querySelector('#alarms li[data-id=\"{alarm_id}\"]')"
        f"?.classList.contains('{state}')"
    )


async def open_station(browser: Any, node: Any, user: str = "officer") -> Any:
    page = await browser.new_page(viewport=DESK)
    await log_in(page, node, user)
    await page.goto(f"{node.url}/station")
    await page.evaluate("() => window.station.alerts")
    return page


async def test_station_brings_an_alarm_into_view_assigns_a_team_and_keeps_history(
    start_node: NodeFactory, browser: Any
) -> None:
    node = await start_node(operator_config())
    station = await open_station(browser, node)
    alarm = await post_event(
        node, "east-op", {"type": "alarm", "camera": "cam3", "kind": "theft", "reason": "偷电动车"}
    )
    # Pop-up (the default): a live view of the camera beside the alarm's snapshot.
    popup = station.locator("#alarm-view[open]")
    await popup.wait_for(timeout=15000)
    assert await popup.get_attribute("data-camera") == "cam3"
    await station.wait_for_function(
        "() => document.getElementById('alarm-view-snapshot').naturalWidth > 0", timeout=15000
    )
    await station.wait_for_function(
        f"async () => ({DECODED_JS})(window.station.popupTile)", timeout=10000
    )
    ARTIFACTS.mkdir(exist_ok=True)
    await station.screenshot(path=str(ARTIFACTS / "station-popup.png"))
    await station.click("#alarm-view-close")

    # Assign from the station's list of teams (config), not a typed name.
    item = station.locator(f'#alarms li[data-id="{alarm["id"]}"]')
    assert "盗窃" in await item.inner_text()
    await item.locator("button.assign").click()
    team = station.locator("dialog[open] select[name=team]")
    options = await team.locator("option").all_inner_texts()
    assert options == ["巡逻二组", "巡逻三组"]
    await team.select_option("team3")
    await station.fill("dialog[open] textarea[name=note]", "带上执法记录仪")
    await station.click("dialog[open] button.send")
    await station.wait_for_function(item_in_state(alarm["id"], "assigned"), timeout=15000)
    text = await item.inner_text()
    assert "巡逻三组" in text and "带上执法记录仪" in text, text
    await item.locator("button.resolve").click()
    await station.fill("dialog[open] textarea[name=note]", "车已找回")
    await station.click("dialog[open] button.send")
    await item.wait_for(state="detached", timeout=15000)

    # The chosen mode "tile": the next alarm's camera goes into the selected tile.
    await station.select_option("#on-alarm", "tile")
    await station.locator(".tile").nth(2).click()
    await post_event(node, "east-op", {"type": "alarm", "camera": "cam5", "reason": "有人翻墙"})
    await station.wait_for_function(
        "() => window.station.tiles[2].camera?.id === 'cam5'", timeout=15000
    )
    assert await station.locator("#alarm-view[open]").count() == 0

    # The history finds the resolved alarm by state and type; its CSV has the steps.
    history = await browser.new_page(viewport=DESK)
    await log_in(history, node, "officer")
    await history.goto(f"{node.url}/alarms")
    await history.evaluate("() => window.history_page.ready")
    await history.select_option("select[name=state]", "resolved")
    await history.select_option("select[name=kind]", "theft")
    await history.click("button[type=submit]")
    await history.wait_for_function("() => document.querySelectorAll('#rows tr').length === 1")
    row = await history.locator("#rows tr").inner_text()
    assert "车已找回" in row and "巡逻三组" in row, row
    href = await history.locator("#csv").get_attribute("href")
    assert href is not None and "state=resolved" in href and "kind=theft" in href
    assert href.endswith("lang=zh"), "the spreadsheet speaks the page's language"
    async with (
        aiohttp.ClientSession() as http,
        http.get(node.url + href, headers=headers("officer")) as r,
    ):
        assert r.status == 200 and "attachment" in r.headers["Content-Disposition"]
        text = (await r.read()).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 1 and rows[0]["摄像机"] == "东村3号", rows
    assert "车已找回" in rows[0]["处置经过"] and rows[0]["巡逻队"] == "巡逻三组"
    assert (rows[0]["报警类型"], rows[0]["状态"]) == ("盗窃", "已处置")
    assert rows[0]["类型代码"] == "theft"
    await history.close()
    await station.close()


def big_photo() -> bytes:
    """A phone photo: 4000x3000, several MB as a high-quality JPEG."""
    image = Image.effect_noise((4000, 3000), 90).convert("RGB")
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=97)
    return out.getvalue()


async def test_patrol_phone_walks_an_alarm_to_done_and_the_station_sees_each_step(
    start_node: NodeFactory, browser: Any
) -> None:
    node = await start_node(operator_config())
    station = await open_station(browser, node)
    await station.select_option("#on-alarm", "none")
    wall = await browser.new_page(viewport=DESK)
    await log_in(wall, node, "east-op")
    await wall.goto(f"{node.url}/wall/room")
    await wall.evaluate("() => window.wall.ready")
    context = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    phone = await context.new_page()
    await log_in(phone, node, PATROL)
    await phone.goto(f"{node.url}/patrol")
    await phone.evaluate("() => window.patrol.ready")

    alarm = await post_event(
        node, "east-op", {"type": "alarm", "camera": "cam1", "kind": "fight", "reason": "打架"}
    )
    await post_event(node, "officer", {"type": "assign", "ref": alarm["id"], "team": "team2"})
    card = phone.locator(f'article.job[data-id="{alarm["id"]}"]')
    await card.wait_for(timeout=15000)
    text = await card.inner_text()
    assert "东村" in text and "东村1号" in text and "斗殴" in text, text
    await phone.wait_for_function(
        "() => document.querySelector('article.job img.snapshot')?.naturalWidth > 0"
    )
    # Fits a 390 px screen: nothing scrolls sideways.
    assert await phone.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    ARTIFACTS.mkdir(exist_ok=True)
    await phone.screenshot(path=str(ARTIFACTS / "patrol-phone.png"))

    await card.locator("button.accept").tap()
    await station.wait_for_function(item_in_state(alarm["id"], "accepted"), timeout=15000)
    assert (
        "巡逻二组 已接警"
        in await station.locator(f'#alarms li[data-id="{alarm["id"]}"]').inner_text()
    )
    await wall.wait_for_function(
        f"() => document.querySelector('#alarm-strip [data-id=\"{alarm['id']}\"]')"
        "?.dataset.state === 'accepted'",
        timeout=15000,
    )

    # The mobile network drops the feed: the page says so and comes back by itself.
    (cookie,) = [c for c in await context.cookies() if c["name"] == "vw_session"]
    assert await node.app[FEEDS].close(hash_token(cookie["value"])) == 1
    await phone.wait_for_function(
        "() => document.getElementById('link').className === 'down'", timeout=15000
    )
    await phone.wait_for_function(
        "() => document.getElementById('link').className === 'up' && window.patrol.feed.connected",
        timeout=10000,
    )
    await card.locator("button.arrive").tap()
    await station.wait_for_function(item_in_state(alarm["id"], "arrived"), timeout=15000)

    await card.locator("button.resolve").tap()
    await phone.fill("dialog[open] textarea[name=note]", "双方已调解")
    await phone.set_input_files(
        "dialog[open] input[name=photo]",
        files=[{"name": "scene.jpg", "mimeType": "image/jpeg", "buffer": big_photo()}],
    )
    async with phone.expect_response("**/api/events") as answer:
        await phone.click("dialog[open] button.send")
    assert (await answer.value).status == 201
    await station.locator(f'#alarms li[data-id="{alarm["id"]}"]').wait_for(
        state="detached", timeout=15000
    )
    await wall.wait_for_function(
        f"() => document.querySelector('#alarm-strip [data-id=\"{alarm['id']}\"]')"
        "?.textContent.includes('处置完毕：双方已调解')",
        timeout=15000,
    )
    (done,) = await get_json(node, "/api/alarms?state=resolved")
    steps = [(s["type"], s["by"]) for s in done["steps"]]
    assert steps == [
        ("assign", "officer"),
        ("accept", PATROL),
        ("arrive", PATROL),
        ("resolve", PATROL),
    ]
    assert done["steps"][-1]["image"], "the scene photo went with the step"
    async with (
        aiohttp.ClientSession() as http,
        http.get(node.url + done["steps"][-1]["image"], headers=headers("officer")) as r,
    ):
        photo = await r.read()
    assert len(photo) < 512 * 1024 and max(Image.open(io.BytesIO(photo)).size) <= 1280
    await asyncio.gather(station.close(), wall.close(), context.close())
