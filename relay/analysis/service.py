"""Analysis for the node: each analysed camera's motion and tamper, the camera
state log, and the morning summary. It says what it found to its listeners
(`on_finding`); the composition root turns findings into bus events and the
recorder may take motion periods as timeline marks from the same list."""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Callable, Collection, Coroutine
from dataclasses import dataclass, field
from typing import Any

from ingest.state import SourceState
from ingest.tasks import cancel_and_wait
from relay.analysis.camera import CameraAnalysis, Change
from relay.analysis.inspection import Inspection, day_bounds
from relay.analysis.regions import with_regions
from relay.analysis.store import AnalysisStore
from relay.config import CameraConfig, Config, MotionRegions
from relay.db import Database
from relay.media.changes import CameraChanges
from relay.media.hub import Channel, Hub

logger = logging.getLogger(__name__)

ALIVE_SECONDS = 60.0  # how often the node notes it runs: a crash costs at most this
STATE_NAMES = {
    SourceState.ONLINE: "online",
    SourceState.OFFLINE: "offline",
    SourceState.STALLED: "offline",
    SourceState.STARTING: "starting",
    SourceState.IDLE: "idle",
}


@dataclass(frozen=True)
class Finding:
    """For the bus (and the recorder): type, where, when, what."""

    type: str  # "motion.start", "motion.end", "camera.tamper", "camera.ok", "inspection.summary"
    site: str
    camera: str | None
    time: float
    data: dict[str, Any] = field(default_factory=dict)
    image: bytes | None = None
    period: int | None = None  # the motion period's id
    armed: bool = False


class Analysis:
    def __init__(self, config: Config, hub: Hub, db: Database) -> None:
        self.config = config
        self.hub = hub
        self.store = AnalysisStore(db)
        self.inspection = Inspection(config, self.store)
        self.on_finding: list[Callable[[Finding], None]] = []
        self.cameras: list[CameraAnalysis] = []
        self.drawn: dict[str, MotionRegions] = {}  # zones and masks drawn in the browser
        self._states: dict[str, str] = {}
        self._open_period: dict[str, int] = {}
        self._work: asyncio.Queue[Coroutine[Any, Any, None]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await self._mark_crash()
        self.drawn = await self.store.drawn_regions()
        self.hub.state_listeners.append(self._channel_changed)
        for camera in self.config.cameras:
            self._record(camera)
        self._tasks = [
            asyncio.create_task(self._writer(), name="analysis writer"),
            asyncio.create_task(self._alive(), name="analysis alive"),
        ]
        if self.config.inspection.summary_at is not None:
            self._tasks.append(asyncio.create_task(self._mornings(), name="analysis summary"))
        self._follow(self.config.cameras, ended=())

    async def apply(self, config: Config, changes: CameraChanges) -> None:
        """A reloaded config: cameras whose analysis settings or channels changed
        start again, removed ones stop (and are noted stopped), added ones start;
        the others run on undisturbed."""
        self.config = self.inspection.config = config
        self._follow(config.cameras, changes.ended)
        now = time.time()
        for camera_id in changes.removed:
            self._states.pop(camera_id, None)
            self._work.put_nowait(self.store.state_changed(camera_id, now, "stopped", "removed"))
        for camera in config.cameras:
            self._record(camera)

    def _follow(self, cameras: list[CameraConfig], ended: Collection[str]) -> None:
        """Run the analysis `cameras` ask for (with the zones and masks drawn for
        them): a camera whose settings or channels changed starts again, one whose
        drawn regions alone changed takes them at once, the others run on."""
        running = {a.camera.id: a for a in self.cameras}
        kept: list[CameraAnalysis] = []
        for configured in cameras:
            if not (configured.motion or configured.tamper):
                continue
            camera = with_regions(configured, self.drawn.get(configured.id))
            old = running.pop(camera.id, None)
            if old is not None and camera.id not in ended and old.retune(camera):
                kept.append(old)
                continue
            if old is not None:
                old.stop()
            fresh = CameraAnalysis(camera, self.hub, self._changed)
            fresh.start()
            kept.append(fresh)
        for gone in running.values():
            gone.stop()
        self.cameras = kept

    async def draw(self, camera_id: str, regions: MotionRegions | None, by: str) -> None:
        """Keep (or, with None, forget) a camera's drawn zones and masks; its
        analysis follows at once."""
        if regions is None:
            await self.store.forget_regions(camera_id)
            self.drawn.pop(camera_id, None)
        else:
            await self.store.draw_regions(camera_id, regions, by, time.time())
            self.drawn[camera_id] = regions
        self._follow(self.config.cameras, ended=())

    async def close(self) -> None:
        for analysed in self.cameras:
            analysed.stop()
        if self._channel_changed in self.hub.state_listeners:
            self.hub.state_listeners.remove(self._channel_changed)
        now = time.time()
        for camera in self.config.cameras:
            self._work.put_nowait(self.store.state_changed(camera.id, now, "stopped", None))
        self._work.put_nowait(self.store.close_open(now))
        self._work.put_nowait(self._end())
        tasks, self._tasks = self._tasks, []
        for task in tasks[1:]:
            await cancel_and_wait(task)
        if tasks:  # the writer: it ends at the mark, after the last write
            async with asyncio.timeout(5):
                await asyncio.wait([tasks[0]])

    async def _end(self) -> None:
        raise asyncio.CancelledError  # the writer's last item: everything before is written

    async def _writer(self) -> None:
        """Database writes in the order they happened, off the callers' backs."""
        while True:
            work = await self._work.get()
            try:
                await work
            except asyncio.CancelledError:
                return
            except Exception:
                logger.exception("analysis: a write failed")

    async def _mark_crash(self) -> None:
        """A camera whose last record is not "stopped" was cut off by a crash: it
        is taken as stopped from the node's last sign of life."""
        last = await self.store.last_states()
        alive = await self.store.last_alive() or time.time()
        for camera, state in last.items():
            if state != "stopped":
                await self.store.state_changed(camera, alive, "stopped", "node stopped")
        await self.store.close_open(alive)

    async def _alive(self) -> None:
        while True:
            await self.store.alive(time.time())
            await asyncio.sleep(ALIVE_SECONDS)

    # --- camera states -------------------------------------------------------

    def _channel_changed(self, channel: Channel) -> None:
        self._record(channel.camera)

    def _record(self, camera: CameraConfig) -> None:
        state = STATE_NAMES.get(self.hub.camera_state(camera.id), "offline")
        if self._states.get(camera.id) == state:
            return
        self._states[camera.id] = state
        reason = self.hub.camera_error(camera.id) if state == "offline" else None
        self._work.put_nowait(self.store.state_changed(camera.id, time.time(), state, reason))

    # --- motion and tamper -----------------------------------------------------

    def _changed(self, change: Change) -> None:
        self._work.put_nowait(self._write_change(change))

    async def _write_change(self, change: Change) -> None:
        camera = change.camera
        box, zones = list(change.box), list(change.zones)
        period = None
        if change.kind == "motion.start":
            period = await self.store.motion_started(
                camera.id, camera.site, change.start, box, zones, change.peak, change.armed
            )
            self._open_period[camera.id] = period
        elif change.kind == "motion.end":
            period = self._open_period.pop(camera.id, None)
            if period is not None:
                await self.store.motion_ended(period, change.time, box, zones, change.peak)
        elif change.kind == "camera.tamper":
            await self.store.tamper_ended(camera.id, change.time)  # a new reason: a new period
            await self.store.tamper_started(camera.id, change.time, change.reason or "tamper")
        elif change.kind == "camera.ok":
            await self.store.tamper_ended(camera.id, change.time)
        data: dict[str, Any] = {"reason": change.reason} if change.reason else {}
        if change.kind.startswith("motion."):
            data = {"start": change.start, "box": box, "zones": zones, "peak": change.peak}
            if change.kind == "motion.end":
                data["end"] = change.time
        self._tell(
            Finding(
                change.kind,
                camera.site,
                camera.id,
                change.time,
                data,
                change.image,
                period,
                change.armed,
            )
        )

    def _tell(self, finding: Finding) -> None:
        for listener in self.on_finding:
            try:
                listener(finding)
            except Exception:
                logger.exception("analysis: a listener failed on %s", finding.type)

    # --- the morning summary -----------------------------------------------------

    async def _mornings(self) -> None:
        at = self.config.inspection.summary_at
        assert at is not None
        while True:
            now = datetime.datetime.now().astimezone()
            due = now.replace(hour=int(at[:2]), minute=int(at[3:]), second=0, microsecond=0)
            if due <= now:
                due += datetime.timedelta(days=1)
            await asyncio.sleep((due - now).total_seconds())
            for finding in await self.morning_summary(time.time()):
                self._tell(finding)

    async def morning_summary(self, now: float) -> list[Finding]:
        """Per village, the cameras down longer than `down_minutes` yesterday or now."""
        limit = self.config.inspection.down_minutes
        yesterday = datetime.datetime.fromtimestamp(now).date() - datetime.timedelta(days=1)
        start, end = day_bounds(yesterday)
        days = await self.inspection.report(start, end, now, self.config.cameras)
        down: dict[str, list[dict[str, Any]]] = {}
        for village in days[0]["villages"] if days else []:
            for row in village["cameras"]:
                if row["offline_minutes"] >= limit:
                    down.setdefault(village["site"], []).append(
                        {
                            "camera": row["camera"],
                            "name": row["name"],
                            "offline_minutes": row["offline_minutes"],
                        }
                    )
        for camera in self.config.cameras:
            for channel in self.hub.camera_channels(camera.id):
                source = channel.source
                if source.state in (SourceState.OFFLINE, SourceState.STALLED) and (
                    now - source.state_since >= limit * 60
                ):
                    rows = down.setdefault(camera.site, [])
                    known = next((r for r in rows if r["camera"] == camera.id), None)
                    if known is None:
                        known = {"camera": camera.id, "name": camera.name}
                        rows.append(known)
                    known["down_since"] = source.state_since
                    break
        return [
            Finding(
                "inspection.summary",
                site,
                None,
                now,
                {"date": yesterday.isoformat(), "down_minutes": limit, "cameras": rows},
            )
            for site, rows in sorted(down.items())
        ]
