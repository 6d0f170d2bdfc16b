"""What analysis keeps in SQLite: motion periods, camera state changes (with their
times, not samples) and tamper periods; the daily inspection is computed from them."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from relay.config import MotionRegions
from relay.db import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS motion_periods (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    camera TEXT NOT NULL,
    site TEXT NOT NULL,
    start REAL NOT NULL,
    end REAL,
    zones TEXT NOT NULL,
    box TEXT NOT NULL,
    peak REAL NOT NULL,
    armed INTEGER NOT NULL,
    event TEXT
);
CREATE INDEX IF NOT EXISTS motion_camera_start ON motion_periods(camera, start);
CREATE TABLE IF NOT EXISTS camera_states (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    camera TEXT NOT NULL,
    time REAL NOT NULL,
    state TEXT NOT NULL,
    reason TEXT
);
CREATE INDEX IF NOT EXISTS camera_states_camera_time ON camera_states(camera, time);
CREATE TABLE IF NOT EXISTS tamper_periods (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    camera TEXT NOT NULL,
    start REAL NOT NULL,
    end REAL,
    reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tamper_camera_start ON tamper_periods(camera, start);
CREATE TABLE IF NOT EXISTS node_alive (id INTEGER PRIMARY KEY CHECK (id = 1), time REAL);
CREATE TABLE IF NOT EXISTS motion_regions (
    camera TEXT PRIMARY KEY,
    regions TEXT NOT NULL,
    by TEXT NOT NULL,
    time REAL NOT NULL
);
"""

# A camera's recorded states. "stopped": the node itself was not running.
STATES = ("online", "offline", "starting", "idle", "stopped")


@dataclass(frozen=True)
class MotionPeriod:
    id: int
    camera: str
    site: str
    start: float
    end: float | None  # None: still moving
    zones: list[str]
    box: list[float]
    peak: float
    armed: bool
    event: str | None  # the alarm it raised, if armed

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "camera": self.camera,
            "start": self.start,
            "end": self.end,
            "zones": self.zones,
            "box": self.box,
            "peak": self.peak,
            "armed": self.armed,
            "alarm": self.event,
        }


def _period(row: sqlite3.Row) -> MotionPeriod:
    return MotionPeriod(
        row["id"],
        row["camera"],
        row["site"],
        row["start"],
        row["end"],
        json.loads(row["zones"]),
        json.loads(row["box"]),
        row["peak"],
        bool(row["armed"]),
        row["event"],
    )


class AnalysisStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def motion_started(  # noqa: PLR0917
        self,
        camera: str,
        site: str,
        start: float,
        box: list[float],
        zones: list[str],
        peak: float,
        armed: bool,
    ) -> int:
        return await self.db.insert(
            "INSERT INTO motion_periods (camera, site, start, zones, box, peak, armed)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (camera, site, start, json.dumps(zones), json.dumps(box), peak, int(armed)),
        )

    async def motion_ended(
        self, period_id: int, end: float, box: list[float], zones: list[str], peak: float
    ) -> None:
        await self.db.execute(
            "UPDATE motion_periods SET end = ?, box = ?, zones = ?, peak = ? WHERE id = ?",
            (end, json.dumps(box), json.dumps(zones), peak, period_id),
        )

    async def motion_alarm(self, period_id: int, event_id: str) -> None:
        await self.db.execute(
            "UPDATE motion_periods SET event = ? WHERE id = ?", (event_id, period_id)
        )

    async def motion_periods(
        self, camera: str, since: float, until: float, zone: str | None = None, limit: int = 1000
    ) -> list[MotionPeriod]:
        """Periods that overlap [since, until), oldest first."""
        rows = await self.db.fetch(
            "SELECT * FROM motion_periods WHERE camera = ? AND start < ?"
            " AND (end IS NULL OR end >= ?) ORDER BY start LIMIT ?",
            (camera, until, since, limit),
        )
        periods = [_period(r) for r in rows]
        return [p for p in periods if zone is None or zone in p.zones]

    async def state_changed(self, camera: str, time: float, state: str, reason: str | None) -> None:
        await self.db.execute(
            "INSERT INTO camera_states (camera, time, state, reason) VALUES (?, ?, ?, ?)",
            (camera, time, state, reason),
        )

    async def last_states(self) -> dict[str, str]:
        rows = await self.db.fetch(
            "SELECT camera, state FROM camera_states WHERE id IN"
            " (SELECT MAX(id) FROM camera_states GROUP BY camera)"
        )
        return {r["camera"]: r["state"] for r in rows}

    async def states(
        self, cameras: list[str], since: float, until: float
    ) -> dict[str, list[tuple[float, str, str | None]]]:
        """Each camera's changes in [since, until), led by the one in force at `since`."""
        found: dict[str, list[tuple[float, str, str | None]]] = {c: [] for c in cameras}

        def read(conn: sqlite3.Connection) -> None:
            for camera in cameras:
                before = conn.execute(
                    "SELECT time, state, reason FROM camera_states WHERE camera = ? AND time <= ?"
                    " ORDER BY time DESC, id DESC LIMIT 1",
                    (camera, since),
                ).fetchall()
                during = conn.execute(
                    "SELECT time, state, reason FROM camera_states WHERE camera = ? AND time > ?"
                    " AND time < ? ORDER BY time, id",
                    (camera, since, until),
                ).fetchall()
                found[camera] = [(r[0], r[1], r[2]) for r in [*before, *during]]

        await self.db.run(read)
        return found

    async def tamper_started(self, camera: str, start: float, reason: str) -> int:
        return await self.db.insert(
            "INSERT INTO tamper_periods (camera, start, reason) VALUES (?, ?, ?)",
            (camera, start, reason),
        )

    async def tamper_ended(self, camera: str, end: float) -> None:
        await self.db.execute(
            "UPDATE tamper_periods SET end = ? WHERE camera = ? AND end IS NULL", (end, camera)
        )

    async def tamper_periods(
        self, cameras: list[str], since: float, until: float
    ) -> dict[str, list[tuple[float, float | None, str]]]:
        found: dict[str, list[tuple[float, float | None, str]]] = {c: [] for c in cameras}
        rows = await self.db.fetch(
            "SELECT camera, start, end, reason FROM tamper_periods WHERE start < ?"
            " AND (end IS NULL OR end > ?) ORDER BY start",
            (until, since),
        )
        for row in rows:
            if row["camera"] in found:
                found[row["camera"]].append((row["start"], row["end"], row["reason"]))
        return found

    async def close_open(self, time: float) -> None:
        """End the motion and tamper periods still open: the node stops, or it
        stopped without saying so (then `time` is its last sign of life)."""

        def close(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE motion_periods SET end = MAX(start, ?) WHERE end IS NULL", (time,))
            conn.execute("UPDATE tamper_periods SET end = MAX(start, ?) WHERE end IS NULL", (time,))

        await self.db.run(close)

    async def alive(self, time: float) -> None:
        await self.db.execute("INSERT OR REPLACE INTO node_alive (id, time) VALUES (1, ?)", (time,))

    async def last_alive(self) -> float | None:
        rows = await self.db.fetch("SELECT time FROM node_alive WHERE id = 1")
        return float(rows[0]["time"]) if rows else None

    async def drawn_regions(self) -> dict[str, MotionRegions]:
        """Zones and masks drawn in the browser, per camera: they override the file's."""
        rows = await self.db.fetch("SELECT camera, regions FROM motion_regions")
        return {r["camera"]: MotionRegions.model_validate_json(r["regions"]) for r in rows}

    async def draw_regions(self, camera: str, regions: MotionRegions, by: str, time: float) -> None:
        await self.db.execute(
            "INSERT OR REPLACE INTO motion_regions (camera, regions, by, time) VALUES (?, ?, ?, ?)",
            (camera, regions.model_dump_json(), by, time),
        )

    async def forget_regions(self, camera: str) -> None:
        await self.db.execute("DELETE FROM motion_regions WHERE camera = ?", (camera,))
