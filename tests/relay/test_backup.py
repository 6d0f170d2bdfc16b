"""`backup` while the node writes: the copy holds every event committed before it
began; `restore` puts it back."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

import pytest

from relay.backup import DB_NAME, BackupError, backup, hold_data_dir, restore
from relay.bus.events import new_event
from relay.web.events import BUS
from tests.conftest import NodeFactory, node_yaml
from tests.helpers import wait_until


async def test_backup_under_load_holds_every_event_committed_before_it(
    start_node: NodeFactory, tmp_path: Path
) -> None:
    node = await start_node(node_yaml("  []\n"))
    bus = node.app[BUS]
    committed: list[str] = []
    enough = asyncio.Event()

    async def publish(n: int) -> None:
        event = new_event("test", "alarm", "village", by="admin", data={"n": n})
        await bus.publish(event)
        committed.append(event.id)
        if len(committed) >= 200:
            enough.set()

    async def publisher() -> None:
        n = 0
        while True:  # 8 at a time: group commits, as under real load
            await asyncio.gather(*(publish(n + i) for i in range(8)))
            n += 8

    task = asyncio.create_task(publisher())
    try:
        async with asyncio.timeout(30):
            await enough.wait()
        before = set(committed)
        source = Path(node.app[BUS].store.db.path)
        assert source.name == DB_NAME
        copy = tmp_path / "backup.sqlite"
        size = await asyncio.to_thread(backup, source, copy)  # the loop publishes on
        done = len(committed)
        await wait_until(lambda: len(committed) > done + 8, 10, "publishing went on")
    finally:
        task.cancel()
        await asyncio.wait([task])
    assert size == copy.stat().st_size > 0
    with sqlite3.connect(copy) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        held = {row[0] for row in conn.execute("SELECT id FROM events")}
    assert before <= held, f"{len(before - held)} committed events missing from the copy"
    assert len(held) < len(committed), "the copy is of one moment, not what came after"
    assert not (tmp_path / "backup.sqlite.partial").exists()


def test_restore_puts_a_copy_in_place_and_refuses_a_broken_one(tmp_path: Path) -> None:
    original = tmp_path / "original.sqlite"
    with sqlite3.connect(original) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE events (id TEXT)")
        conn.execute("INSERT INTO events VALUES ('kept')")
    conn.close()
    copy = tmp_path / "copy.sqlite"
    backup(original, copy)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / (DB_NAME + "-wal")).write_bytes(b"an old log that must not be applied")
    target = restore(copy, data_dir)
    assert not (data_dir / (DB_NAME + "-wal")).exists()
    with sqlite3.connect(target) as conn:
        assert conn.execute("SELECT id FROM events").fetchall() == [("kept",)]
    conn.close()
    broken = tmp_path / "broken.sqlite"
    broken.write_bytes(b"not a database" * 100)
    with pytest.raises(BackupError):
        restore(broken, data_dir)
    with pytest.raises(BackupError, match="no such database"):
        backup(tmp_path / "missing.sqlite", copy)


def test_restore_refuses_while_a_node_holds_the_data_dir(tmp_path: Path) -> None:
    """A node that is still starting has written no pid file yet; it holds the
    data_dir's lock from its first step, and restore respects it."""
    copy = tmp_path / "copy.sqlite"
    sqlite3.connect(copy).close()
    data_dir = tmp_path / "data"
    with hold_data_dir(data_dir), pytest.raises(BackupError) as refused:
        restore(copy, data_dir)
    assert str(refused.value) == f"the node is running (pid {os.getpid()}): stop it first"
    assert not (data_dir / DB_NAME).exists()
    assert restore(copy, data_dir) == data_dir / DB_NAME  # the lock went with the holder
