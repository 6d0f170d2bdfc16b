"""The daily inspection from the camera state log: known outages, to the minute."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from relay.analysis.inspection import Inspection, day_bounds
from relay.analysis.service import Analysis
from relay.analysis.store import SCHEMA, AnalysisStore
from relay.config import parse_config
from relay.db import Database
from relay.media.hub import Hub
from relay.record import index
from relay.web.analysis import ANALYSIS
from relay.web.keys import DB
from tests.conftest import ADMIN, NodeFactory, log_in, users_yaml

CONFIG = (
    "node: {id: test, name: Test node}\n"
    "sites: [{id: station, name: Station}, {id: east, name: East, parent: station},"
    " {id: west, name: West, parent: station}]\n"
    + users_yaml(("eastern", "operator", "east"))
    + "cameras:\n"
    "  - {id: gate, name: Gate, site: east, main: 'synthetic://160x120?fps=5', always_on: false}\n"
    "  - {id: well, name: Well, site: west, main: 'synthetic://160x120?fps=5', always_on: false}\n"
)
DAY = datetime.date(2026, 11, 20)


async def test_an_outage_of_known_length_to_the_minute(tmp_path: Path) -> None:
    config = parse_config(CONFIG)
    db = Database(tmp_path / "a.sqlite", SCHEMA)
    await db.open()
    store = AnalysisStore(db)
    start, end = day_bounds(DAY)
    ten = start + 10 * 3600
    await store.state_changed("gate", start - 3600, "online", None)
    await store.state_changed("gate", ten, "offline", "connection refused")
    await store.state_changed("gate", ten + 600, "offline", "timed out")  # a new reason, one spell
    await store.state_changed("gate", ten + 37 * 60, "online", None)
    await store.state_changed("well", start - 60, "online", None)
    await store.tamper_started("well", start + 3600, "black")
    await store.tamper_ended("well", start + 3600 + 5 * 60)
    try:
        days = await Inspection(config, store).report(start, end, end + 1, config.cameras)
    finally:
        await db.close()
    assert [d["date"] for d in days] == [DAY.isoformat()]
    villages = {v["site"]: v for v in days[0]["villages"]}
    gate = villages["east"]["cameras"][0]
    assert gate["offline_minutes"] == 37.0
    assert gate["online_minutes"] == 24 * 60 - 37
    [spell] = gate["offline_periods"]
    assert spell["minutes"] == 37.0 and spell["reasons"] == ["connection refused", "timed out"]
    assert villages["east"]["share"] == round((24 * 60 - 37) / (24 * 60), 4)
    well = villages["west"]["cameras"][0]
    assert well["online_minutes"] == 24 * 60 and well["tamper_minutes"] == 5.0
    assert [v["site"] for v in days[0]["villages"]] == ["east", "west"], "worst first"


async def test_the_api_is_scoped_and_exports_csv(start_node: NodeFactory) -> None:
    node = await start_node(CONFIG)
    store = node.app[ANALYSIS].store
    start, end = day_bounds(DAY)
    await store.state_changed("gate", start, "online", None)
    await store.state_changed("gate", start + 3600, "offline", "refused")
    await store.state_changed("gate", start + 3600 + 90 * 60, "online", None)
    await store.state_changed("well", start, "online", None)
    query = {"since": str(start), "until": str(end)}
    eastern = {"Authorization": "Bearer eastern-token"}
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{node.url}/api/inspection", params=query, headers=ADMIN) as r:
            assert r.status == 200
            sites = {v["site"] for v in (await r.json())["days"][0]["villages"]}
        assert sites == {"east", "west"}
        async with http.get(f"{node.url}/api/inspection", params=query, headers=eastern) as r:
            villages = (await r.json())["days"][0]["villages"]
        assert [v["site"] for v in villages] == ["east"], "a village sees its own"
        assert villages[0]["cameras"][0]["offline_minutes"] == 90.0
        denied = {**query, "site": "west"}
        async with http.get(f"{node.url}/api/inspection", params=denied, headers=eastern) as r:
            assert r.status == 404
        async with http.get(f"{node.url}/api/inspection.csv", params=query, headers=eastern) as r:
            text = (await r.read()).decode("utf-8-sig")
        lines = text.strip().splitlines()
        assert lines[0].startswith("date,village,camera") and len(lines) == 2
        assert ",gate,Gate,1350.0,90.0," in lines[1]
        async with http.get(f"{node.url}/inspection", headers=ADMIN) as r:
            assert r.status == 200 and "inspection.js" in await r.text()


async def test_the_morning_summary_names_cameras_down_over_an_hour(
    start_node: NodeFactory,
) -> None:
    node = await start_node(CONFIG)
    analysis = node.app[ANALYSIS]
    today = datetime.date.today()
    start, _ = day_bounds(today - datetime.timedelta(days=1))
    await analysis.store.state_changed("gate", start, "online", None)
    await analysis.store.state_changed("gate", start + 7200, "offline", "refused")
    await analysis.store.state_changed("gate", start + 7200 + 61 * 60, "online", None)
    await analysis.store.state_changed("well", start, "online", None)
    await analysis.store.state_changed("well", start + 7200, "offline", "refused")
    await analysis.store.state_changed("well", start + 7200 + 59 * 60, "online", None)
    now = day_bounds(today)[0] + 7.5 * 3600
    [summary] = await analysis.morning_summary(now)
    assert summary.type == "inspection.summary" and summary.site == "east"
    assert [c["camera"] for c in summary.data["cameras"]] == ["gate"]
    assert summary.data["cameras"][0]["offline_minutes"] == 61.0


@pytest.mark.browser
async def test_the_page_shows_the_tables_and_the_chart(
    start_node: NodeFactory, browser: Any
) -> None:
    node = await start_node(CONFIG)
    store = node.app[ANALYSIS].store
    start, _ = day_bounds(datetime.date.today() - datetime.timedelta(days=1))
    await store.state_changed("gate", start, "online", None)
    await store.state_changed("gate", start + 3600, "offline", "connection refused")
    await store.state_changed("gate", start + 7200, "online", None)
    await store.state_changed("well", start + 16 * 3600 + 40 * 60, "online", None)  # added
    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await log_in(page, node)
    await page.goto(f"{node.url}/inspection")
    await page.wait_for_function("window.inspectionReady === true", timeout=10000)
    assert await page.locator("h2").first.text_content() == f"今日 · {datetime.date.today()}"
    tables = await page.locator("#days").text_content() or ""
    assert "connection refused" in tables and "Well (自 16:40 起)" in tables, tables
    assert await page.locator("#charts svg rect").count() >= 2, "a bar per village and day"
    # The common header as on every page: its own language button (the only one),
    # links not boxed in by the page's own styles.
    language = page.locator("button.language")
    await language.wait_for(timeout=10000)
    assert await page.get_by_role("button", name="English").count() == 1
    overview = page.locator('.vw-header a[href="/"]')
    assert await overview.evaluate("a => getComputedStyle(a).borderTopWidth") == "0px"
    await language.click()
    assert (await page.locator("h2").first.text_content() or "").startswith("Today")
    assert errors == []


async def test_after_a_crash_the_gap_is_not_counted_online(tmp_path: Path) -> None:
    """The node died at 10:00 (its last sign of life) and started at 12:00: the two
    hours are "stopped", and a motion period left open is closed at 10:00."""
    config = parse_config(CONFIG)
    db = Database(tmp_path / "a.sqlite", SCHEMA)
    await db.open()
    store = AnalysisStore(db)
    start, end = day_bounds(DAY)
    await store.state_changed("gate", start - 60, "online", None)
    await store.alive(start + 10 * 3600)
    period = await store.motion_started(
        "gate", "east", start + 9 * 3600, [0, 0, 1, 1], [], 0.1, False
    )
    try:
        await Analysis(config, Hub(config), db)._mark_crash()
        await store.state_changed("gate", start + 12 * 3600, "online", None)
        days = await Inspection(config, store).report(start, end, end + 1, config.cameras[:1])
        [found] = await store.motion_periods("gate", start, end)
    finally:
        await db.close()
    gate = days[0]["villages"][0]["cameras"][0]
    assert gate["online_minutes"] == 22 * 60 and gate["unknown_minutes"] == 120.0
    assert found.id == period and found.end == start + 10 * 3600


async def report_of(tmp_path: Path, changes: list[tuple[str, float, str]], since: float) -> Any:
    """The report from `since` to the end of DAY, from these state changes."""
    config = parse_config(CONFIG)
    db = Database(tmp_path / "a.sqlite", SCHEMA)
    await db.open()
    store = AnalysisStore(db)
    try:
        for camera, at, state in changes:
            await store.state_changed(camera, at, state, "refused" if state == "offline" else None)
        end = day_bounds(DAY)[1]
        return await Inspection(config, store).report(since, end, end + 1, config.cameras)
    finally:
        await db.close()


async def test_a_new_node_counts_each_camera_from_when_it_knew_it(tmp_path: Path) -> None:
    """The node first started at 16:40 on DAY: the day before has no data rather
    than zeros, and the outage of 7 minutes is still 7 minutes of 440 counted."""
    start, _ = day_bounds(DAY)
    first = start + 16 * 3600 + 40 * 60
    outage = start + 20 * 3600
    changes = [
        ("gate", first, "starting"),
        ("gate", first, "online"),
        ("gate", outage, "offline"),
        ("gate", outage + 7 * 60, "online"),
        ("well", first + 3600, "online"),  # added an hour later
    ]
    yesterday, today = await report_of(tmp_path, changes, day_bounds(DAY)[0] - 86400)
    assert yesterday["villages"] == [], "no data, not a table of zeros"
    villages = {v["site"]: v for v in today["villages"]}
    gate, well = villages["east"]["cameras"][0], villages["west"]["cameras"][0]
    assert gate["since"] == first and well["since"] == first + 3600
    assert gate["counted_minutes"] == 440.0 and gate["unknown_minutes"] == 0.0
    assert (gate["offline_minutes"], gate["online_minutes"]) == (7.0, 433.0)
    assert gate["share"] == round(433 / 440, 4) and well["share"] == 1.0
    # Asked for DAY alone (the first change is then no longer in the window): the same.
    [later] = await report_of(tmp_path, [], day_bounds(DAY)[0])
    assert later["villages"][0]["cameras"][0]["since"] == first


async def test_villages_worst_first_then_by_name_every_day(tmp_path: Path) -> None:
    start, _ = day_bounds(DAY)
    before = start - 86400
    changes = [
        ("gate", before, "online"),
        ("well", before, "online"),
        ("well", start + 3600, "offline"),  # DAY: West is down an hour
        ("well", start + 7200, "online"),
    ]
    day_before, day = await report_of(tmp_path, changes, before)
    assert [v["site"] for v in day_before["villages"]] == ["east", "west"], "equal: by name"
    assert [v["site"] for v in day["villages"]] == ["west", "east"], "worst first"


async def test_recording_coverage_comes_from_the_recordings_index(
    start_node: NodeFactory,
) -> None:
    """gate records (12 of DAY's 24 hours are in the index); well does not record."""
    recording = CONFIG.replace(
        "always_on: false}", "always_on: false, record: {mode: continuous}}", 1
    )
    node = await start_node(recording)
    start, end = day_bounds(DAY)
    store = node.app[ANALYSIS].store
    for camera in ("gate", "well"):
        await store.state_changed(camera, start - 60, "online", None)

    def indexed(conn: Any) -> None:
        for first, hours in ((start, 6), (start + 12 * 3600, 6)):
            path = f"gate/{first}.mp4"
            index.add(conn, "gate", stream="main", start=first, path=path, codec="h264")
            index.progress(conn, path, first + hours * 3600, 1000, closed=True)

    await node.app[DB].run(indexed)
    query = {"since": str(start), "until": str(end)}
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{node.url}/api/inspection", params=query, headers=ADMIN) as r,
    ):
        [day] = (await r.json())["days"]
    found = {c["camera"]: c["recording"] for v in day["villages"] for c in v["cameras"]}
    assert found == {"gate": 0.5, "well": None}
