"""Retention: footage older than its camera's retention_days goes, and when the
disk runs low (or the quota is used up) the oldest footage of the whole node goes
first. A segment that overlaps evidence (an export, an alarm clip) is never
deleted; neither is a file being written.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from relay.config import Config, StorageConfig

logger = logging.getLogger(__name__)

DAY = 86400.0
GB = 1e9
EVENTS_KEEP = 5.0  # events mode: a closed file waits this long past `pre` for an alarm
UNLOCKED = (
    " open = 0 AND NOT EXISTS (SELECT 1 FROM evidence_locks l"
    " WHERE l.camera = segments.camera AND l.start < segments.end AND l.end > segments.start)"
)


@dataclass
class RetentionReport:
    deleted: int = 0
    freed: int = 0
    low: bool = False  # free space or quota under its bound even after this pass
    free_bytes: int = 0
    free_percent: float = 0.0
    used_bytes: int = 0
    days_kept: dict[str, float] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        return {
            "low": self.low,
            "free_gb": round(self.free_bytes / GB, 3),
            "free_percent": round(self.free_percent, 1),
            "used_gb": round(self.used_bytes / GB, 3),
        }


def run_pass(conn: sqlite3.Connection, root: Path, config: Config, now: float) -> RetentionReport:
    """One retention pass, in the database's thread (it deletes rows and files)."""
    report = RetentionReport()
    for cam in config.cameras:
        cutoff = now - cam.record.retention_days * DAY
        if cam.record_mode == "events":  # only what an alarm locked stays
            cutoff = max(cutoff, now - cam.record.pre - EVENTS_KEEP)
        rows = conn.execute(
            f"SELECT id, path, bytes FROM segments WHERE camera = ? AND end < ? AND {UNLOCKED}",  # noqa: S608
            (cam.id, cutoff),
        ).fetchall()
        _delete(conn, root, rows, report)
    _free_space(conn, root, config.storage, report)
    for camera, oldest in conn.execute("SELECT camera, MIN(start) FROM segments GROUP BY camera"):
        report.days_kept[camera] = (now - oldest) / DAY
    return report


def _need(root: Path, storage: StorageConfig, used: int) -> tuple[int, int, float]:
    """(bytes to free, free bytes, free percent) by the storage bounds."""
    usage = shutil.disk_usage(root)
    percent = 100.0 * usage.free / usage.total if usage.total else 0.0
    need = max(
        storage.min_free_gb * GB - usage.free,
        storage.min_free_percent / 100 * usage.total - usage.free,
        used - storage.max_gb * GB if storage.max_gb is not None else 0,
    )
    return max(0, int(need)), usage.free, percent


def _used(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COALESCE(SUM(bytes), 0) FROM segments").fetchone()[0])


def _free_space(
    conn: sqlite3.Connection, root: Path, storage: StorageConfig, report: RetentionReport
) -> None:
    need, _, _ = _need(root, storage, _used(conn))
    while need > 0:
        rows = conn.execute(
            f"SELECT id, path, bytes FROM segments WHERE {UNLOCKED} ORDER BY start LIMIT 50"  # noqa: S608
        ).fetchall()
        if not rows:
            break  # nothing deletable is left: evidence and open files only
        taken = []
        for row in rows:
            taken.append(row)
            need -= row["bytes"]
            if need <= 0:
                break
        _delete(conn, root, taken, report)
    report.used_bytes = _used(conn)
    need, report.free_bytes, report.free_percent = _need(root, storage, report.used_bytes)
    report.low = need > 0


def _delete(
    conn: sqlite3.Connection, root: Path, rows: list[sqlite3.Row], report: RetentionReport
) -> None:
    if not rows:
        return
    for row in rows:
        try:
            (root / row["path"]).unlink(missing_ok=True)
        except OSError as exc:  # a read-only disk: the row stays, tried again next pass
            logger.warning("recording %s: cannot delete: %s", row["path"], exc.strerror)
            continue
        conn.execute("DELETE FROM segments WHERE id = ?", (row["id"],))
        report.deleted += 1
        report.freed += row["bytes"]
