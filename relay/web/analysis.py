"""Analysis on the web: its lifecycle, what it finds onto the bus, and motion search.

Armed motion becomes an `alarm` (by "motion", with the snapshot and box) in the
ordinary alarm workflow, and its end a `motion` event that refers to it; motion
outside the armed hours is kept only as periods (marks for the timeline).
Tamper becomes `camera.tamper` / `camera.ok`, the morning summary
`inspection.summary`. An admin draws a camera's zones and masks on its picture
(`/cameras/{id}/motion`); they are kept in the database and override the file's."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from relay.analysis.regions import with_regions
from relay.analysis.service import Analysis, Finding
from relay.bus.bus import AlertBus
from relay.bus.events import Event, new_event
from relay.config import CameraConfig, MotionRegions, first_problem
from relay.media.picture import snapshot
from relay.refusal import Refused
from relay.web.body import query_filters, read_json
from relay.web.events import BUS
from relay.web.guard import add_route, logged_in, user_of
from relay.web.keys import AUDIT, CONFIG, DB, HUB, RELOAD_LISTENERS
from relay.web.pages import render

logger = logging.getLogger(__name__)

ANALYSIS = web.AppKey("analysis", Analysis)
MAX_SPAN = 31 * 86400
ADMIN = frozenset({"admin"})
REGIONS = "/api/cameras/{camera_id}/motion/regions"
PICTURE_WAIT = 5.0  # seconds a picture may wait for a camera that is starting


def setup(app: web.Application) -> None:
    camera = logged_in(scope="camera")
    admin = logged_in(ADMIN, scope="camera")
    add_route(app, "GET", "/api/cameras/{camera_id}/motion", motion, camera)
    add_route(app, "GET", "/api/cameras/{camera_id}/picture", picture, camera)
    add_route(app, "GET", REGIONS, regions, admin)
    add_route(app, "PUT", REGIONS, draw_regions, admin)
    add_route(app, "DELETE", REGIONS, forget_regions, admin)
    add_route(app, "GET", "/cameras/{camera_id}/motion", page, logged_in(ADMIN, "camera", True))


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


async def picture(request: web.Request) -> web.Response:
    """The camera's current picture as JPEG (the stream motion analyses, else main)."""
    camera = _local_camera(request)
    hub = request.app[HUB]
    wanted = camera.motion.stream if camera.motion else "main"
    channels = [c for c in hub.camera_channels(camera.id) if c.stream == wanted]
    channels += list(hub.camera_channels(camera.id))
    if channels[0].always_on:  # a node just started: its camera is a moment away
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(PICTURE_WAIT):
                await channels[0].wait_online()
    for channel in channels:
        jpeg = await snapshot(channel)
        if jpeg:
            return web.Response(body=jpeg, content_type="image/jpeg")
    raise Refused(503, "the camera shows no picture right now: is it online?")


def _local_camera(request: web.Request) -> CameraConfig:
    camera = request.app[CONFIG].camera(request.match_info["camera_id"])
    if camera is None or request.app[HUB].channel(camera.id, "main") is None:
        raise Refused(404, "no such camera on this node")
    return camera


def _motion_camera(request: web.Request) -> CameraConfig:
    camera = _local_camera(request)
    if camera.motion is None:
        raise Refused(409, "motion is off for this camera: add motion: to it in the config")
    return camera


async def regions(request: web.Request) -> web.Response:
    """The zones and masks motion uses: drawn ones if any, else the config file's."""
    camera = _motion_camera(request)
    drawn = request.app[ANALYSIS].drawn.get(camera.id)
    motion = with_regions(camera, drawn).motion
    assert motion is not None
    return web.json_response(
        {
            "zones": [zone.model_dump() for zone in motion.zones],
            "masks": motion.masks,
            "source": "drawn" if drawn is not None else "config",
        }
    )


async def draw_regions(request: web.Request) -> web.Response:
    """Keep drawn zones and masks (`{"zones": [{"name", "polygon"}], "masks": [...]}`)."""
    camera = _motion_camera(request)
    body = await read_json(request)
    try:
        drawn = MotionRegions.model_validate(body)
    except ValidationError as exc:
        raise Refused(400, first_problem(exc)) from None
    await request.app[ANALYSIS].draw(camera.id, drawn, user_of(request).name)
    await _audit(request, camera, "motion.regions", zones=len(drawn.zones), masks=len(drawn.masks))
    return await regions(request)


async def forget_regions(request: web.Request) -> web.Response:
    """Back to the config file's zones and masks."""
    camera = _motion_camera(request)
    await request.app[ANALYSIS].draw(camera.id, None, user_of(request).name)
    await _audit(request, camera, "motion.regions.reset")
    return await regions(request)


async def _audit(request: web.Request, camera: CameraConfig, action: str, **detail: Any) -> None:
    user = user_of(request).name
    await request.app[AUDIT].record(
        action, user=user, address=request.remote, camera=camera.id, site=camera.site, **detail
    )


async def page(request: web.Request) -> web.Response:
    camera = _motion_camera(request)
    text = render("regions.html", camera=camera.id, name=camera.name)
    return web.Response(text=text, content_type="text/html")
