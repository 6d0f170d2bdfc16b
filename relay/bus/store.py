"""Events in SQLite: stored before anyone is told, kept once (ids dedupe), with an
outbox of what this node raised and has not yet handed to the network."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from relay.access.audit import AuditEntry
from relay.bus.events import ALARM_EVENTS, ALARM_WORKFLOW, Event
from relay.db import Database, where

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    origin TEXT NOT NULL,
    time REAL NOT NULL,
    site TEXT,
    camera TEXT,
    by_user TEXT NOT NULL,
    ref TEXT,
    data TEXT NOT NULL,
    image BLOB,
    state TEXT
);
CREATE INDEX IF NOT EXISTS events_ref ON events(ref);
CREATE INDEX IF NOT EXISTS events_time ON events(time);
CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL);
"""

COLUMNS = "seq, id, type, origin, time, site, camera, by_user, ref, data, image, state"


class StoredEvent:
    __slots__ = ("event", "seq", "state")

    def __init__(self, seq: int, event: Event, state: str | None) -> None:
        self.seq = seq
        self.event = event
        self.state = state

    def as_json(self) -> dict[str, Any]:
        return {**self.event.as_json(), "seq": self.seq, "state": self.state}


def _row(row: sqlite3.Row) -> StoredEvent:
    event = Event(
        id=row["id"],
        type=row["type"],
        origin=row["origin"],
        time=row["time"],
        site=row["site"],
        camera=row["camera"],
        by=row["by_user"],
        ref=row["ref"],
        data=json.loads(row["data"]),
        image=row["image"],
    )
    return StoredEvent(row["seq"], event, row["state"])


class EventStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def submit_each(
        self,
        events: list[tuple[Event, AuditEntry | None]],
        *,
        outbox: bool,
        then: Callable[[Future[list[StoredEvent | None]]], None],
    ) -> None:
        """Store events, each with the audit entry that records it, in one transaction;
        `then` gets each one stored, or None where its id was here already (no entry
        then). Transactions are done, and `then` called, in the order submitted."""
        self.db.submit(lambda conn: self._add_each(conn, events, outbox), then)

    def _add_each(
        self,
        conn: sqlite3.Connection,
        events: list[tuple[Event, AuditEntry | None]],
        outbox: bool,
    ) -> list[StoredEvent | None]:
        with conn:  # one transaction: the events, their effect on alarms, outbox, audit
            conn.execute("BEGIN IMMEDIATE")
            return [self.add(conn, event, audit, outbox=outbox) for event, audit in events]

    def add(
        self, conn: sqlite3.Connection, event: Event, audit: AuditEntry | None, *, outbox: bool
    ) -> StoredEvent | None:
        """One event and the audit entry that records it, in the caller's
        transaction; None (and no entry) where its id was here already."""
        stored = self._add(conn, event, outbox)
        if stored is not None and audit is not None:
            audit.write(conn)
        return stored

    def _add(self, conn: sqlite3.Connection, event: Event, outbox: bool) -> StoredEvent | None:
        state = self._initial_state(conn, event)
        if event.type in ALARM_WORKFLOW and event.ref:
            # a step carries its alarm's team of the moment (whose patrol sees it);
            # an assign, the team it takes the alarm from
            team = self._latest_team(conn, event.ref) or {}
            if event.type != "assign" and team:
                event.data.update(team=team.get("team"), team_name=team.get("team_name"))
            elif team and team.get("team") != event.data.get("team"):
                event.data["from_team"] = team.get("team")
        cursor = conn.execute(
            f"INSERT OR IGNORE INTO events ({COLUMNS})"  # noqa: S608
            " VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                event.id,
                event.type,
                event.origin,
                event.time,
                event.site,
                event.camera,
                event.by,
                event.ref,
                json.dumps(event.data, ensure_ascii=False),
                event.image,
                state,
            ),
        )
        if cursor.rowcount == 0:
            return None
        seq = cursor.lastrowid or 0
        if event.type in ALARM_WORKFLOW and event.ref:
            conn.execute(
                "UPDATE events SET state = ? WHERE id = ? AND type = 'alarm'",
                (self._alarm_state(conn, event.ref), event.ref),
            )
        if event.type == "assign" and event.ref:  # the alarm knows its team, for queries
            team = self._latest_team(conn, event.ref) or {}
            conn.execute(
                "UPDATE events SET data = json_set(data, '$.team', ?, '$.team_name', ?)"
                " WHERE id = ? AND type = 'alarm'",
                (team.get("team"), team.get("team_name"), event.ref),
            )
        if event.type == "cancel" and event.ref:
            conn.execute(
                "UPDATE events SET state = 'cancelled' WHERE id = ? AND type = 'lookout'",
                (event.ref,),
            )
        if outbox:
            conn.execute("INSERT INTO outbox (seq, event_id) VALUES (?, ?)", (seq, event.id))
        return StoredEvent(seq, event, state)

    @classmethod
    def _initial_state(cls, conn: sqlite3.Connection, event: Event) -> str | None:
        if event.type == "lookout":
            row = conn.execute(
                "SELECT 1 FROM events WHERE ref = ? AND type = 'cancel'", (event.id,)
            ).fetchone()
            return "cancelled" if row else "active"
        if event.type != "alarm":
            return None
        # Across nodes a step can arrive before its alarm: the alarm row is written
        # after this, so it takes its team and its state from the steps here already.
        team = cls._latest_team(conn, event.id)
        if team is not None:
            event.data.update(team=team.get("team"), team_name=team.get("team_name"))
        return cls._alarm_state(conn, event.id)

    @staticmethod
    def _alarm_state(conn: sqlite3.Connection, alarm_id: str) -> str:
        """The same on every node, whatever order its steps arrived in: resolved if
        any step resolved it, else the latest step's (by its time, then its id)."""
        steps = ", ".join(f"'{step}'" for step in ALARM_WORKFLOW)
        row = conn.execute(
            f"SELECT type FROM events WHERE ref = ? AND type IN ({steps})"  # noqa: S608
            " ORDER BY type = 'resolve' DESC, time DESC, id DESC LIMIT 1",
            (alarm_id,),
        ).fetchone()
        return ALARM_WORKFLOW[row["type"]] if row else "open"

    @staticmethod
    def _latest_team(conn: sqlite3.Connection, alarm_id: str) -> dict[str, Any] | None:
        """The team of the alarm's latest assign (by time, then id), whatever the order
        the assigns arrived in."""
        row = conn.execute(
            "SELECT data FROM events WHERE ref = ? AND type = 'assign'"
            " ORDER BY time DESC, id DESC LIMIT 1",
            (alarm_id,),
        ).fetchone()
        return json.loads(row["data"]) if row else None

    async def get(self, event_id: str) -> StoredEvent | None:
        rows = await self.db.fetch(f"SELECT {COLUMNS} FROM events WHERE id = ?", (event_id,))  # noqa: S608
        return _row(rows[0]) if rows else None

    async def after(self, seq: int, limit: int = 500) -> list[StoredEvent]:
        rows = await self.db.fetch(
            f"SELECT {COLUMNS} FROM events WHERE seq > ? ORDER BY seq LIMIT ?",  # noqa: S608
            (seq, limit),
        )
        return [_row(r) for r in rows]

    async def query(
        self,
        filters: dict[str, Any],
        limit: int = 500,
        scope: tuple[frozenset[str], frozenset[str]] | None = None,
        team: str | None = None,
    ) -> list[StoredEvent]:
        """Newest first; filters: type, site, camera, state, since, until, and
        `before` (a seq: the page below it). `scope` (events.scope_of): only the
        events of these sites, of no site, and the lookouts of the second sites.
        `team` (events.team_of): of the alarms and their steps, that team's only."""
        clause, params = where(filters, ("type", "site", "camera", "state"))
        if "before" in filters:
            clause, params = f"{clause} AND seq < ?", (*params, filters["before"])
        if scope is not None:
            sites, lookouts = sorted(scope[0]), sorted(scope[1])
            clause += (
                f" AND (site IS NULL OR site IN ({','.join('?' * len(sites))})"
                f" OR (type = 'lookout' AND site IN ({','.join('?' * len(lookouts))})))"
            )
            params = (*params, *sites, *lookouts)
        if team is not None:  # as events.visible has it for a patrol
            alarm_events = ",".join(f"'{t}'" for t in sorted(ALARM_EVENTS))
            clause += (
                f" AND CASE WHEN type IN ({alarm_events}) THEN json_extract(data, '$.team') = ?"
                " OR (type = 'assign' AND json_extract(data, '$.from_team') = ?)"
                " ELSE camera IS NULL END"
            )
            params = (*params, team, team)
        rows = await self.db.fetch(
            f"SELECT {COLUMNS} FROM events{clause} ORDER BY seq DESC LIMIT ?",  # noqa: S608
            (*params, limit),
        )
        return [_row(r) for r in rows]

    async def alarms(self, filters: dict[str, Any], limit: int = 500) -> list[StoredEvent]:
        """Alarms, newest first. filters: site, camera, kind, team, since, until;
        state: one state, or "unresolved" for every state but resolved."""
        clause, params = where(filters, ("site", "camera"))
        clause += " AND type = 'alarm'"
        args = list(params)
        state = filters.get("state")
        if state == "unresolved":
            clause += " AND state != 'resolved'"
        elif state:
            clause += " AND state = ?"
            args.append(state)
        for key in ("kind", "team"):
            if filters.get(key):
                clause += f" AND json_extract(data, '$.{key}') = ?"
                args.append(filters[key])
        rows = await self.db.fetch(
            f"SELECT {COLUMNS} FROM events{clause} ORDER BY time DESC LIMIT ?",  # noqa: S608
            (*args, limit),
        )
        return [_row(r) for r in rows]

    async def about(self, ids: list[str], types: tuple[str, ...]) -> list[StoredEvent]:
        """The events of `types` that refer to any of `ids`, oldest first."""
        if not ids:
            return []
        id_marks, type_marks = ",".join("?" * len(ids)), ",".join("?" * len(types))
        rows = await self.db.fetch(
            f"SELECT {COLUMNS} FROM events WHERE ref IN ({id_marks})"  # noqa: S608
            f" AND type IN ({type_marks}) ORDER BY time",
            (*ids, *types),
        )
        return [_row(r) for r in rows]

    async def outbox(self, limit: int = 200, after: int = 0) -> list[StoredEvent]:
        """The oldest events not yet handed to the network, after seq `after`."""
        rows = await self.db.fetch(
            f"SELECT {', '.join('e.' + c for c in COLUMNS.split(', '))} FROM outbox o"  # noqa: S608
            " JOIN events e ON e.seq = o.seq WHERE o.seq > ? ORDER BY o.seq LIMIT ?",
            (after, limit),
        )
        return [_row(r) for r in rows]

    async def sent(self, seqs: list[int]) -> None:
        """These outbox rows reached the network."""
        marks = ",".join("?" * len(seqs))
        await self.db.execute(f"DELETE FROM outbox WHERE seq IN ({marks})", tuple(seqs))  # noqa: S608

    async def pending(self) -> int:
        rows = await self.db.fetch("SELECT COUNT(*) AS n FROM outbox")
        return int(rows[0]["n"])
