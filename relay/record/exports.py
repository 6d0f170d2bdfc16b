"""Evidence exports: one MP4 of a camera's span, remuxed from its segments.

An export starts at the keyframe at or before the asked start (a player needs
one) and ends before the asked end; what it really covers is stored beside what
was asked. The file is plain MP4 with the moov first (`faststart`), built in a
thread; its SHA-256 and a JSON manifest (node, camera, site, UTC span, hash,
exporter, note) are kept with it. Its span is locked from retention until an
admin deletes the export.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from relay.config import Config
from relay.db import Database
from relay.record import fmp4, index
from relay.record.index import Segment
from relay.refusal import Refused

logger = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS exports (
    id INTEGER PRIMARY KEY,
    created REAL NOT NULL,
    user TEXT NOT NULL,
    camera TEXT NOT NULL,
    site TEXT NOT NULL,
    asked_start REAL NOT NULL,
    asked_end REAL NOT NULL,
    start REAL,
    end REAL,
    note TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL,
    bytes INTEGER,
    sha256 TEXT,
    error TEXT
);
"""


@dataclass(frozen=True)
class ExportRequest:
    user: str
    camera: str
    site: str
    start: float
    end: float
    note: str


def utc(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def remux(
    segments: list[tuple[Segment, Path]],
    out: Path,
    start: float,
    end: float,
    progress: Callable[[float], None],
) -> tuple[float, float]:
    """Write [start, end) of the segments into one MP4; the wall span it covers
    (from its first frame to the end of its last)."""
    output: Any = av.open(str(out), "w", format="mp4", options={"movflags": "+faststart"})
    stream: Any = None
    first = last = None
    time_base = Fraction(1, 90000)
    try:
        for segment, path in segments:
            layout = fmp4.scan(path)
            frags = layout.from_time(max(0.0, start - segment.start))
            if not frags:
                continue
            begin = segment.start + frags[0].start  # a keyframe
            with av.open(str(path)) as source:
                src = source.streams.video[0]
                src_tb = src.time_base or time_base
                if stream is None:
                    stream = output.add_stream_from_template(src)
                    stream.time_base = time_base
                for packet in source.demux(src):
                    if packet.pts is None:
                        continue
                    t = segment.start + float(packet.pts * src_tb)
                    if t < begin - 1e-3 or (first is None and not packet.is_keyframe):
                        continue
                    if t >= end:
                        break
                    first = t if first is None else first
                    last = t + float((packet.duration or 0) * src_tb)
                    packet.pts = packet.dts = round((t - first) / time_base)
                    packet.time_base = time_base
                    packet.stream = stream
                    output.mux(packet)
                    progress(min(1.0, (t - start) / (end - start)))
    finally:
        output.close()
    if first is None or last is None:
        raise Refused(404, "nothing is recorded in that span")
    return first, last


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class Exports:
    def __init__(self, config: Config, db: Database, root: Path) -> None:
        self.config = config
        self.db = db
        self.dir = root / "exports"
        self.progress: dict[int, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def paths(self, export_id: int) -> tuple[Path, Path]:
        return self.dir / f"{export_id}.mp4", self.dir / f"{export_id}.json"

    async def create(self, ask: ExportRequest, segments: list[tuple[Segment, Path]]) -> int:
        """Checks the request, locks the span, and starts building; returns the id."""
        longest = self.config.storage.export_max_minutes * 60
        if ask.end - ask.start > longest:
            raise Refused(400, f"an export is at most {longest / 60:g} minutes long")
        if not segments:
            raise Refused(404, "nothing is recorded in that span")

        def add(conn: sqlite3.Connection) -> int:
            with conn:
                cur = conn.execute(
                    "INSERT INTO exports (created, user, camera, site, asked_start, asked_end,"
                    " note, state) VALUES (?, ?, ?, ?, ?, ?, ?, 'building')",
                    (time.time(), ask.user, ask.camera, ask.site, ask.start, ask.end, ask.note),
                )
                export_id = cur.lastrowid or 0
                index.lock(
                    conn, ask.camera, start=ask.start - 60, end=ask.end,
                    kind="export", ref=str(export_id),
                )  # fmt: skip
                return export_id

        export_id = await self.db.run(add)
        self.progress[export_id] = 0.0
        task = asyncio.create_task(
            self._build(export_id, ask, segments), name=f"export {export_id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return export_id

    async def _build(
        self, export_id: int, ask: ExportRequest, segments: list[tuple[Segment, Path]]
    ) -> None:
        out, manifest = self.paths(export_id)
        loop = asyncio.get_running_loop()

        def progress(done: float) -> None:
            loop.call_soon_threadsafe(self.progress.__setitem__, export_id, round(done, 3))

        def build() -> tuple[float, float, int, str]:
            self.dir.mkdir(parents=True, exist_ok=True)
            first, end = remux(segments, out, ask.start, ask.end, progress)
            digest = sha256_of(out)
            size = out.stat().st_size
            facts = {"start": first, "end": end, "sha256": digest, "bytes": size}
            text = json.dumps(self._manifest(export_id, ask, facts), ensure_ascii=False, indent=2)
            manifest.write_text(text, encoding="utf-8")
            return first, end, size, digest

        try:
            first, end, size, digest = await asyncio.to_thread(build)
        except (OSError, av.error.FFmpegError, Refused) as exc:
            reason = getattr(exc, "reason", None) or str(exc)
            logger.warning("camera %s: export %d failed: %s", ask.camera, export_id, reason)
            await self.db.execute(
                "UPDATE exports SET state = 'failed', error = ? WHERE id = ?", (reason, export_id)
            )
            return
        finally:
            self.progress.pop(export_id, None)
        await self.db.execute(
            "UPDATE exports SET state = 'ready', start = ?, end = ?, bytes = ?, sha256 = ?"
            " WHERE id = ?",
            (first, end, size, digest, export_id),
        )
        await self.db.run(lambda conn: _narrow_lock(conn, export_id, first, end))
        logger.info("camera %s: export %d ready (%d bytes)", ask.camera, export_id, size)

    def _manifest(
        self, export_id: int, ask: ExportRequest, facts: dict[str, Any]
    ) -> dict[str, object]:
        return {
            "export": export_id,
            "node": self.config.node.id,
            "camera": ask.camera,
            "site": ask.site,
            "start_utc": utc(facts["start"]),
            "end_utc": utc(facts["end"]),
            "asked_start_utc": utc(ask.start),
            "asked_end_utc": utc(ask.end),
            "sha256": facts["sha256"],
            "bytes": facts["bytes"],
            "exporter": ask.user,
            "exported_utc": utc(time.time()),
            "note": ask.note,
        }

    async def get(self, export_id: int) -> dict[str, Any] | None:
        rows = await self.db.fetch("SELECT * FROM exports WHERE id = ?", (export_id,))
        return self._json(dict(rows[0])) if rows else None

    async def list(self, sites: frozenset[str]) -> list[dict[str, Any]]:
        rows = await self.db.fetch("SELECT * FROM exports ORDER BY id DESC LIMIT 500")
        return [self._json(dict(r)) for r in rows if r["site"] in sites]

    def _json(self, row: dict[str, Any]) -> dict[str, Any]:
        row["progress"] = 1.0 if row["state"] == "ready" else self.progress.get(row["id"], 0.0)
        row["file"] = f"/api/exports/{row['id']}/file" if row["state"] == "ready" else None
        return row

    async def delete(self, export_id: int) -> None:
        def work(conn: sqlite3.Connection) -> None:
            with conn:
                index.unlock(conn, "export", str(export_id))
                conn.execute("DELETE FROM exports WHERE id = ?", (export_id,))

        await self.db.run(work)
        for path in self.paths(export_id):
            await asyncio.to_thread(path.unlink, missing_ok=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            await asyncio.wait([task])


def _narrow_lock(conn: sqlite3.Connection, export_id: int, start: float, end: float) -> None:
    conn.execute(
        "UPDATE evidence_locks SET start = ?, end = ? WHERE kind = 'export' AND ref = ?",
        (start, end, str(export_id)),
    )
