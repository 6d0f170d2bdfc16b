"""GroupCommit: callers share transactions, and one bad write fails only itself."""

from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import Future
from pathlib import Path

from relay.db import Database, GroupCommit

SCHEMA = "CREATE TABLE t (v TEXT NOT NULL);"


def insert(conn: sqlite3.Connection, value: str | None) -> int:
    return conn.execute("INSERT INTO t (v) VALUES (?)", (value,)).lastrowid or 0


async def test_a_bad_item_fails_alone_and_the_rest_of_its_transaction_is_stored(
    tmp_path: Path,
) -> None:
    db = Database(tmp_path / "t.sqlite", SCHEMA)
    await db.open()
    told: list[tuple[str | None, Future[int]]] = []
    all_told = asyncio.Event()
    items: list[str | None] = ["a", "b", "\ud800", "c", None, "d", "\udfff", "e"]

    def written(batch: list[tuple[str | None, Future[int]]]) -> None:
        told.extend(batch)
        if len(told) == len(items):
            all_told.set()

    commits: GroupCommit[str | None, int] = GroupCommit(db, insert, written)
    for item in items:  # in one loop turn: "a" alone, then the others together
        commits.add(item)
    async with asyncio.timeout(10):
        await all_told.wait()
    assert commits.transactions == 2
    assert [item for item, _ in told] == items, "told in the order added"
    failed = {item: outcome.exception() for item, outcome in told if outcome.exception()}
    assert list(failed) == [items[2], items[4], items[6]]
    assert isinstance(failed["\ud800"], UnicodeEncodeError)
    assert isinstance(failed[None], sqlite3.IntegrityError)
    rows = await db.fetch("SELECT rowid, v FROM t ORDER BY rowid")
    assert [row["v"] for row in rows] == ["a", "b", "c", "d", "e"]
    ids = {item: outcome.result() for item, outcome in told if not outcome.exception()}
    assert ids == {row["v"]: row["rowid"] for row in rows}
    await db.close()


async def test_a_transaction_that_cannot_run_is_told_to_every_item(tmp_path: Path) -> None:
    db = Database(tmp_path / "t.sqlite", SCHEMA)
    await db.open()
    await db.close()
    told: list[tuple[str | None, Future[int]]] = []
    commits: GroupCommit[str | None, int] = GroupCommit(db, insert, told.extend)
    commits.add("a")
    assert len(told) == 1 and isinstance(told[0][1].exception(), RuntimeError)
