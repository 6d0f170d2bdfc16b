"""Live event feeds, shared per scope: what users of the same sites may see is kept
once, and each of their WebSocket feeds is only a place in it.

An event then costs one append per scope, not one per feed, and the frame a feed
sends (the JSON array of what it has not sent yet, encoded) is built once for every
feed of the scope that stands at the same place, as all feeds that keep up do.
A feed that keeps up is written to as its log is woken, the whole WebSocket frame
at once, without waking its task: that leaves little but the send itself.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Protocol

from relay.access.accounts import User


class Connection(Protocol):
    """What a feed needs of its WebSocket: whether it closed."""

    @property
    def closed(self) -> bool: ...


FEED_LIMIT = 2000  # events a feed may fall behind by before it must resume
WRITE_ROOM = 64 * 1024  # bytes a connection may hold unsent; past it the feed is closed (1013)


class ScopeLog:
    """The latest events one scope (a set of sites, and a patrol's team) may see, in
    the order they were stored, and the feeds reading them. Holds at most 2 x
    `limit` events, however slow a feed is. `user` is the first subscriber: what a
    user may see depends on their sites and a patrol's team alone, so it stands for
    every user of the scope."""

    def __init__(self, user: User, limit: int = FEED_LIMIT) -> None:
        self.user = user
        self.limit = limit
        self.feeds: set[EventFeed] = set()
        self._base = 0  # the place of _seqs[0]
        self._seqs: list[int] = []
        self._texts: list[str] = []  # each event's JSON
        self._frames: dict[int, bytes] = {}  # first place -> frame up to the end
        self._whole: dict[int, bytes] = {}  # the same, as whole WebSocket frames

    def __len__(self) -> int:
        return len(self._seqs)

    @property
    def end(self) -> int:
        """The place the next event will take."""
        return self._base + len(self._seqs)

    def append(self, seq: int, text: str) -> None:
        self._seqs.append(seq)
        self._texts.append(text)
        self._frames.clear()  # every cached frame ended before this event
        self._whole.clear()
        if len(self._seqs) >= 2 * self.limit:  # trimmed in halves: O(1) per event
            drop = len(self._seqs) - self.limit
            del self._seqs[:drop], self._texts[:drop]
            self._base += drop

    def first_after(self, place: int, seq: int) -> int:
        """The first place from `place` on whose event came after `seq`."""
        index, seqs = place - self._base, self._seqs
        while index < len(seqs) and seqs[index] <= seq:
            index += 1
        return self._base + index

    def frame(self, place: int) -> tuple[bytes, int]:
        """Every event from `place` to the end as one encoded JSON array, and the
        last one's seq; made once for all feeds that ask at the same place."""
        frame = self._frames.get(place)
        if frame is None:
            texts = self._texts[place - self._base :]
            frame = self._frames[place] = ("[" + ",".join(texts) + "]").encode()
        return frame, self._seqs[-1]

    def whole_frame(self, place: int) -> tuple[bytes, int]:
        """frame(place) as a whole unmasked WebSocket text frame (RFC 6455 5.2)."""
        whole = self._whole.get(place)
        if whole is None:
            payload = self.frame(place)[0]
            size = len(payload)
            if size < 126:
                head = struct.pack("!BB", 0x81, size)
            elif size < 1 << 16:
                head = struct.pack("!BBH", 0x81, 126, size)
            else:
                head = struct.pack("!BBQ", 0x81, 127, size)
            whole = self._whole[place] = head + payload
        return whole, self._seqs[-1]

    def subscribe(self, user: User) -> EventFeed:
        feed = EventFeed(self, user)
        self.feeds.add(feed)
        return feed

    def wake(self) -> None:
        for feed in self.feeds:
            feed.wake()


class EventFeed:
    """One subscriber: a place in its scope's log."""

    def __init__(self, log: ScopeLog, user: User) -> None:
        self.log = log
        self.user = user
        self.place = log.end  # what was stored before is the backlog, read from the store
        self.last = 0  # the seq of the last event it sent
        self.overflowed = False
        self._waiter: asyncio.Future[None] | None = None
        self._socket: Connection | None = None
        self._transport: asyncio.Transport | None = None

    def write_directly(self, socket: Connection, transport: asyncio.Transport) -> None:
        """Let wake() write to this connection while the feed waits in take() (set
        once the backlog is sent, so that nothing goes before it)."""
        self._socket, self._transport = socket, transport

    def wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done() and not self._write():
            waiter.set_result(None)

    def _write(self) -> bool:
        """Writes what it has not sent, if its connection has room; False if its task
        must do it (it closes a feed whose connection holds more than WRITE_ROOM, or
        one too far behind)."""
        socket, transport, log = self._socket, self._transport, self.log
        if (
            socket is None
            or transport is None
            or socket.closed
            or transport.is_closing()
            or transport.get_write_buffer_size() > WRITE_ROOM
            or log.end - self.place > log.limit
        ):
            return False
        self.place = log.first_after(self.place, self.last)
        if self.place < log.end:
            whole, self.last = log.whole_frame(self.place)
            transport.write(whole)
            self.place = log.end
        return True

    async def take(self, after: int) -> tuple[bytes, int] | None:
        """The next frame, of every event not taken yet whose seq is above `after`
        (the backlog sent some already), and the last seq in it; None once the feed
        fell more than the log's limit behind: the client must resume from its seq."""
        log = self.log
        while True:
            if log.end - self.place > log.limit:
                self.overflowed = True
                return None
            self.place = log.first_after(self.place, max(after, self.last))
            if self.place < log.end:
                taken = log.frame(self.place)
                self.place, self.last = log.end, taken[1]
                return taken
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
