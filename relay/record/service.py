"""The node's recorders, its recordings index and the storage they share."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from relay.config import Config
from relay.db import Database
from relay.media.hub import Hub
from relay.record import index
from relay.record.index import Segment
from relay.record.recorder import Recorder
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
        self.days_kept: dict[str, float] = {}  # per camera, as the last retention pass found

    async def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        counts = await self.db.run(lambda conn: index.reconcile(conn, self.root))
        if any(counts.values()):
            logger.info("recordings scanned: %s", counts)
        for cam in self.config.cameras:
            if cam.record_mode == "off":
                continue
            channel = self.hub.channel(cam.id, cam.record.stream)
            if channel is None:
                continue
            recorder = Recorder(
                cam, channel, self.root, self.db, self.config.storage.segment_seconds
            )
            self.recorders[cam.id] = recorder
            recorder.start()

    async def close(self) -> None:
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
        kept = self.days_kept.get(camera_id)
        out["days_kept"] = None if kept is None else round(kept, 3)
        return out

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
    since: str | None, until: str | None, default_hours: float = 24.0
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
    if end - start > 31 * DAY:
        raise Refused(400, "ask for at most 31 days at once")
    return start, end
