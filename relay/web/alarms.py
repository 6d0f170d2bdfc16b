"""Alarms with their steps, the alarm history (报警记录) and its CSV, patrol teams,
active lookouts with their sightings; and the pages that use them (history, patrol).
"""

from __future__ import annotations

import csv
import io
import time
from functools import partial
from typing import Any

from aiohttp import web

from relay.access.accounts import User
from relay.bus.events import ALARM_WORKFLOW, visible
from relay.bus.store import StoredEvent
from relay.config import Config
from relay.web.body import query_filters
from relay.web.events import BUS
from relay.web.guard import PATROL_CAMERAS, PatrolCameras, add_route, logged_in, user_of
from relay.web.keys import CONFIG
from relay.web.labels import label, lang_of
from relay.web.pages import render

HISTORY_ROLES = frozenset({"admin", "officer", "operator"})
PATROL_ROLES = frozenset({"admin", "officer", "patrol"})
LIMIT = 500
CSV_COLUMNS = (
    "time",
    "site",
    "camera",
    "kind",
    "reason",
    "state",
    "raised_by",
    "team",
    "steps",
    "id",
    "kind_code",
    "state_code",
)


def setup(app: web.Application) -> None:
    cameras: PatrolCameras = partial(_patrol_cameras, app)
    app[PATROL_CAMERAS] = cameras
    add_route(app, "GET", "/api/alarms", alarms, logged_in())
    add_route(app, "GET", "/api/alarms.csv", alarms_csv, logged_in(HISTORY_ROLES))
    add_route(app, "GET", "/api/patrol-teams", teams, logged_in())
    add_route(app, "GET", "/api/lookouts", lookouts, logged_in())
    add_route(app, "GET", "/alarms", history_page, logged_in(HISTORY_ROLES, page=True))
    add_route(app, "GET", "/patrol", patrol_page, logged_in(PATROL_ROLES, page=True))


async def _patrol_cameras(app: web.Application, user: User) -> frozenset[str]:
    """The cameras of the alarms the patrol's team still works on."""
    if not user.team:
        return frozenset()
    found = await app[BUS].store.alarms({"team": user.team, "state": "unresolved"}, LIMIT)
    return frozenset(s.event.camera for s in found if s.event.camera)


async def found_alarms(request: web.Request) -> list[dict[str, Any]]:
    """The alarms the query asks for that the user may see, each with its steps."""
    user, config = user_of(request), request.app[CONFIG]
    filters = query_filters(request.query, ("site", "camera", "state", "kind", "team"))
    if user.role == "patrol":
        filters["team"] = user.team  # a patrol sees its own team's alarms only
    store = request.app[BUS].store
    found = [s for s in await store.alarms(filters, LIMIT) if visible(s.event, user, config)]
    steps = await store.about([s.event.id for s in found], tuple(ALARM_WORKFLOW))
    by_alarm: dict[str, list[dict[str, Any]]] = {}
    for step in steps:
        by_alarm.setdefault(step.event.ref or "", []).append(step.as_json())
    out = [
        {
            **s.as_json(),
            "camera_name": _camera_name(s, config),
            "steps": by_alarm.get(s.event.id, []),
        }
        for s in found
    ]
    query = request.query.get("q", "").strip().lower()[:100]
    if query:
        out = [a for a in out if query in _searchable(a, config)]
    return out


def _camera_name(stored: StoredEvent, config: Config) -> str | None:
    """The camera's name, so that a page need not be allowed the camera to name it."""
    camera = config.camera(stored.event.camera or "")
    return camera.name if camera else None


def _searchable(alarm: dict[str, Any], config: Config) -> str:
    camera = config.camera(alarm["camera"] or "")
    texts = [alarm["data"].get("reason", ""), alarm["by"], camera.name if camera else ""]
    texts += [s["data"].get("note", "") for s in alarm["steps"]]
    return " ".join(texts).lower()


async def alarms(request: web.Request) -> web.Response:
    return web.json_response(await found_alarms(request))


async def alarms_csv(request: web.Request) -> web.Response:
    """The history as a spreadsheet for the shift handover, in the asked `lang`
    (Chinese by default), with the raw codes in the last columns for programs;
    UTF-8 with a BOM, so that Excel reads the Chinese right."""
    lang = lang_of(request)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([label(lang, column) for column in CSV_COLUMNS])
    for alarm in await found_alarms(request):
        writer.writerow(_csv_row(alarm, request.app[CONFIG], lang))
    name = time.strftime("alarms-%Y%m%d-%H%M.csv")
    return web.Response(
        body=("\ufeff" + out.getvalue()).encode(),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _csv_row(alarm: dict[str, Any], config: Config, lang: str) -> list[str]:
    sites = {s.id: s.name for s in config.sites}
    camera = config.camera(alarm["camera"] or "")
    kind = alarm["data"].get("kind", "")
    steps = "; ".join(
        f"{_local(s['time'])} {label(lang, 'step_' + s['type'])} {s['by']}"
        + (f" {s['data'].get('team_name', '')}" if s["type"] == "assign" else "")
        + (f": {s['data']['note']}" if s["data"].get("note") else "")
        for s in alarm["steps"]
    )
    return [
        _local(alarm["time"]),
        sites.get(alarm["site"], alarm["site"]),
        camera.name if camera else alarm["camera"],
        label(lang, f"kind_{kind}") if kind else "",
        alarm["data"].get("reason", ""),
        label(lang, f"state_{alarm['state']}"),
        alarm["by"],
        alarm["data"].get("team_name", ""),
        steps,
        alarm["id"],
        kind,
        alarm["state"],
    ]


def _local(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


async def teams(request: web.Request) -> web.Response:
    user, config = user_of(request), request.app[CONFIG]
    found = [t for t in config.patrol_teams if user.sees(t.site)]
    return web.json_response([{"id": t.id, "name": t.name, "site": t.site} for t in found])


async def lookouts(request: web.Request) -> web.Response:
    """Lookouts neither expired nor cancelled, newest first, each with its sightings."""
    user, config = user_of(request), request.app[CONFIG]
    store = request.app[BUS].store
    now = time.time()
    found = [
        s
        for s in await store.query({"type": "lookout"}, LIMIT)
        if _active(s, now) and visible(s.event, user, config)
    ]
    sightings = await store.about([s.event.id for s in found], ("sighting",))
    by_lookout: dict[str, list[dict[str, Any]]] = {}
    for sighting in sightings:
        if visible(sighting.event, user, config):
            by_lookout.setdefault(sighting.event.ref or "", []).append(sighting.as_json())
    out = [{**s.as_json(), "sightings": by_lookout.get(s.event.id, [])} for s in found]
    return web.json_response(out)


def _active(stored: StoredEvent, now: float) -> bool:
    expires = stored.event.data.get("expires")
    return stored.state != "cancelled" and not (isinstance(expires, float) and expires < now)


async def history_page(request: web.Request) -> web.Response:
    page = render("alarms.html", name=request.app[CONFIG].node.name)
    return web.Response(text=page, content_type="text/html")


async def patrol_page(request: web.Request) -> web.Response:
    page = render("patrol.html", name=request.app[CONFIG].node.name)
    return web.Response(text=page, content_type="text/html")


def home_of(user: User, config: Config) -> str:
    """The page a user lands on: an operator their village's wall, an officer the
    station, a patrol its alarms, everyone else the overview."""
    if user.role == "patrol":
        return "/patrol"
    if user.role == "officer":
        return "/station"
    if user.role == "operator":
        wall = next((w for w in config.walls if user.sees(w.site)), None)
        return f"/wall/{wall.id}" if wall else "/"
    return "/"
