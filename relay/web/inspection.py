"""The daily inspection (巡检) on the web: its API, a CSV export and the page.
Every answer covers only the cameras of the user's sites (and of `site`'s
subtree, when asked)."""

from __future__ import annotations

import csv
import datetime
import io
import time
from functools import partial
from typing import Any

from aiohttp import web

from relay.analysis.inspection import day_bounds
from relay.config import CameraConfig
from relay.record.index import spans
from relay.refusal import Refused
from relay.web.analysis import ANALYSIS
from relay.web.body import query_filters
from relay.web.guard import NOT_PATROL, WATCHERS, add_route, logged_in, user_of
from relay.web.keys import CONFIG
from relay.web.pages import render
from relay.web.recordings import RECORDINGS

MAX_DAYS = 62


def setup(app: web.Application) -> None:
    add_route(app, "GET", "/api/inspection", report, logged_in(NOT_PATROL))
    add_route(app, "GET", "/api/inspection.csv", report_csv, logged_in(NOT_PATROL))
    add_route(app, "GET", "/inspection", page, logged_in(WATCHERS, page=True))


def _cameras(request: web.Request) -> list[CameraConfig]:
    config, user = request.app[CONFIG], user_of(request)
    site = request.query.get("site")
    if site is not None and not user.sees(site):
        raise Refused(404, "no such site")
    wanted = config.subtree([site]) if site is not None else None
    return [c for c in config.cameras if user.sees(c.site) and (wanted is None or c.site in wanted)]


async def _report(request: web.Request) -> list[dict[str, Any]]:
    """`since`/`until` Unix times; by default from the start of yesterday to now."""
    now = time.time()
    filters = query_filters(request.query, ())
    yesterday = datetime.date.today() - datetime.timedelta(days=1)
    since = filters.get("since", day_bounds(yesterday)[0])
    until = filters.get("until", now)
    if not 0 < until - since <= MAX_DAYS * 86400 + 7200:  # a DST day is 25 hours long
        raise Refused(400, f"since must be before until, at most {MAX_DAYS} days apart")
    days: list[dict[str, Any]] = await request.app[ANALYSIS].inspection.report(
        since, until, now, _cameras(request), partial(_coverage, request.app)
    )
    return days


async def _coverage(app: web.Application, camera: str, since: float, until: float) -> float | None:
    """The share of [since, until) the recordings index holds; None for a camera
    that does not record (or a node without the recorder)."""
    recordings = app.get(RECORDINGS)
    if recordings is None or camera not in recordings.recorders or until <= since:
        return None
    segments = await recordings.segments(camera, since, until)
    recorded = sum(s["end"] - s["start"] for s in spans(segments, since, until)["spans"])
    return round(min(recorded / (until - since), 1.0), 4)


async def report(request: web.Request) -> web.Response:
    return web.json_response({"days": await _report(request)})


CSV_COLUMNS = (
    "date",
    "village",
    "camera",
    "name",
    "online_minutes",
    "offline_minutes",
    "unknown_minutes",
    "share",
    "offline_periods",
    "tamper_minutes",
    "recording",
)


def _clock(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds).strftime("%H:%M")


async def report_csv(request: web.Request) -> web.Response:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for day in await _report(request):
        for village in day["villages"]:
            for cam in village["cameras"]:
                spells = "; ".join(
                    f"{_clock(p['start'])}-{_clock(p['end'])} {' / '.join(p['reasons'])}".strip()
                    for p in cam["offline_periods"]
                )
                writer.writerow(
                    [
                        day["date"],
                        village["site"],
                        cam["camera"],
                        cam["name"],
                        cam["online_minutes"],
                        cam["offline_minutes"],
                        cam["unknown_minutes"],
                        "" if cam["share"] is None else cam["share"],
                        spells,
                        cam["tamper_minutes"],
                        "" if cam["recording"] is None else cam["recording"],
                    ]
                )
    return web.Response(
        body=("\ufeff" + out.getvalue()).encode(),  # the BOM lets spreadsheet programs read 中文
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": 'attachment; filename="inspection.csv"'},
    )


async def page(request: web.Request) -> web.Response:
    text = render("inspection.html", name=request.app[CONFIG].node.name)
    return web.Response(text=text, content_type="text/html")
