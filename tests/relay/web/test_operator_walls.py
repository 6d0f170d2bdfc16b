"""Operator experience in real Chromium (issue 18): the common header and where each
role lands, the overview; a wall that keeps its open alarms over a reload, answers
an alarm in words and shows its state as the station works it, and holds its tour
only while an alarm is open."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from tests.conftest import ARTIFACTS, NodeFactory, log_in
from tests.relay.web.operator_config import (
    PATROL,
    get_json,
    landed,
    operator_config,
    post_event,
    ui_login,
)

pytestmark = pytest.mark.browser
WALL = {"width": 1920, "height": 1080}

HEADER_LINKS_JS = """() => [...document.querySelectorAll('.vw-header .pages a')]
  .map((a) => a.getAttribute('href'))"""


@pytest.mark.parametrize(
    ("user", "home", "links", "refused"),
    [
        (
            "east-op",
            "/wall/room",
            ["/", "/wall/room", "/station", "/alarms", "/playback", "/inspection"],
            ("/patrol", 403, "无权打开此页面"),
        ),
        (
            "officer",
            "/station",
            ["/", "/wall/room", "/station", "/alarms", "/playback", "/inspection", "/patrol"],
            ("/wall/nope", 404, "找不到此页面"),
        ),
        (PATROL, "/patrol", ["/patrol"], ("/station", 403, "无权打开此页面")),
    ],
)
async def test_each_role_lands_on_its_page_with_the_common_header(
    start_node: NodeFactory,
    browser: Any,
    *,
    user: str,
    home: str,
    links: list[str],
    refused: tuple[str, int, str],
) -> None:
    node = await start_node(operator_config())
    page = await browser.new_page(viewport={"width": 1366, "height": 768})
    await ui_login(page, node, user)
    await landed(page, f"{node.url}{home}")
    header = page.locator(".vw-header")
    await header.locator(".logout").wait_for(timeout=15000)
    await page.wait_for_function(f"({HEADER_LINKS_JS})().length === {len(links)}", timeout=15000)
    assert await page.evaluate(HEADER_LINKS_JS) == links
    text = await header.inner_text()
    assert "城关派出所节点" in text and user in text, text
    assert await header.locator("a[aria-current=page]").get_attribute("href") == home
    # A page this user may not open: the same header, the reason in words, a way home.
    path, status, words = refused
    response = await page.goto(f"{node.url}{path}")
    assert response is not None and response.status == status
    await header.locator(".logout").wait_for(timeout=15000)
    assert words in await page.inner_text("main.refused")
    await page.wait_for_function(
        "document.getElementById('home').getAttribute('href') !== '/login'", timeout=15000
    )
    assert await page.get_attribute("#home", "href") == home
    # Log out: the shared PC is back at the login page and the session is gone.
    await header.locator(".logout").click()
    # The login page (with ?next= when the page's feed, closed at logout, got there first).
    await landed(page, re.compile(re.escape(f"{node.url}/login") + r"(\?next=.*)?$"))
    assert (await page.request.get(f"{node.url}/api/me")).status == 401
    await page.close()


async def test_overview_counts_villages_and_lists_alarms_and_lookouts(
    start_node: NodeFactory, browser: Any
) -> None:
    node = await start_node(operator_config())
    alarm = await post_event(
        node, "east-op", {"type": "alarm", "camera": "cam2", "kind": "fight", "reason": "打架"}
    )
    lookout = await post_event(node, "officer", {"type": "lookout", "text": "白色面包车"})
    page = await browser.new_page(viewport={"width": 1366, "height": 768})
    await ui_login(page, node, "admin")
    await landed(page, f"{node.url}/")
    east = page.locator('#villages .card[data-site="east"]')
    await page.wait_for_function(
        "() => document.querySelector('#villages .card[data-site=\"east\"]')?.dataset.online"
        " === '6' && document.querySelector('#villages .card[data-site=\"west\"]')?.dataset"
        ".offline === '1'",
        timeout=20000,
    )
    assert "共 6 台" in await east.inner_text() and "6 在线" in await east.inner_text()
    row = page.locator(f'#open-alarms li[data-id="{alarm["id"]}"]')
    await row.wait_for(timeout=15000)
    assert "斗殴" in await row.inner_text() and "等待派出所确认" in await row.inner_text()
    lookout_row = page.locator(f'#active-lookouts li[data-id="{lookout["id"]}"]')
    assert "白色面包车" in await lookout_row.inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "overview.png"))
    # A village's card opens the station's tree on that village.
    await page.locator('#villages .card[data-site="west"]').click()
    await page.wait_for_url(f"{node.url}/station#site=west", timeout=15000)
    await page.evaluate("() => window.station.ready")
    assert await page.input_value("#search") == "西村"
    assert await page.locator("#tree li.camera").all_inner_texts() == ["西村桥头"]
    await page.close()


STRIP_STATE_JS = """([id, state, text]) => {
  const item = document.querySelector(`#alarm-strip .alarm-item[data-id="${id}"]`);
  return item && item.dataset.state === state && item.textContent.includes(text);
}"""


async def test_wall_keeps_open_alarms_shows_their_state_and_holds_the_tour(
    start_node: NodeFactory, browser: Any
) -> None:
    dwell = 3
    node = await start_node(operator_config(dwell=dwell))
    wall = await browser.new_page(viewport=WALL)
    await log_in(wall, node, "east-op")
    await wall.goto(f"{node.url}/wall/room")
    await wall.evaluate("() => window.wall.ready")
    # Pages are filled: six cameras on four tiles, page two shows 5, 6, 1, 2.
    await wall.evaluate("() => { window.wall.pause(); window.wall.next(); }")
    shown = await wall.evaluate("() => window.wall.tiles.map((t) => t.camera && t.camera.id)")
    assert shown == ["cam4", "cam5", "cam0", "cam1"]
    assert await wall.locator("#tour-state").inner_text() == "轮巡已暂停"
    await wall.evaluate("() => window.wall.resume()")

    # The operator raises an alarm from a tile: answered in words, not JSON.
    tile = wall.locator(".tile").nth(1)
    await tile.hover()
    async with wall.expect_response("**/api/events") as answer:
        await tile.locator("button.alarm").click()
        await wall.select_option(".alarm-dialog select.kind", "fire")
        await wall.fill(".alarm-dialog input[name=reason]", "柴草堆冒烟")
        await wall.click(".alarm-dialog .send")
    alarm = await (await answer.value).json()
    toast = await wall.locator("#toast").inner_text()
    assert toast.startswith("报警已发送，等待派出所确认"), toast
    assert "{" not in toast
    await wall.wait_for_function(STRIP_STATE_JS, arg=[alarm["id"], "open", "等待派出所确认"])
    assert "火情" in await wall.locator("#alarm-strip").inner_text()

    # Reloaded (a kiosk does), the wall still shows it, pulses and holds its tour.
    await wall.reload()
    await wall.evaluate("() => window.wall.ready")
    await wall.wait_for_function(STRIP_STATE_JS, arg=[alarm["id"], "open", "柴草堆冒烟"])
    pulsing = wall.locator(".tile.alarming")
    await pulsing.wait_for(timeout=15000)
    assert alarm["camera"] in await wall.evaluate(
        "() => window.wall.tiles.filter((t) => t.el.classList.contains('alarming'))"
        ".map((t) => t.camera.id)"
    )
    assert await wall.locator("#tour-state").inner_text() == "报警未处置，轮巡暂停"
    page_before = await wall.evaluate("() => window.wall.page")
    await asyncio.sleep(dwell + 1.5)  # what is measured: the tour does not turn meanwhile
    assert await wall.evaluate("() => window.wall.page") == page_before

    # The station works it; each step reaches the wall that raised it.
    await post_event(node, "officer", {"type": "ack", "ref": alarm["id"]})
    await wall.wait_for_function(STRIP_STATE_JS, arg=[alarm["id"], "acked", "派出所已确认"])
    await post_event(node, "officer", {"type": "assign", "ref": alarm["id"], "team": "team2"})
    await wall.wait_for_function(STRIP_STATE_JS, arg=[alarm["id"], "assigned", "已派警：巡逻二组"])
    ARTIFACTS.mkdir(exist_ok=True)
    await wall.screenshot(path=str(ARTIFACTS / "wall-alarm.png"))
    await post_event(
        node, "officer", {"type": "resolve", "ref": alarm["id"], "note": "村民烧秸秆，已劝离"}
    )
    await wall.wait_for_function(
        STRIP_STATE_JS, arg=[alarm["id"], "resolved", "处置完毕：村民烧秸秆，已劝离"]
    )
    await pulsing.wait_for(state="detached", timeout=15000)
    # The tour resumes by itself once nothing is open.
    assert await wall.locator("#tour-state").inner_text() == ""
    await wall.wait_for_function(
        f"() => window.wall.page !== {page_before}", timeout=(dwell + 3) * 1000
    )
    (stored,) = await get_json(node, "/api/alarms?state=resolved")
    assert [s["type"] for s in stored["steps"]] == ["ack", "assign", "resolve"]
    await wall.close()
