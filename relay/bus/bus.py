"""The alert bus: "一点布控、全网响应" — any point raises, the whole network responds.

An event is stored in SQLite before anyone is told (the sender's 201 included);
then it goes to every WebSocket feed that may see it and, with NATS configured,
into the outbox that `NatsLink` hands to the network. Events from the network are
stored once (ids dedupe) and fanned out the same way; a node never takes its own
events back. Camera health becomes events here, debounced.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import sqlite3
from collections import Counter
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, Protocol

from ingest.state import SourceState
from relay.access.accounts import User
from relay.access.audit import AuditEntry
from relay.bus.events import Event, new_event, team_of, visible
from relay.bus.feeds import EventFeed, ScopeLog
from relay.bus.store import EventStore, StoredEvent
from relay.config import CameraConfig, Config
from relay.db import GroupCommit

logger = logging.getLogger(__name__)

DOWN = (SourceState.OFFLINE, SourceState.STALLED)
Raised = tuple[Event, AuditEntry | None, "asyncio.Future[StoredEvent]"]
Added = list[StoredEvent | None]


class CameraStates(Protocol):
    """What the bus asks of the cameras (the hub answers): how one is, and why."""

    def camera_state(self, camera_id: str) -> SourceState: ...

    def camera_error(self, camera_id: str) -> str | None: ...


def encode(stored: StoredEvent) -> str:
    return json.dumps(stored.as_json(), ensure_ascii=False, separators=(",", ":"))


class AlertBus:
    def __init__(self, config: Config, store: EventStore, cameras: CameraStates) -> None:
        """`cameras` answers for camera health; the composition root tells
        `camera_changed` of every change."""
        self.config = config
        self.store = store
        self.cameras = cameras
        self.sites = frozenset(s.id for s in config.sites)
        self.logs: dict[tuple[frozenset[str], str | None], ScopeLog] = {}  # per scope with a feed
        # told what was raised here and committed (to the outbox), in commit order
        self.on_local: list[Callable[[list[StoredEvent]], None]] = []
        # told what came from the network and was new here, in commit order
        self.on_received: list[Callable[[list[StoredEvent]], None]] = []
        self.raised: Counter[str] = Counter()  # events raised here, committed, by type
        self.received: Counter[str] = Counter()  # new events from the network, by type
        self._pending_down: dict[str, asyncio.TimerHandle] = {}
        self._reported_down: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._changed: set[ScopeLog] = set()  # logs that grew since feeds were woken
        self._commits: GroupCommit[Raised, StoredEvent | None] = GroupCommit(
            store.db, self._write_raised, self._raised_written
        )

    # --- raising and receiving -------------------------------------------

    async def publish(self, event: Event, audit: AuditEntry | None = None) -> StoredEvent:
        """Store an event raised on this node, and the audit entry that records it,
        then tell everyone concerned. The first goes to SQLite at once; those raised
        while its transaction is being written share the next one (group commit),
        and each caller returns only once its own event is committed."""
        done = asyncio.get_running_loop().create_future()
        self._commits.add((event, audit, done))
        stored: StoredEvent = await done
        logger.info(
            "event %s %s site=%s camera=%s by %s",
            event.type,
            event.id[:8],
            event.site,
            event.camera,
            event.by,
        )
        return stored

    def _write_raised(self, conn: sqlite3.Connection, raised: Raised) -> StoredEvent | None:
        event, audit, _ = raised  # in SQLite's thread, in the raised events' transaction
        return self.store.add(conn, event, audit, outbox=bool(self.on_local))

    def _raised_written(self, batch: list[tuple[Raised, Future[StoredEvent | None]]]) -> None:
        committed: list[StoredEvent] = []
        for (event, _, done), outcome in batch:
            error = outcome.exception()
            stored = None if error is not None else outcome.result()
            if error is None and stored is None:
                error = ValueError(f"event {event.id} exists already")
            if stored is None:  # told to its caller only: the others were stored
                if not done.done():
                    done.set_exception(error or ValueError(event.id))
                continue
            self.raised[event.type] += 1
            self._fan_out(stored)
            committed.append(stored)
            if not done.done():
                done.set_result(stored)
        self._wake_feeds()
        for tell in self.on_local:
            tell(committed)

    async def receive(self, events: list[Event]) -> int:
        """Events from the network: each kept once, if it concerns this node's sites
        and was not raised here; one transaction for them all. Returns how many were new."""
        wanted = [e for e in events if e.origin != self.config.node.id and self.concerns(e)]
        if not wanted:
            return 0
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.store.submit_each(
            [(event, None) for event in wanted],
            outbox=False,
            then=functools.partial(self._received, done),
        )
        return await done

    def _received(self, done: asyncio.Future[int], result: Future[Added]) -> None:
        error = result.exception()
        if error is not None:
            if not done.done():
                done.set_exception(error)
            return
        stored = [item for item in result.result() if item is not None]
        for item in stored:  # the others were seen before: delivered once
            self.received[item.event.type] += 1
            self._fan_out(item)
        self._wake_feeds()
        for tell in self.on_received:
            tell(stored)
        if not done.done():
            done.set_result(len(stored))

    def concerns(self, event: Event) -> bool:
        return event.site is None or event.site in self.sites

    def _fan_out(self, stored: StoredEvent) -> None:
        """Into the log of every scope that may see it: encoded once, appended once
        per scope. Committed events come in transactions (in the order they were
        written), and each transaction wakes the feeds once, however many it held."""
        text = None
        for log in self.logs.values():
            if visible(stored.event, log.user, self.config):
                if text is None:
                    text = encode(stored)
                log.append(stored.seq, text)
                self._changed.add(log)

    def _wake_feeds(self) -> None:
        changed, self._changed = self._changed, set()
        for log in changed:
            log.wake()

    def subscribe(self, user: User) -> EventFeed:
        scope = (user.sites, team_of(user))
        log = self.logs.get(scope)
        if log is None:
            log = self.logs[scope] = ScopeLog(user)
        return log.subscribe(user)

    def unsubscribe(self, feed: EventFeed) -> None:
        log = feed.log
        log.feeds.discard(feed)
        scope = (log.user.sites, team_of(log.user))
        if not log.feeds and self.logs.get(scope) is log:
            del self.logs[scope]
            self._changed.discard(log)

    def apply(self, config: Config) -> None:
        """Take a reloaded config (before the hub closes removed cameras, so that
        their closing raises no camera.offline)."""
        self.config = config
        self.sites = frozenset(s.id for s in config.sites)
        known = {c.id for c in config.cameras}
        for camera_id in [c for c in self._pending_down if c not in known]:
            self._pending_down.pop(camera_id).cancel()
        self._reported_down &= known

    # --- camera health -----------------------------------------------------

    @property
    def cameras_down(self) -> frozenset[str]:
        """Cameras whose camera.offline went out and whose camera.online has not."""
        return frozenset(self._reported_down)

    def camera_changed(self, camera: CameraConfig, *, its_node_reports: bool = False) -> None:
        """`its_node_reports`: the camera is a peer's, reachable, and its own node
        raises its outages on this same bus; this node then raises none for it (one
        outage, one alert), only the return of one it raised itself."""
        if self.config.camera(camera.id) is None:
            return  # removed by a reload: its channels closing is no outage
        state = self.cameras.camera_state(camera.id)
        if state in DOWN:
            if its_node_reports:
                pending = self._pending_down.pop(camera.id, None)
                if pending is not None:
                    pending.cancel()
                return
            if camera.id not in self._reported_down and camera.id not in self._pending_down:
                loop = asyncio.get_running_loop()
                self._pending_down[camera.id] = loop.call_later(
                    self.config.bus.offline_debounce, self._confirm_down, camera
                )
            return
        pending = self._pending_down.pop(camera.id, None)
        if pending is not None:
            pending.cancel()  # back before the debounce ran out: no event
        if state is SourceState.ONLINE and camera.id in self._reported_down:
            self._reported_down.discard(camera.id)
            self._spawn(
                self.publish(
                    new_event(self.config.node.id, "camera.online", camera.site, camera=camera.id)
                )
            )

    def _confirm_down(self, camera: CameraConfig) -> None:
        self._pending_down.pop(camera.id, None)
        state = self.cameras.camera_state(camera.id)
        if state not in DOWN or self.config.camera(camera.id) is None:
            return
        self._reported_down.add(camera.id)
        error = self.cameras.camera_error(camera.id) or str(state)
        self._spawn(
            self.publish(
                new_event(
                    self.config.node.id,
                    "camera.offline",
                    camera.site,
                    camera=camera.id,
                    data={"error": error},
                )
            )
        )

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        await self._commits.idle()
        for handle in self._pending_down.values():
            handle.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(Exception):
                await task
