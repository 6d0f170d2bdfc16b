"""The node's recorders, its recordings index and the storage they share."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

from ingest.tasks import cancel_and_wait
from relay.config import CameraConfig, Config
from relay.db import Database
from relay.media.changes import CameraChanges
from relay.media.hub import Hub
from relay.record import index
from relay.record.index import Segment
from relay.record.recorder import Recorder
from relay.record.retention import RetentionReport, run_pass
from relay.refusal import Refused

logger = logging.getLogger(__name__)

DAY = 86400.0


def storage_root(config: Config) -> Path:
    path = config.storage.path or str(Path(config.node.data_dir) / "recordings")
    return Path(path).resolve()


class Recordings:
    def __init__(self, config: Config, hub: Hub, db: Database) -> None:
        self.config = config
        self.hub = hub
        self.db = db
        self.root = storage_root(config)
        self.recorders: dict[str, Recorder] = {}
        self.report = RetentionReport()  # what the last retention pass found
        self.on_storage_low: list[Callable[[RetentionReport], None]] = []
        self._retention: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        counts = await self.db.run(lambda conn: index.reconcile(conn, self.root))
        if any(counts.values()):
            logger.info("recordings scanned: %s", counts)
        for cam in self.config.cameras:
            self._start_recorder(cam)
        await self.retain()
        self._retention = asyncio.create_task(self._retain_often(), name="retention")

    def _start_recorder(self, cam: CameraConfig) -> None:
        if cam.record_mode == "off":
            return
        channel = self.hub.channel(cam.id, cam.record.stream)
        if channel is None:
            return
        recorder = Recorder(cam, channel, self.root, self.db, self.config.storage.segment_seconds)
        self.recorders[cam.id] = recorder
        recorder.start()

    async def apply(self, config: Config, changes: CameraChanges) -> None:
        """A reloaded config: a camera removed, restarted (new channels) or recorded
        otherwise stops its recorder (its file ends at a fragment), one now to be
        recorded starts one; the others record on undisturbed. The storage
        settings (path, quota) apply to the next retention pass."""
        old, self.config = self.config, config
        for cam_id in list(self.recorders):
            cam, was = config.camera(cam_id), old.camera(cam_id)
            if (
                cam is None
                or was is None
                or cam_id in changes.ended
                or (cam.record, cam.record_mode) != (was.record, was.record_mode)
            ):
                await self.recorders.pop(cam_id).close()
        for cam in config.cameras:
            if cam.id not in self.recorders:
                self._start_recorder(cam)

    async def retain(self) -> RetentionReport:
        """One retention pass now; tells `on_storage_low` when space turns low."""
        was_low = self.report.low
        now = time.time()
        self.report = await self.db.run(lambda conn: run_pass(conn, self.root, self.config, now))
        if self.report.deleted:
            logger.info(
                "retention: %d files (%.1f MB) deleted",
                self.report.deleted,
                self.report.freed / 1e6,
            )
        if self.report.low and not was_low:
            logger.warning("storage low: %s", self.report.as_json())
            for tell in self.on_storage_low:
                tell(self.report)
        return self.report

    async def _retain_often(self) -> None:
        while True:
            await asyncio.sleep(self.config.storage.check_seconds)
            try:
                await self.retain()
            except OSError as exc:  # the disk went away: said, and tried again
                logger.warning("retention: %s", exc)

    async def close(self) -> None:
        await cancel_and_wait(self._retention)
        async with asyncio.TaskGroup() as group:
            for recorder in self.recorders.values():
                group.create_task(recorder.close())
        self.recorders.clear()

    def status(self, camera_id: str) -> dict[str, object]:
        cam = self.config.camera(camera_id)
        mode = cam.record_mode if cam else "off"
        recorder = self.recorders.get(camera_id)
        out: dict[str, object] = {"mode": mode, "state": "off", "reason": None}
        if recorder is not None:
            out.update(recorder.status())
        if cam is not None:
            out["retention_days"] = cam.record.retention_days
        kept = self.report.days_kept.get(camera_id)
        out["days_kept"] = None if kept is None else round(kept, 6)
        return out

    def health(self) -> dict[str, object]:
        """For monitoring, without naming a camera: storage, errors, days kept."""
        kept = [self.report.days_kept.get(cam_id, 0.0) for cam_id in self.recorders]
        return {
            **self.report.as_json(),
            "recorders": len(self.recorders),
            "in_error": sum(r.state == "error" for r in self.recorders.values()),
            "days_kept_min": round(min(kept), 6) if kept else None,
        }

    async def segments(self, camera_id: str, since: float, until: float) -> list[Segment]:
        return await self.db.run(lambda conn: index.query(conn, camera_id, since, until))

    async def segment(self, camera_id: str, segment_id: int) -> Segment:
        found = await self.db.run(lambda conn: index.get(conn, segment_id))
        if found is None or found.camera != camera_id:
            raise Refused(404, "no such recording")
        return found

    def file_of(self, segment: Segment) -> Path:
        """The segment's file, refused if it would lie outside storage.path."""
        path = (self.root / segment.path).resolve()
        if not path.is_relative_to(self.root) or not path.is_file():
            raise Refused(404, "this recording is gone")
        return path

    def live_end(self, camera_id: str) -> float | None:
        recorder = self.recorders.get(camera_id)
        if recorder is None or recorder.open_segment is None:
            return None
        return recorder.open_segment[1]


def parse_span(
    since: str | None, until: str | None, default_hours: float = 24.0, longest_days: float = 31
) -> tuple[float, float]:
    """since/until from a query (epoch seconds); refused if unreadable or reversed."""
    now = time.time()
    try:
        end = float(until) if until else now
        start = float(since) if since else end - default_hours * 3600
    except ValueError:
        raise Refused(400, "since and until must be epoch seconds") from None
    if start >= end:
        raise Refused(400, "the start is not before the end")
    if end - start > longest_days * DAY:
        raise Refused(400, f"ask for at most {longest_days:g} days at once")
    return start, end
