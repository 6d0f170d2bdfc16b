"""What arrives from the stream, taken in: stored in batches, one transaction
each, and only then acknowledged, so an event is never acknowledged to the
network before it is on disk here.

The network is not trusted to send only what this node can use: a message of the
wrong shape (or one the store refuses) is logged once, terminated (never sent
again) and skipped, and the rest of its batch goes on. A failure that is not the
message's fault (the disk, a bug) is logged at once; the batch is sent again by
the server after a short delay, and the receiver goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
from collections.abc import Awaitable, Callable

import nats.errors
from nats.aio.msg import Msg

from relay.bus.events import Event, Unusable

logger = logging.getLogger(__name__)

BATCH = 256
AGAIN_SECONDS = 1.0  # how soon the server sends a batch again after a failure here
ORIGIN = "Vw-Origin"  # the node that raised an event, readable without parsing it
# What the store raises for one event it cannot keep, not for a store that is down.
EVENT_FAULTS = (
    sqlite3.IntegrityError,
    sqlite3.InterfaceError,
    sqlite3.ProgrammingError,
    UnicodeError,
    OverflowError,
    ValueError,
    TypeError,
)


class Inbound:
    def __init__(self, node_id: str, receive: Callable[[list[Event]], Awaitable[int]]) -> None:
        self.node_id = node_id
        self.receive = receive
        self.received = 0  # messages the stream delivered here, our own included
        self.queue: asyncio.Queue[Msg] = asyncio.Queue()  # bounded by max_ack_pending
        self.skipped = 0  # messages this node could not use

    async def on_message(self, msg: Msg) -> None:
        self.received += 1
        self.queue.put_nowait(msg)

    async def run(self) -> None:
        """Take in for ever; whatever a batch does, the next one is taken."""
        while True:
            batch = [await self.queue.get()]
            while len(batch) < BATCH and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            try:
                await self._take_in(batch)
            except Exception:
                logger.exception("NATS: could not take in %d events; they come again", len(batch))
                for msg in batch:
                    with contextlib.suppress(nats.errors.Error):
                        await msg.nak(delay=AGAIN_SECONDS)

    async def _take_in(self, batch: list[Msg]) -> None:
        usable: list[tuple[Msg, Event]] = []
        for msg in batch:
            if (msg.headers or {}).get(ORIGIN) == self.node_id:
                continue  # our own, back from the stream
            try:
                usable.append((msg, parse(msg.data)))
            except Unusable as exc:
                await self._skip(msg, str(exc))
        if usable:
            try:
                await self.receive([event for _, event in usable])
            except EVENT_FAULTS:  # one of them, at least: find which, one by one
                await self._one_by_one(usable)
        for msg in batch:
            with contextlib.suppress(nats.errors.Error):
                await msg.ack()  # if the link is down the server sends it again

    async def _one_by_one(self, usable: list[tuple[Msg, Event]]) -> None:
        for msg, event in usable:
            try:
                await self.receive([event])
            except EVENT_FAULTS as exc:
                await self._skip(msg, f"the store refused it ({type(exc).__name__})")

    async def _skip(self, msg: Msg, why: str) -> None:
        self.skipped += 1
        try:
            sequence: int | None = msg.metadata.sequence.stream
        except (ValueError, IndexError, nats.errors.Error):  # not from JetStream
            sequence = None
        logger.warning("NATS: cannot use the message at stream seq %s: %s", sequence, why)
        with contextlib.suppress(nats.errors.Error):
            await msg.term()


def parse(data: bytes) -> Event:
    """An Event from a message's bytes, or Unusable."""
    try:
        raw = json.loads(data)
    except (ValueError, RecursionError):
        raise Unusable("not JSON") from None
    return Event.from_json(raw)


async def keep_running(run: Callable[[], Awaitable[None]], what: str, pause: float) -> None:
    """Run `run` for ever: if it fails, say so at once and start it again."""
    while True:
        try:
            await run()
        except Exception:
            logger.exception("%s failed; starting it again", what)
        await asyncio.sleep(pause)
