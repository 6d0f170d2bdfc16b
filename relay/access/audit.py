"""The append-only audit log: who logged in, watched what, raised or acknowledged what."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from relay.db import Database, GroupCommit, where

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    time REAL NOT NULL,
    action TEXT NOT NULL,
    user TEXT,
    address TEXT,
    camera TEXT,
    site TEXT,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS audit_time ON audit(time);
CREATE TRIGGER IF NOT EXISTS audit_append_only BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""

QUERY_LIMIT = 1000


@dataclass(frozen=True)
class AuditEntry:
    """One entry, to be written on its own or in the transaction of what it records."""

    action: str
    user: str | None = None
    address: str | None = None
    camera: str | None = None
    site: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    time: float = field(default_factory=time.time)

    def write(self, conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT INTO audit (time, action, user, address, camera, site, detail)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                self.time,
                self.action,
                self.user,
                self.address,
                self.camera,
                self.site,
                json.dumps(self.detail, ensure_ascii=False) if self.detail else None,
            ),
        )


Waiting = tuple[AuditEntry, "asyncio.Future[None]"]


def _write_one(conn: sqlite3.Connection, waiting: Waiting) -> None:
    waiting[0].write(conn)


class AuditLog:
    """Entries are written before `record` returns, recorded together in one
    transaction (GroupCommit): fifty viewers joining at once cost two trips to
    SQLite's thread, not fifty."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._commits: GroupCommit[Waiting, None] = GroupCommit(db, _write_one, self._written)

    async def record(
        self,
        action: str,
        *,
        user: str | None = None,
        address: str | None = None,
        camera: str | None = None,
        site: str | None = None,
        **detail: Any,
    ) -> None:
        written = asyncio.get_running_loop().create_future()
        self._commits.add((AuditEntry(action, user, address, camera, site, detail), written))
        await written

    @staticmethod
    def _written(batch: list[tuple[Waiting, Future[None]]]) -> None:
        for (_, written), outcome in batch:
            if written.done():  # its caller was cancelled; the entry is written all the same
                continue
            error = outcome.exception()
            if error is None:
                written.set_result(None)
            else:
                written.set_exception(error)

    async def query(self, limit: int = QUERY_LIMIT, **filters: Any) -> list[dict[str, Any]]:
        """Newest first; filters: user, camera, action, since, until."""
        clause, params = where(filters, ("user", "camera", "action"))
        sql = f"SELECT * FROM audit{clause} ORDER BY id DESC LIMIT ?"  # noqa: S608
        rows = await self.db.fetch(sql, (*params, min(limit, QUERY_LIMIT)))
        return [
            {**dict(row), "detail": json.loads(row["detail"]) if row["detail"] else {}}
            for row in rows
        ]

    async def prune(self, retention_days: int) -> int:
        """Drop entries past retention: the only way an entry ever leaves."""
        cutoff = time.time() - retention_days * 86400
        return await self.db.execute("DELETE FROM audit WHERE time < ?", (cutoff,))
