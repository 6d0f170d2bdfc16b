"""A consistent copy of the node's SQLite file while it runs, and putting one back.

`backup` reads the live file through a connection of its own (read-only) with
SQLite's online backup API in one step: one read transaction, so the copy is the
database as it was at one commit, whatever the node writes meanwhile (WAL: the
node's writers never wait for it). `restore` puts a copy in place of a stopped
node's file. `hold_data_dir` keeps a second node off a data_dir in use.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

DB_NAME = "node.sqlite"
PID_NAME = "node.pid"
LOCK_NAME = "node.lock"


class BackupError(Exception):
    pass


class DataDirInUse(Exception):
    def __init__(self, data_dir: Path, holder: str) -> None:
        super().__init__(
            f"another node (pid {holder}) is running on data_dir {data_dir}:"
            " stop it, or give this one a node.data_dir of its own"
        )
        self.holder = holder


def backup(source: Path, target: Path) -> int:
    """Copy `source` to `target` (replaced at once when done); returns its bytes."""
    if not source.is_file():
        raise BackupError(f"{source}: no such database (is data_dir right?)")
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst)  # pages=-1: every page in one step, one snapshot
            _check(dst, partial)
        finally:
            dst.close()
    except sqlite3.Error as exc:
        partial.unlink(missing_ok=True)
        raise BackupError(f"{source}: {exc}") from None
    finally:
        src.close()
    os.replace(partial, target)
    return target.stat().st_size


def restore(copy: Path, data_dir: Path) -> Path:
    """Put `copy` in place of data_dir's database; the node must be stopped, and
    none starts while it is put there (the data_dir lock is held)."""
    pid = running_pid(data_dir)
    if pid is not None:
        raise BackupError(f"the node is running (pid {pid}): stop it first")
    try:
        with hold_data_dir(data_dir):
            return _put_in_place(copy, data_dir)
    except DataDirInUse as exc:  # a node still starting: no pid file yet
        raise BackupError(f"the node is running (pid {exc.holder}): stop it first") from None


def _put_in_place(copy: Path, data_dir: Path) -> Path:
    conn = sqlite3.connect(f"file:{copy}?mode=ro", uri=True)
    try:
        _check(conn, copy)
    except sqlite3.Error as exc:
        raise BackupError(f"{copy}: {exc}") from None
    finally:
        conn.close()
    target = data_dir / DB_NAME
    staged = target.with_name(target.name + ".restoring")
    staged.write_bytes(copy.read_bytes())
    for leftover in ("-wal", "-shm"):  # the old file's log must not be applied to the copy
        target.with_name(target.name + leftover).unlink(missing_ok=True)
    os.replace(staged, target)
    return target


def _check(conn: sqlite3.Connection, path: Path) -> None:
    found = conn.execute("PRAGMA integrity_check").fetchone()
    if found != ("ok",):
        raise BackupError(f"{path}: not a sound database ({found[0] if found else '?'})")


def running_pid(data_dir: Path) -> int | None:
    """The pid of the node running on `data_dir`, from its pid file, if it lives."""
    try:
        pid = int((data_dir / PID_NAME).read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if b"relay" in cmdline or b"villagewatch" in cmdline else None


@contextlib.contextmanager
def hold_data_dir(data_dir: Path) -> Iterator[None]:
    """One node per data_dir, from before it opens anything there: a second one
    would cut the first's open recordings at its start-up scan and write the same
    database. The lock (flock) goes with the process, however it ends."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / LOCK_NAME, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "?"
            raise DataDirInUse(data_dir, holder) from None
        lock.truncate(0)
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        yield
