"""The recordings index in SQLite: one row per segment file, and evidence locks.

Paths in rows are relative to storage.path and never leave the node; the API
names segments by id. At start `reconcile` makes rows and files agree: a file
left open by a crash is cut at its last complete fragment, a file with no row
gets one, a row with no file goes.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from relay.record import fmp4

logger = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS segments (
    id INTEGER PRIMARY KEY,
    camera TEXT NOT NULL,
    stream TEXT NOT NULL,
    start REAL NOT NULL,
    end REAL NOT NULL,
    path TEXT NOT NULL UNIQUE,
    bytes INTEGER NOT NULL DEFAULT 0,
    codec TEXT NOT NULL,
    open INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS segments_camera_start ON segments(camera, start);
CREATE INDEX IF NOT EXISTS segments_start ON segments(start);
CREATE TABLE IF NOT EXISTS evidence_locks (
    id INTEGER PRIMARY KEY,
    camera TEXT NOT NULL,
    start REAL NOT NULL,
    end REAL NOT NULL,
    kind TEXT NOT NULL,
    ref TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS evidence_camera ON evidence_locks(camera, start);
"""


@dataclass(frozen=True)
class Segment:
    id: int
    camera: str
    stream: str
    start: float
    end: float
    path: str
    bytes: int
    codec: str
    open: bool

    @classmethod
    def of(cls, row: sqlite3.Row) -> Segment:
        return cls(
            row["id"],
            row["camera"],
            row["stream"],
            row["start"],
            row["end"],
            row["path"],
            row["bytes"],
            row["codec"],
            bool(row["open"]),
        )

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "stream": self.stream,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "bytes": self.bytes,
            "codec": self.codec,
        }


def add(
    conn: sqlite3.Connection, camera: str, *, stream: str, start: float, path: str, codec: str
) -> int:
    cur = conn.execute(
        "INSERT INTO segments (camera, stream, start, end, path, codec, open)"
        " VALUES (?, ?, ?, ?, ?, ?, 1)",
        (camera, stream, start, start, path, codec),
    )
    return cur.lastrowid or 0


def progress(conn: sqlite3.Connection, path: str, end: float, size: int, closed: bool) -> None:
    conn.execute(
        "UPDATE segments SET end = ?, bytes = ?, open = ? WHERE path = ?",
        (end, size, 0 if closed else 1, path),
    )


def query(conn: sqlite3.Connection, camera: str, since: float, until: float) -> list[Segment]:
    rows = conn.execute(
        "SELECT * FROM segments WHERE camera = ? AND start < ? AND end > ? ORDER BY start",
        (camera, until, since),
    ).fetchall()
    return [Segment.of(r) for r in rows]


def get(conn: sqlite3.Connection, segment_id: int) -> Segment | None:
    row = conn.execute("SELECT * FROM segments WHERE id = ?", (segment_id,)).fetchone()
    return Segment.of(row) if row else None


def spans(
    segments: list[Segment], since: float, until: float, slack: float = 0.5
) -> dict[str, list[dict[str, float]]]:
    """Recorded spans (segments that touch merged) and the gaps between them."""
    merged: list[list[float]] = []
    for seg in segments:
        if merged and seg.start - merged[-1][1] <= slack:
            merged[-1][1] = max(merged[-1][1], seg.end)
        else:
            merged.append([seg.start, seg.end])
    gaps, cursor = [], since
    for start, end in merged:
        if start > cursor:
            gaps.append({"start": round(cursor, 3), "end": round(start, 3)})
        cursor = max(cursor, end)
    if cursor < until:
        gaps.append({"start": round(cursor, 3), "end": round(until, 3)})
    return {
        "spans": [
            {"start": round(max(s, since), 3), "end": round(min(e, until), 3)} for s, e in merged
        ],
        "gaps": gaps,
    }


def reconcile(conn: sqlite3.Connection, root: Path) -> dict[str, int]:
    """Make rows and files agree (see the module's doc); counts what it did."""
    counts = {"cut": 0, "added": 0, "dropped": 0}
    known: dict[str, sqlite3.Row] = {
        row["path"]: row for row in conn.execute("SELECT id, path, start, open FROM segments")
    }
    on_disk = (
        {str(p.relative_to(root)) for p in root.glob("*/*/*/*.mp4")} if root.exists() else set()
    )
    with conn:
        for rel, row in known.items():
            if rel not in on_disk:
                conn.execute("DELETE FROM segments WHERE id = ?", (row["id"],))
                counts["dropped"] += 1
            elif row["open"]:
                counts["cut"] += _close_file(conn, root / rel, rel, row["start"])
        for rel in sorted(on_disk - known.keys()):
            counts["added"] += _adopt(conn, root, rel)
    return counts


def _close_file(conn: sqlite3.Connection, path: Path, rel: str, start: float) -> int:
    """A file the recorder did not finish: cut at its last complete fragment."""
    layout = fmp4.scan(path)
    if not layout.fragments:
        path.unlink(missing_ok=True)
        conn.execute("DELETE FROM segments WHERE path = ?", (rel,))
        return 1
    if path.stat().st_size > layout.complete_end:
        os.truncate(path, layout.complete_end)
    progress(conn, rel, start + layout.duration, layout.complete_end, closed=True)
    logger.info("recording %s: cut at its last complete fragment (%.1f s)", rel, layout.duration)
    return 1


def _adopt(conn: sqlite3.Connection, root: Path, rel: str) -> int:
    camera, stream, _day, name = Path(rel).parts
    try:
        start = int(Path(name).stem) / 1000
    except ValueError:
        return 0  # not one of ours
    add(conn, camera, stream=stream, start=start, path=rel, codec="")
    layout = fmp4.scan(root / rel)
    codec = "h265" if layout.codec.startswith(("hev1", "hvc1")) else "h264"
    conn.execute("UPDATE segments SET codec = ? WHERE path = ?", (codec, rel))
    _close_file(conn, root / rel, rel, start)
    return 1


def lock(
    conn: sqlite3.Connection, camera: str, *, start: float, end: float, kind: str, ref: str
) -> int:
    cur = conn.execute(
        "INSERT INTO evidence_locks (camera, start, end, kind, ref, created)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (camera, start, end, kind, ref, time.time()),
    )
    return cur.lastrowid or 0


def unlock(conn: sqlite3.Connection, kind: str, ref: str) -> None:
    conn.execute("DELETE FROM evidence_locks WHERE kind = ? AND ref = ?", (kind, ref))
