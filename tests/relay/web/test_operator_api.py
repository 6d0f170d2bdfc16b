"""The alarm workflow's new steps over HTTP: typed, validated, in scope (issue 18)."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from typing import Any

import aiohttp
import pytest

from ingest.state import SourceState
from relay.bus.events import ALARM_WORKFLOW, RAISED_BY, new_event
from relay.config import ConfigError, parse_config
from relay.web.events import AUDITED, BUS
from relay.web.keys import HUB
from relay.web.labels import label
from relay.web.pages import STATIC
from tests.conftest import NodeFactory
from tests.helpers import wait_until
from tests.relay.web.operator_config import PATROL, get_json, headers, operator_config, post_event


async def post(node: Any, who: str, body: dict[str, Any]) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{node.url}/api/events", json=body, headers=headers(who)) as r,
    ):
        return r.status, (await r.text()).strip()


def test_every_publishable_type_is_audited() -> None:
    assert set(AUDITED) == set(RAISED_BY)
    assert set(ALARM_WORKFLOW) <= set(RAISED_BY)


def test_a_patrol_login_needs_a_known_team() -> None:
    text = operator_config()
    with pytest.raises(ConfigError, match=r"role patrol needs a team"):
        parse_config(text.replace(" team: team2,", ""))
    with pytest.raises(ConfigError, match=r"users\[\d\]\.team: unknown patrol team 'team9'"):
        parse_config(text.replace("team: team2", "team: team9"))


async def test_patrol_steps_only_for_its_own_team_and_known_teams_only(
    start_node: NodeFactory,
) -> None:
    node = await start_node(operator_config())
    alarm = await post_event(node, "east-op", {"type": "alarm", "camera": "cam0"})
    assert alarm["data"]["kind"] == "other"
    assert await post(node, "east-op", {"type": "alarm", "camera": "cam0", "kind": "ufo"}) == (
        400,
        "kind must be one of theft, fire, fight, missing, traffic, other",
    )
    # Not yet assigned to the patrol's team: it may not take a step.
    assert await post(node, PATROL, {"type": "accept", "ref": alarm["id"]}) == (
        403,
        "this alarm is not assigned to your team",
    )
    status, _ = await post(node, "officer", {"type": "assign", "ref": alarm["id"], "team": "x"})
    assert status == 400
    await post_event(node, "officer", {"type": "assign", "ref": alarm["id"], "team": "team3"})
    assert (await post(node, PATROL, {"type": "accept", "ref": alarm["id"]}))[0] == 403
    assert await get_json(node, "/api/alarms", PATROL) == []  # a patrol sees its team's only
    await post_event(node, "officer", {"type": "assign", "ref": alarm["id"], "team": "team2"})
    await post_event(node, PATROL, {"type": "accept", "ref": alarm["id"]})
    (seen,) = await get_json(node, "/api/alarms", PATROL)
    assert (seen["state"], seen["data"]["team_name"]) == ("accepted", "巡逻二组")
    assert await post(node, "east-op", {"type": "arrive", "ref": alarm["id"]}) == (
        403,
        "role operator may not publish arrive",
    )
    status, _ = await post(node, PATROL, {"type": "resolve", "ref": alarm["id"], "photo": "eA=="})
    assert status == 400  # not a JPEG: refused, nothing stored
    await post_event(node, PATROL, {"type": "resolve", "ref": alarm["id"], "note": "已处置"})
    (done,) = await get_json(node, "/api/alarms?state=resolved")
    assert [s["type"] for s in done["steps"]] == ["assign", "assign", "accept", "resolve"]
    assert await get_json(node, "/api/alarms?state=unresolved") == []
    audit = await get_json(node, "/api/audit?action=alarm.accept")
    assert [e["user"] for e in audit["entries"]] == [PATROL]


async def test_a_cancelled_lookout_is_no_longer_active(start_node: NodeFactory) -> None:
    node = await start_node(operator_config())
    lookout = await post_event(node, "officer", {"type": "lookout", "text": "黑色摩托车"})
    assert [x["id"] for x in await get_json(node, "/api/lookouts", "east-op")] == [lookout["id"]]
    assert (await post(node, "east-op", {"type": "cancel", "ref": lookout["id"]}))[0] == 403
    await post_event(node, "officer", {"type": "cancel", "ref": lookout["id"]})
    assert await get_json(node, "/api/lookouts", "east-op") == []


async def test_steps_from_the_network_before_their_alarm_still_give_it_state_and_team(
    start_node: NodeFactory,
) -> None:
    """Across nodes an assign and an accept can arrive before the alarm they are about."""
    node = await start_node(operator_config())
    bus = node.app[BUS]
    alarm = new_event("v2", "alarm", "east", camera="cam0", by="op2", data={"reason": "x"})
    assign = new_event(
        "v2",
        "assign",
        "east",
        camera="cam0",
        by="off2",
        ref=alarm.id,
        data={"team": "team2", "team_name": "巡逻二组"},
    )
    accept = new_event("v2", "accept", "east", camera="cam0", by=PATROL, ref=alarm.id)
    for event in (assign, accept, alarm):
        await bus.receive([event])
    (found,) = await get_json(node, "/api/alarms", PATROL)
    assert (found["id"], found["state"], found["data"]["team"]) == (alarm.id, "accepted", "team2")
    assert [s["type"] for s in found["steps"]] == ["assign", "accept"]


async def csv_rows(node: Any, query: str = "") -> tuple[int, bytes]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{node.url}/api/alarms.csv{query}", headers=headers("officer")) as r,
    ):
        return r.status, await r.read()


async def test_alarm_csv_speaks_the_asked_language_with_codes_beside(
    start_node: NodeFactory,
) -> None:
    node = await start_node(operator_config())
    alarm = await post_event(
        node, "east-op", {"type": "alarm", "camera": "cam0", "kind": "theft", "reason": "偷车"}
    )
    await post_event(node, "officer", {"type": "ack", "ref": alarm["id"]})
    await post_event(node, "officer", {"type": "assign", "ref": alarm["id"], "team": "team2"})
    await post_event(node, PATROL, {"type": "accept", "ref": alarm["id"]})
    await post_event(node, PATROL, {"type": "resolve", "ref": alarm["id"], "note": "已处置"})
    tables = {}
    for query in ("", "?lang=en"):
        status, body = await csv_rows(node, query)
        assert status == 200 and body.startswith(b"\xef\xbb\xbf"), "UTF-8 with a BOM"
        tables[query] = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    (head, row), (en_head, en_row) = tables[""], tables["?lang=en"]
    assert head[:4] == ["时间", "村", "摄像机", "报警类型"] and en_head[3] == "type"
    zh, en = dict(zip(head, row, strict=True)), dict(zip(en_head, en_row, strict=True))
    assert (zh["报警类型"], zh["状态"]) == ("盗窃", "已处置")
    assert (zh["村"], zh["巡逻队"]) == ("东村", "巡逻二组")
    assert (en["type"], en["state"]) == ("theft", "resolved")
    for word in ("确认", "派警 officer 巡逻二组", "接警", "处置完毕 p2: 已处置"):
        assert word in zh["处置经过"], zh["处置经过"]
    assert "assigned officer 巡逻二组" in en["steps"] and " ack " not in en["steps"]
    # The raw codes stay, for programs, in both languages.
    assert (
        (zh["类型代码"], zh["状态代码"])
        == (en["type code"], en["state code"])
        == (
            "theft",
            "resolved",
        )
    )
    assert await csv_rows(node, "?lang=fr") == (400, b"lang must be one of zh, en\n")


async def status_of(node: Any, method: str, path: str, who: str) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, node.url + path, headers=headers(who), allow_redirects=False) as r,
    ):
        return r.status


async def test_a_patrol_sees_only_the_cameras_of_its_teams_open_alarms(
    start_node: NodeFactory,
) -> None:
    node = await start_node(operator_config())
    camera_routes = (
        ("GET", "/view/cam0"),
        ("GET", "/api/cameras/cam0"),
        ("POST", "/whep/cam0"),  # no SDP: 415 once the guard lets it through
        ("GET", "/api/cameras/cam0/picture"),
    )

    async def cam0() -> list[int]:
        return [await status_of(node, m, p, PATROL) for m, p in camera_routes]

    async def listed() -> list[str]:
        return [c["id"] for c in await get_json(node, "/api/cameras", PATROL)]

    assert await cam0() == [404] * 4 and await listed() == []
    alarm = await post_event(node, "east-op", {"type": "alarm", "camera": "cam0"})
    await post_event(node, "officer", {"type": "assign", "ref": alarm["id"], "team": "team3"})
    assert await cam0() == [404] * 4, "another team's alarm opens nothing"
    await post_event(node, "officer", {"type": "assign", "ref": alarm["id"], "team": "team2"})
    assert (await cam0())[:3] == [200, 200, 415] and await listed() == ["cam0"]
    assert await status_of(node, "GET", "/view/cam1", PATROL) == 404
    (seen,) = await get_json(node, "/api/alarms", PATROL)
    assert seen["camera_name"] == "东村0号"  # named without the camera being listed
    await post_event(node, PATROL, {"type": "resolve", "ref": alarm["id"]})
    assert await cam0() == [404] * 4 and await listed() == [], "done: the camera is closed"
    # Walls, the station, the overview and the inspection are not for a patrol at all.
    for path in ("/", "/station", "/wall/room", "/inspection", "/api/walls", "/api/inspection"):
        assert await status_of(node, "GET", path, PATROL) == 403, path
    assert await status_of(node, "GET", "/patrol", PATROL) == 200


async def test_a_patrol_hears_of_its_teams_alarms_only_in_its_feed_and_queries(
    start_node: NodeFactory,
) -> None:
    """Of the alarms, a patrol's event feed (backlog and live), its event query and
    its event images carry those assigned to its team: from the assignment on,
    with every step, and the assign that takes one away; another team's alarm, an
    alarm not yet assigned, and any other event about a camera (here a sighting)
    never reach it. Lookouts reach it by its sites, as for anyone."""
    node = await start_node(operator_config())
    channels = [node.app[HUB].channel(c, "main") for c in ("cam0", "cam1")]
    await wait_until(
        lambda: all(c is not None and c.source.state is SourceState.ONLINE for c in channels),
        10,
        "cameras online, so that alarms have their pictures",
    )
    ours = await post_event(node, "east-op", {"type": "alarm", "camera": "cam0"})
    theirs = await post_event(node, "east-op", {"type": "alarm", "camera": "cam1"})
    assert ours["image"] and theirs["image"]
    async with aiohttp.ClientSession() as http:
        live = await http.ws_connect(f"{node.url}/api/events?after=0", headers=headers(PATROL))
        await post_event(node, "officer", {"type": "assign", "ref": ours["id"], "team": "team2"})
        await post_event(node, "officer", {"type": "assign", "ref": theirs["id"], "team": "team3"})
        await post_event(node, "officer", {"type": "ack", "ref": theirs["id"]})
        await post_event(node, "officer", {"type": "ack", "ref": ours["id"]})
        await post_event(node, PATROL, {"type": "accept", "ref": ours["id"]})

        async def images() -> list[int]:
            statuses = []
            for alarm in (ours, theirs):
                url = f"{node.url}/api/events/{alarm['id']}/image"
                async with http.get(url, headers=headers(PATROL)) as r:
                    statuses.append(r.status)
            return statuses

        assert await images() == [200, 404]
        lookout = await post_event(node, "officer", {"type": "lookout", "text": "黑色电动车"})
        sighting = {"type": "sighting", "ref": lookout["id"], "camera": "cam1"}
        await post_event(node, "east-op", sighting)
        # taken from the team: it hears that, and nothing of the alarm after it
        await post_event(node, "officer", {"type": "assign", "ref": ours["id"], "team": "team3"})
        await post_event(node, "officer", {"type": "arrive", "ref": ours["id"]})
        await post_event(node, "officer", {"type": "lookout", "text": "最后"})
        backlog = await http.ws_connect(f"{node.url}/api/events?after=0", headers=headers(PATROL))
        feeds = {}
        for name, feed in (("live", live), ("backlog", backlog)):
            got: list[dict[str, Any]] = []
            async with asyncio.timeout(10):
                while not any(e["data"].get("text") == "最后" for e in got):
                    got += (await feed.receive()).json()
            await feed.close()
            feeds[name] = [(e["type"], e["ref"] or e["id"]) for e in got]
        assert await images() == [404, 404]  # ours is team3's now
    seen = [(e["type"], e["ref"] or e["id"]) for e in await get_json(node, "/api/events", PATROL)]
    last = next(e for e in feeds["live"] if e[0] == "lookout" and e[1] != lookout["id"])
    steps = [
        ("assign", ours["id"]),
        ("ack", ours["id"]),
        ("accept", ours["id"]),
        ("lookout", lookout["id"]),
        ("assign", ours["id"]),  # to team3: the patrol's card goes
        last,
    ]
    assert feeds["live"] == steps, "live: its own team's alarm, while it is its own"
    # the stored alarm names its team of now (team3): the backlog leaves it out
    assert feeds["backlog"] == steps
    assert sorted(seen) == sorted(steps)
    everyone = {(e["type"], e["ref"] or e["id"]) for e in await get_json(node, "/api/events")}
    assert {("alarm", theirs["id"]), ("ack", theirs["id"]), ("sighting", lookout["id"])} <= everyone


async def test_a_refused_page_is_a_page_and_a_refused_api_one_line(
    start_node: NodeFactory,
) -> None:
    node = await start_node(operator_config())
    answers = {}
    async with aiohttp.ClientSession(node.url, headers=headers("east-op")) as http:
        for path in (
            "/patrol",
            "/view/w0",
            "/view/nope",
            "/wall/nope",
            "/api/walls/nope",
            "/api/peers",
        ):
            async with http.get(path, allow_redirects=False) as r:
                answers[path] = (r.status, r.content_type, await r.text())
    for path, status, words in (
        ("/patrol", 403, "无权打开此页面"),
        ("/view/w0", 404, "找不到此页面"),  # out of scope, exactly like one that is not
        ("/wall/nope", 404, "找不到此页面"),
    ):
        got, kind, text = answers[path]
        assert (got, kind) == (status, "text/html"), path
        assert words in text and "/static/header.js" in text and 'href="/login"' in text
    assert answers["/view/w0"] == answers["/view/nope"]
    assert answers["/api/walls/nope"] == (404, "text/plain", "no such wall\n")
    assert answers["/api/peers"] == (403, "text/plain", "not allowed for role operator\n")


def test_the_refusal_page_says_what_the_browser_would() -> None:
    """The server writes the refusal in Chinese before any script runs; the page's
    i18n.js then keeps it (or switches to English): the words must be the same."""
    script = (STATIC / "i18n.js").read_text(encoding="utf-8")
    for key in (
        "refused_403",
        "refused_403_detail",
        "refused_404",
        "refused_404_detail",
        "go_home",
    ):
        found = re.search(rf'^\s+{key}: "([^"]*)",$', script, re.MULTILINE)
        assert found is not None and found.group(1) == label("zh", key), key
