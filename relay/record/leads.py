"""The leads register (线索登记): leads handed to the police, what they rest on
(exports, alarms) and what came of them, counted per village and month."""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from relay.refusal import Refused

SCHEMA = """
CREATE TABLE IF NOT EXISTS leads (
    id INTEGER PRIMARY KEY,
    created REAL NOT NULL,
    by TEXT NOT NULL,
    site TEXT NOT NULL,
    title TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    exports TEXT NOT NULL DEFAULT '[]',
    alarms TEXT NOT NULL DEFAULT '[]',
    persons_checked INTEGER NOT NULL DEFAULT 0,
    case_solved INTEGER NOT NULL DEFAULT 0,
    arrests INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS leads_site_created ON leads(site, created);
"""
MAX_TITLE = 200
MAX_NOTE = 2000


def _count(body: dict[str, Any], key: str) -> int:
    value = body.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10000:
        raise Refused(400, f"{key} must be a whole number from 0 to 10000")
    return value


def _ids(body: dict[str, Any], key: str, kind: type) -> list[Any]:
    value = body.get(key, [])
    if not isinstance(value, list) or len(value) > 100:
        raise Refused(400, f"{key} must be a list of at most 100 ids")
    if not all(isinstance(v, kind) and not isinstance(v, bool) for v in value):
        raise Refused(400, f"{key} must hold {kind.__name__} ids")
    return value


def parse_lead(body: dict[str, Any]) -> dict[str, Any]:
    """The fields of a lead from a request, each checked; site scope is the caller's."""
    title = body.get("title")
    if not isinstance(title, str) or not title.strip() or len(title) > MAX_TITLE:
        raise Refused(400, f"title is required, at most {MAX_TITLE} characters")
    note = body.get("note", "")
    if not isinstance(note, str) or len(note) > MAX_NOTE:
        raise Refused(400, f"note must be text of at most {MAX_NOTE} characters")
    if not isinstance(body.get("site"), str):
        raise Refused(400, "site must be the id of the village the lead is about")
    return {
        "site": body["site"],
        "title": title.strip(),
        "note": note,
        "exports": _ids(body, "exports", int),
        "alarms": _ids(body, "alarms", str),
        "persons_checked": _count(body, "persons_checked"),
        "case_solved": 1 if body.get("case_solved") is True else 0,
        "arrests": _count(body, "arrests"),
    }


def add(conn: sqlite3.Connection, by: str, lead: dict[str, Any]) -> int:
    cur = conn.execute(
        "INSERT INTO leads (created, by, site, title, note, exports, alarms,"
        " persons_checked, case_solved, arrests) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            time.time(),
            by,
            lead["site"],
            lead["title"],
            lead["note"],
            json.dumps(lead["exports"]),
            json.dumps(lead["alarms"]),
            lead["persons_checked"],
            lead["case_solved"],
            lead["arrests"],
        ),
    )
    return cur.lastrowid or 0


def parse_outcome(body: dict[str, Any]) -> dict[str, Any]:
    """What came of a lead, reported later: only the fields sent change."""
    out: dict[str, Any] = {}
    for key in ("persons_checked", "arrests"):
        if key in body:
            out[key] = _count(body, key)
    if "case_solved" in body:
        if not isinstance(body["case_solved"], bool):
            raise Refused(400, "case_solved must be true or false")
        out["case_solved"] = int(body["case_solved"])
    if not out:
        raise Refused(400, "send persons_checked, case_solved or arrests")
    return out


def update(
    conn: sqlite3.Connection, lead_id: int, outcome: dict[str, Any]
) -> dict[str, Any] | None:
    sets = ", ".join(f"{key} = ?" for key in outcome)  # keys from parse_outcome only
    conn.execute(f"UPDATE leads SET {sets} WHERE id = ?", (*outcome.values(), lead_id))  # noqa: S608
    row = conn.execute("SELECT * FROM leads WHERE id = ?", (lead_id,)).fetchone()
    return as_json(row) if row else None


def get(conn: sqlite3.Connection, lead_id: int) -> dict[str, Any] | None:
    row = conn.execute("SELECT * FROM leads WHERE id = ?", (lead_id,)).fetchone()
    return as_json(row) if row else None


def as_json(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    out["exports"] = json.loads(out["exports"])
    out["alarms"] = json.loads(out["alarms"])
    out["case_solved"] = bool(out["case_solved"])
    return out


def listed(
    conn: sqlite3.Connection, sites: frozenset[str], limit: int = 500
) -> list[dict[str, Any]]:
    marks = ",".join("?" * len(sites)) or "NULL"
    rows = conn.execute(
        f"SELECT * FROM leads WHERE site IN ({marks}) ORDER BY id DESC LIMIT ?",  # noqa: S608
        (*sorted(sites), limit),
    ).fetchall()
    return [as_json(r) for r in rows]


def stats(
    conn: sqlite3.Connection, sites: frozenset[str], since: float, until: float
) -> list[dict[str, Any]]:
    """Per site (village) and UTC month: leads, persons checked, cases solved, arrests."""
    marks = ",".join("?" * len(sites)) or "NULL"
    sql = (
        "SELECT site, strftime('%Y-%m', created, 'unixepoch') AS month,"  # noqa: S608
        " COUNT(*) AS leads, SUM(persons_checked) AS persons_checked, SUM(case_solved) AS cases,"
        " SUM(arrests) AS arrests FROM leads"
        f" WHERE site IN ({marks}) AND created >= ? AND created < ?"  # only ? marks added
        " GROUP BY site, month ORDER BY month, site"
    )
    rows = conn.execute(
        sql,
        (*sorted(sites), since, until),
    ).fetchall()
    return [dict(r) for r in rows]
