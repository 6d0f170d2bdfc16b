"""Analysis on the web: its lifecycle, what it finds onto the bus, and motion search.

Armed motion becomes an `alarm` (by "motion", with the snapshot and box) in the
ordinary alarm workflow, and its end a `motion` event that refers to it; motion
outside the armed hours is kept only as periods (marks for the timeline).
Tamper becomes `camera.tamper` / `camera.ok`, the morning summary
`inspection.summary`."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from aiohttp import web

from relay.analysis.service import Analysis, Finding
from relay.bus.bus import AlertBus
from relay.bus.events import Event, new_event
from relay.web.body import query_filters
from relay.web.events import BUS
from relay.web.guard import add_route, logged_in
from relay.web.keys import CONFIG, DB, HUB, RELOAD_LISTENERS

logger = logging.getLogger(__name__)

ANALYSIS = web.AppKey("analysis", Analysis)
MAX_SPAN = 31 * 86400


def setup(app: web.Application) -> None:
    add_route(app, "GET", "/api/cameras/{camera_id}/motion", motion, logged_in(scope="camera"))


class FindingsToBus:
    """Each finding as its bus event, published in the order found."""

    def __init__(self, analysis: Analysis, bus: AlertBus, node: str) -> None:
        self.analysis = analysis
        self.bus = bus
        self.node = node
        self._alarms: dict[int, asyncio.Future[str]] = {}  # motion period -> its alarm's id
        self._tasks: set[asyncio.Task[None]] = set()

    def __call__(self, finding: Finding) -> None:
        if finding.type.startswith("motion."):
            if finding.armed and finding.period is not None:
                self._spawn(self._motion(finding, finding.period))
            return  # unarmed motion stays a mark on the timeline
        event = new_event(
            self.node, finding.type, finding.site, camera=finding.camera, data=finding.data
        )
        self._spawn(self._publish(event.with_image(finding.image)))

    async def _publish(self, event: Event) -> None:
        await self.bus.publish(event)

    async def _motion(self, finding: Finding, period: int) -> None:
        if finding.type == "motion.start":
            alarm_id = self._alarms[period] = asyncio.get_running_loop().create_future()
            zones = finding.data["zones"]
            data = {
                **finding.data,
                "reason": "motion" + (f": {', '.join(zones)}" if zones else ""),
                "motion": period,
            }
            event = new_event(
                self.node, "alarm", finding.site, camera=finding.camera, by="motion", data=data
            )
            try:
                stored = await self.bus.publish(event.with_image(finding.image))
            finally:
                if not alarm_id.done():
                    alarm_id.set_result(event.id)
            await self.analysis.store.motion_alarm(period, stored.event.id)
            return
        started = self._alarms.pop(period, None)
        ref = await started if started is not None else None
        data = {**finding.data, "phase": "end", "motion": period}
        await self.bus.publish(
            new_event(self.node, "motion", finding.site, camera=finding.camera, ref=ref, data=data)
        )

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            try:
                await task
            except Exception:
                logger.exception("analysis: an event was not published")


async def analysis_lifecycle(app: web.Application) -> AsyncIterator[None]:
    analysis = Analysis(app[CONFIG], app[HUB], app[DB])
    app[ANALYSIS] = analysis
    to_bus = FindingsToBus(analysis, app[BUS], app[CONFIG].node.id)
    analysis.on_finding.append(to_bus)
    await analysis.start()
    app[RELOAD_LISTENERS].append(analysis.apply)
    yield
    app[RELOAD_LISTENERS].remove(analysis.apply)
    await analysis.close()
    await to_bus.close()


async def motion(request: web.Request) -> web.Response:
    """Motion periods of a camera: `since`, `until` (Unix times; the last day by
    default, at most 31 days) and `zone`."""
    filters = query_filters(request.query, ())
    until = filters.get("until", time.time())
    since = filters.get("since", until - 86400)
    if not 0 <= until - since <= MAX_SPAN:
        return web.Response(status=400, text="since must be before until, at most 31 days apart\n")
    zone = request.query.get("zone")
    periods = await request.app[ANALYSIS].store.motion_periods(
        request.match_info["camera_id"], since, until, zone[:64] if zone else None
    )
    return web.json_response([p.as_json() for p in periods])
