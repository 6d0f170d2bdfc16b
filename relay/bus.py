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
import json
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from ingest import SourceState
from relay.auth import User
from relay.config import Config
from relay.events import Event, new_event, visible
from relay.eventstore import EventStore, StoredEvent
from relay.hub import Channel, Hub

logger = logging.getLogger(__name__)

FEED_LIMIT = 2000  # events a feed may fall behind by before it must resume
DOWN = (SourceState.OFFLINE, SourceState.STALLED)


class EventFeed:
    """One subscriber's bounded queue of encoded events."""

    def __init__(self, user: User, limit: int = FEED_LIMIT) -> None:
        self.user = user
        self.limit = limit
        self.overflowed = False
        self._items: deque[tuple[int, str]] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def offer(self, seq: int, text: str) -> None:
        """Queue an event; the bus wakes the feed once for all it got this turn."""
        if self.overflowed:
            return
        if len(self._items) >= self.limit:
            self.overflowed = True  # the client reconnects and resumes from its last seq
            self._items.clear()
        else:
            self._items.append((seq, text))

    def wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def take(self) -> list[tuple[int, str]]:
        """Everything queued, at least one item (or [] once overflowed)."""
        while not self._items and not self.overflowed:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        items = list(self._items)
        self._items.clear()
        return items


def encode(stored: StoredEvent) -> str:
    return json.dumps(stored.as_json(), ensure_ascii=False, separators=(",", ":"))


class AlertBus:
    def __init__(self, config: Config, store: EventStore, hub: Hub) -> None:
        self.config = config
        self.store = store
        self.hub = hub
        self.sites = frozenset(s.id for s in config.sites)
        self.feeds: set[EventFeed] = set()
        self.on_local: list[Callable[[], None]] = []  # woken after a local event is stored
        self._pending_down: dict[str, asyncio.TimerHandle] = {}
        self._reported_down: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._wake_pending = False
        hub.state_listeners.append(self._camera_changed)

    # --- raising and receiving -------------------------------------------

    async def publish(self, event: Event) -> StoredEvent:
        """Store an event raised on this node, then tell everyone concerned."""
        stored = await self.store.add(event, outbox=bool(self.on_local))
        if stored is None:
            raise ValueError(f"event {event.id} exists already")
        self._fan_out(stored)
        for wake in self.on_local:
            wake()
        logger.info(
            "event %s %s site=%s camera=%s by %s",
            event.type,
            event.id[:8],
            event.site,
            event.camera,
            event.by,
        )
        return stored

    async def receive(self, events: list[Event]) -> int:
        """Events from the network: each kept once, if it concerns this node's sites
        and was not raised here; one transaction for them all. Returns how many were new."""
        wanted = [e for e in events if e.origin != self.config.node.id and self.concerns(e)]
        stored = await self.store.add_many(wanted, outbox=False) if wanted else []
        for item in stored:  # the others were seen before: delivered once
            self._fan_out(item)
        return len(stored)

    def concerns(self, event: Event) -> bool:
        return event.site is None or event.site in self.sites

    def _fan_out(self, stored: StoredEvent) -> None:
        text = encode(stored)
        seen: dict[frozenset[str], bool] = {}  # feeds of one scope decide once
        for feed in self.feeds:
            scope = feed.user.sites
            allowed = seen.get(scope)
            if allowed is None:
                allowed = seen[scope] = visible(stored.event, feed.user, self.config)
            if allowed:
                feed.offer(stored.seq, text)
        if not self._wake_pending:  # one wake per feed per loop turn, however many events
            self._wake_pending = True
            asyncio.get_running_loop().call_soon(self._wake_feeds)

    def _wake_feeds(self) -> None:
        self._wake_pending = False
        for feed in self.feeds:
            feed.wake()

    def subscribe(self, user: User) -> EventFeed:
        feed = EventFeed(user)
        self.feeds.add(feed)
        return feed

    def unsubscribe(self, feed: EventFeed) -> None:
        self.feeds.discard(feed)

    # --- camera health -----------------------------------------------------

    @property
    def cameras_down(self) -> frozenset[str]:
        """Cameras whose camera.offline went out and whose camera.online has not."""
        return frozenset(self._reported_down)

    def _camera_changed(self, channel: Channel) -> None:
        camera = channel.camera
        state = self.hub.camera_state(camera.id)
        if state in DOWN:
            if camera.id not in self._reported_down and camera.id not in self._pending_down:
                loop = asyncio.get_running_loop()
                self._pending_down[camera.id] = loop.call_later(
                    self.config.bus.offline_debounce, self._confirm_down, channel
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

    def _confirm_down(self, channel: Channel) -> None:
        camera = channel.camera
        self._pending_down.pop(camera.id, None)
        if self.hub.camera_state(camera.id) not in DOWN:
            return
        self._reported_down.add(camera.id)
        error = channel.source.last_error or str(channel.source.state)
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
        with contextlib.suppress(ValueError):
            self.hub.state_listeners.remove(self._camera_changed)
        for handle in self._pending_down.values():
            handle.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(Exception):
                await task
