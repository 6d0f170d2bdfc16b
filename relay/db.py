"""SQLite for the node's own records, off the event loop.

One connection per database file, used by one worker thread, so every statement
runs in order and none blocks the loop. WAL: readers never wait for the writer.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Generic, TypeVar

logger = logging.getLogger(__name__)
T = TypeVar("T")
Item = TypeVar("Item")


class Database:
    def __init__(self, path: Path | str, schema: str) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"sqlite-{Path(self.path).stem}")
        self._conn: sqlite3.Connection | None = None
        self._schema = schema
        self._closed = False

    async def open(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._open)

    def _open(self) -> None:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.executescript(self._schema)
        self._conn = conn

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work(connection)` in the database's thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, work)

    def submit(
        self, work: Callable[[sqlite3.Connection], T], then: Callable[[Future[T]], None]
    ) -> None:
        """Run `work(connection)` in the database's thread, then `then(done)` on the
        loop with its finished future: a loop turn sooner than awaiting `run`, and
        in the order the work was submitted."""
        loop = asyncio.get_running_loop()
        future = self._executor.submit(self._call, work)
        future.add_done_callback(lambda done: loop.call_soon_threadsafe(then, done))

    def _call(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None:
            raise RuntimeError(f"database {self.path} is not open")
        return work(self._conn)

    async def execute(self, sql: str, params: tuple[object, ...] = ()) -> int:
        """One statement; returns how many rows it changed."""
        return await self.run(lambda conn: conn.execute(sql, params).rowcount)

    async def insert(self, sql: str, params: tuple[object, ...] = ()) -> int:
        """One INSERT; returns the new row's id."""
        return await self.run(lambda conn: conn.execute(sql, params).lastrowid or 0)

    async def fetch(self, sql: str, params: tuple[object, ...] = ()) -> list[sqlite3.Row]:
        return await self.run(lambda conn: conn.execute(sql, params).fetchall())

    async def close(self) -> None:
        """Closes the connection and its thread (a second call does nothing)."""
        if self._closed:
            return
        self._closed = True

        def go() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await asyncio.get_running_loop().run_in_executor(self._executor, go)
        self._executor.shutdown(wait=True)


class GroupCommit(Generic[Item, T]):
    """Group commit: the first item goes to SQLite's thread at once; those added
    while its transaction is being written wait to share the next one, so many
    callers at once cost a few transactions.

    `write(conn, item)` writes one item, in SQLite's thread, inside a savepoint of
    its own: an item whose write fails (text SQLite cannot encode, a constraint,
    a bug) is rolled back alone and only its own caller hears of it; the others
    in that transaction are committed all the same. `written(batch)` is then
    told, on the loop and in the order of the transactions, each item with its
    outcome (a finished Future); if the transaction itself failed (the disk is
    full, the database is closed), each outcome holds that error."""

    def __init__(
        self,
        db: Database,
        write: Callable[[sqlite3.Connection, Item], T],
        written: Callable[[list[tuple[Item, Future[T]]]], None],
    ) -> None:
        self._db = db
        self._write = write
        self._written = written
        self._waiting: list[Item] = []
        self._in_flight: asyncio.Future[None] | None = None
        self.transactions = 0  # how many were begun: what grouping saved shows here

    def add(self, item: Item) -> None:
        self._waiting.append(item)
        if self._in_flight is None:
            self._next()

    async def idle(self) -> None:
        """Until no transaction is in flight, the last one included."""
        while self._in_flight is not None:
            await self._in_flight

    def _next(self) -> None:
        batch, self._waiting = self._waiting, []
        self.transactions += 1
        try:
            self._db.submit(
                functools.partial(self._transaction, batch), functools.partial(self._done, batch)
            )
        except RuntimeError as exc:  # the database is closed: said to every caller
            failed: Future[list[Future[T]]] = Future()
            failed.set_exception(exc)
            self._tell(batch, failed)
            return
        self._in_flight = asyncio.get_running_loop().create_future()

    def _transaction(self, batch: list[Item], conn: sqlite3.Connection) -> list[Future[T]]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            outcomes = [self._one(conn, item) for item in batch]
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # some errors (SQLITE_FULL) have rolled it back already
                conn.execute("ROLLBACK")
            raise
        return outcomes

    def _one(self, conn: sqlite3.Connection, item: Item) -> Future[T]:
        outcome: Future[T] = Future()
        conn.execute("SAVEPOINT item")
        try:
            outcome.set_result(self._write(conn, item))
        except Exception as exc:
            logger.warning("%s: a write failed and was rolled back alone: %r", self._db.path, exc)
            conn.execute("ROLLBACK TO item")
            outcome.set_exception(exc)
        conn.execute("RELEASE item")
        return outcome

    def _done(self, batch: list[Item], result: Future[list[Future[T]]]) -> None:
        in_flight, self._in_flight = self._in_flight, None
        if self._waiting:
            self._next()  # added meanwhile: the next transaction, at once
        if in_flight is not None:
            in_flight.set_result(None)
        self._tell(batch, result)

    def _tell(self, batch: list[Item], result: Future[list[Future[T]]]) -> None:
        error = result.exception()
        if error is None:
            outcomes = result.result()
        else:
            outcomes = [Future() for _ in batch]
            for outcome in outcomes:
                outcome.set_exception(error)
        self._written(list(zip(batch, outcomes, strict=True)))


def where(filters: Mapping[str, Any], columns: tuple[str, ...]) -> tuple[str, tuple[Any, ...]]:
    """A WHERE clause: equality on the named columns, `since`/`until` on `time`."""
    clauses, params = ["1"], []
    for column in columns:
        if column in filters:
            clauses.append(f"{column} = ?")
            params.append(filters[column])
    for key, test in (("since", "time >= ?"), ("until", "time < ?")):
        if key in filters:
            clauses.append(test)
            params.append(filters[key])
    return " WHERE " + " AND ".join(clauses), tuple(params)
