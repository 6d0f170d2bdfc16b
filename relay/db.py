"""SQLite for the node's own records, off the event loop.

One connection per database file, used by one worker thread, so every statement
runs in order and none blocks the loop. WAL: readers never wait for the writer.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Generic, TypeVar

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
    callers at once cost a few transactions. `submit(batch, then)` writes a batch
    in one transaction and calls `then` with its finished future on the loop;
    `written(batch, done)` is then told how it went (also when it could not even
    be submitted: the database is closed), in the order the batches went."""

    def __init__(
        self,
        submit: Callable[[list[Item], Callable[[Future[T]], None]], None],
        written: Callable[[list[Item], Future[T]], None],
    ) -> None:
        self._submit = submit
        self._written = written
        self._waiting: list[Item] = []
        self._in_flight: asyncio.Future[None] | None = None

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
        try:
            self._submit(batch, functools.partial(self._done, batch))
        except RuntimeError as exc:  # the database is closed: said to every caller
            failed: Future[T] = Future()
            failed.set_exception(exc)
            self._written(batch, failed)
            return
        self._in_flight = asyncio.get_running_loop().create_future()

    def _done(self, batch: list[Item], result: Future[T]) -> None:
        in_flight, self._in_flight = self._in_flight, None
        if self._waiting:
            self._next()  # added meanwhile: the next transaction, at once
        if in_flight is not None:
            in_flight.set_result(None)
        self._written(batch, result)


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
