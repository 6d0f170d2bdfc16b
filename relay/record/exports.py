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


MARGIN = 2.0  # s read past the end for the audio stored beside the last frames


class Remux:
    """The packets of [start, end) of consecutive segments into one MP4.

    Each packet's wall time is its segment's start plus its media time; the
    export's media time 0 is the decode time of its first keyframe, so B-frames
    keep their composition offsets and audio keeps its place beside the video."""

    def __init__(self, output: Any, start: float, end: float) -> None:
        self.output, self.start, self.end = output, start, end
        self.streams: dict[str, Any] = {}  # kind: output stream, from the first segment
        self.origin: float | None = None  # wall time of the export's media time 0
        self.first: float | None = None  # wall time of its first frame, as shown
        self.last = 0.0  # wall time of the end of its last frame
        self.last_dts: dict[str, int] = {}
        self.done = False  # a frame at or past the end came: no more video

    def segment(self, path: Path, wall: float, begin: float) -> bool:
        """Copies what the segment holds from `begin` on; False once past the end."""
        with av.open(str(path)) as source:
            inputs = [source.streams.video[0], *source.streams.audio[:1]]
            if not self.streams:
                for src in inputs:
                    self.streams[src.type] = self.output.add_stream_from_template(src)
                    self.streams[src.type].time_base = src.time_base
            for packet in source.demux([s for s in inputs if s.type in self.streams]):
                if packet.pts is None or packet.dts is None:
                    continue
                tb = packet.time_base
                t, d = wall + float(packet.pts * tb), wall + float(packet.dts * tb)
                if t >= self.end + MARGIN:
                    break  # the file puts a track's packets up to a second apart
                if packet.stream.type == "audio":
                    self._audio(packet, t)
                elif t >= self.end:
                    self.done = True
                elif not self.done and t >= begin - 1e-3:
                    self._video(packet, t, d)
        return not self.done

    def _video(self, packet: Any, t: float, d: float) -> None:
        if self.first is None:
            if not packet.is_keyframe:
                return
            self.first, self.origin = t, d
        self.last = max(self.last, t + float((packet.duration or 0) * packet.time_base))
        self._mux(packet, "video", t, d)

    def _audio(self, packet: Any, t: float) -> None:
        """Audio from the first frame shown to the asked end."""
        if self.first is not None and self.first <= t < self.end:
            self._mux(packet, "audio", t, t)

    def _mux(self, packet: Any, kind: str, t: float, d: float) -> None:
        stream = self.streams[kind]
        tb = stream.time_base
        pts, dts = round((t - (self.origin or 0)) / tb), round((d - (self.origin or 0)) / tb)
        dts = max(dts, self.last_dts.get(kind, -1) + 1)  # rounding never sends time back
        if pts < dts:
            return
        self.last_dts[kind] = dts
        packet.pts, packet.dts, packet.time_base, packet.stream = pts, dts, tb, stream
        self.output.mux(packet)


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
    work = Remux(output, start, end)
    try:
        for segment, path in segments:
            frags = fmp4.scan(path).from_time(max(0.0, start - segment.start))
            if frags and not work.segment(path, segment.start, segment.start + frags[0].start):
                break
            progress(min(1.0, (segment.end - start) / (end - start)))
    finally:
        output.close()
    if work.first is None:
        raise Refused(404, "nothing is recorded in that span")
    return work.first, work.last


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
