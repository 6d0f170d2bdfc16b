"""The bus across nodes, on NATS JetStream: one stream all nodes publish to, one
durable consumer per node, so a node that was cut off catches up on what it missed.

Events this node raises wait in the SQLite outbox until JetStream acknowledged
them (`Nats-Msg-Id` = the event id, so a retry after a lost ack is dropped by the
server, and by id again by every receiver). A link outage costs nothing but time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.js.api import StreamConfig
from nats.js.errors import NoStreamResponseError

from ingest.tasks import cancel_and_wait
from relay.bus.consumer import StreamLost, in_flight_first, subscribe, watch
from relay.bus.events import Event
from relay.bus.inbound import ORIGIN, Inbound, keep_running
from relay.bus.store import EventStore, StoredEvent
from relay.config import NatsConfig

logger = logging.getLogger(__name__)

RETRY_SECONDS = 0.5
PUBLISH_TIMEOUT = 2.0
BATCH = 256
WINDOW = 1024  # events handed to JetStream and not acknowledged yet
FRESH_LIMIT = 4096
FRESH_IMAGE_BYTES = 32 * 1024 * 1024  # of snapshots and photos handed over in memory
NATS_DOWN = (
    OSError,
    TimeoutError,
    nats.errors.Error,
    nats.js.errors.Error,
)


class NatsLink:
    def __init__(
        self,
        config: NatsConfig,
        node_id: str,
        store: EventStore,
        receive: Callable[[list[Event]], Awaitable[int]],
        sites: frozenset[str] = frozenset(),
    ) -> None:
        self.config = config
        self.node_id = node_id
        self.store = store
        self.receive = receive
        self.subject = f"{config.stream}.events"
        # What this node's durable consumer takes: its sites' events and the
        # network's; none given, everything.
        self.filters = sorted(site_subject(self.subject, s) for s in (*sites, None))
        self.connected = asyncio.Event()
        self.published = 0
        self._wake = asyncio.Event()
        self._fresh: deque[StoredEvent] = deque()  # committed, not yet read by the pump
        self._fresh_images = 0  # bytes of images in _fresh
        self._from_outbox = True
        self._resets = 0  # times handed-over events were dropped, to be read back
        self.inbound = Inbound(node_id, receive)
        self.durable = f"node-{node_id}"
        self._check = asyncio.Event()  # look now whether the stream and consumer exist
        self._task: asyncio.Task[None] | None = None
        self._receiver: asyncio.Task[None] | None = None
        self._nc: Any = None

    def wake(self, stored: Sequence[StoredEvent] = ()) -> None:
        """The bus committed `stored` to the outbox: handed over in memory, up to a
        bound in events and in image bytes (past it the pump reads them back from
        the outbox)."""
        images = sum(len(s.event.image or b"") for s in stored)
        if (
            len(self._fresh) + len(stored) <= FRESH_LIMIT
            and self._fresh_images + images <= FRESH_IMAGE_BYTES
        ):
            self._fresh.extend(stored)
            self._fresh_images += images
        else:
            self._fresh.clear()
            self._fresh_images = 0
            self._from_outbox = True
            self._resets += 1
        self._wake.set()

    @property
    def received(self) -> int:
        """Messages the stream delivered here, our own included."""
        return self.inbound.received

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="nats link")
        self._receiver = asyncio.create_task(
            keep_running(self.inbound.run, "NATS receiver", RETRY_SECONDS), name="nats receiver"
        )

    async def close(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        receiver, self._receiver = self._receiver, None
        await cancel_and_wait(receiver)

    async def _run(self) -> None:
        while True:
            try:
                await self._session()
            except* NATS_DOWN as group:
                logger.warning("NATS: %s; retrying", _why(group.exceptions[0]))
            except* Exception:
                logger.exception("NATS: the link failed; setting it up again")
            finally:
                self.connected.clear()
                if self._nc is not None:
                    with contextlib.suppress(Exception):
                        await self._nc.close()
                    self._nc = None
            await asyncio.sleep(RETRY_SECONDS)

    async def _session(self) -> None:
        self._nc = nc = await nats.connect(
            servers=self.config.servers,
            name=f"villagewatch {self.node_id}",
            user=self.config.user,
            password=self.config.password,
            token=self.config.token,
            connect_timeout=2,
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=RETRY_SECONDS,
            error_cb=self._error,
            disconnected_cb=self._disconnected,
            reconnected_cb=self._reconnected,
        )
        js = nc.jetstream()
        await self._ensure_stream(js)
        await self._refilter(js, self.durable)
        await in_flight_first(js, self.config.stream, self.durable)
        await subscribe(
            js,
            f"{self.subject}.>",
            self.config.stream,
            self.durable,
            self.inbound.on_message,
            filters=self.filters,
        )
        self.connected.set()
        logger.info("NATS: connected, stream %s", self.config.stream)
        async with asyncio.TaskGroup() as group:
            group.create_task(self._pump(js))
            group.create_task(watch(js, self.config.stream, self.durable, self._check, self._up))

    async def _refilter(self, js: Any, durable: str) -> None:
        """A durable made by an older config keeps its filter; give it this one's
        (its place in the stream is kept)."""
        try:
            info = await js.consumer_info(self.config.stream, durable)
        except nats.js.errors.NotFoundError:
            return
        if (
            sorted(info.config.filter_subjects or [info.config.filter_subject or ""])
            != self.filters
        ):
            config = info.config
            config.filter_subject, config.filter_subjects = None, self.filters
            await js.add_consumer(self.config.stream, config)
            logger.info("NATS: consumer %s now takes %d subjects", durable, len(self.filters))

    async def _ensure_stream(self, js: Any) -> None:
        config = StreamConfig(
            name=self.config.stream,
            subjects=[f"{self.subject}.>"],
            num_replicas=self.config.replicas,
            max_age=self.config.max_age_days * 86400,
            duplicate_window=120,
        )
        try:
            await js.add_stream(config)
        except nats.js.errors.BadRequestError:
            await js.update_stream(config)  # made by another node, or by an older config

    async def _pump(self, js: Any) -> None:
        """Hand the outbox to JetStream in order, up to WINDOW events unacknowledged
        at a time: first what the outbox holds, then what the bus hands over as it
        commits (no read back). A row leaves the outbox once JetStream acknowledged
        it; if acks fail or stall, what is left is sent again from the outbox."""
        self._fresh.clear()
        self._fresh_images = 0
        self._from_outbox = True
        self._resets += 1
        after = 0  # the last seq handed to JetStream
        in_flight: deque[tuple[int, asyncio.Future[Any], float]] = deque()
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            batch = await self._next(after, WINDOW - len(in_flight))
            for item in batch:
                ack = await js.publish_async(
                    site_subject(self.subject, item.event.site),
                    json.dumps(item.event.as_json(with_image=True)).encode(),
                    headers={"Nats-Msg-Id": item.event.id, ORIGIN: self.node_id},
                )
                ack.add_done_callback(self._acked)
                in_flight.append((item.seq, ack, loop.time()))
            if batch:
                after = batch[-1].seq
            sent, failed = self._settled(in_flight, loop.time())
            if sent:
                await self.store.sent(sent)
                self.published += len(sent)
            if failed:
                logger.info("NATS: %d events wait to be sent", len(in_flight))
                for _, ack, _ in in_flight:
                    ack.cancel()
                in_flight.clear()
                after, self._from_outbox = 0, True
                await asyncio.sleep(RETRY_SECONDS)
            elif not batch and not sent:
                wait = PUBLISH_TIMEOUT if in_flight else 1.0
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._wake.wait()

    async def _next(self, after: int, room: int) -> list[StoredEvent]:
        """Up to `room` events after seq `after`: from the outbox until it is read to
        the end, then those the bus handed over (every one committed since the
        pump started, so nothing falls in between)."""
        if room <= 0:
            return []
        if self._from_outbox:
            resets = self._resets
            read = await self.store.outbox(min(room, BATCH), after=after)
            if len(read) < min(room, BATCH) and resets == self._resets:
                self._from_outbox = False  # read to the end, and nothing was dropped since
            return read
        batch: list[StoredEvent] = []
        while self._fresh and len(batch) < room:
            item = self._fresh.popleft()
            self._fresh_images -= len(item.event.image or b"")
            if item.seq > after:
                batch.append(item)
        return batch

    def _settled(
        self, in_flight: deque[tuple[int, asyncio.Future[Any], float]], now: float
    ) -> tuple[list[int], bool]:
        """The seqs acknowledged, oldest first, and whether an ack failed or stalled."""
        sent: list[int] = []
        while in_flight and in_flight[0][1].done():
            seq, ack, _ = in_flight.popleft()
            error = None if ack.cancelled() else ack.exception()
            if isinstance(error, nats.errors.NoRespondersError | NoStreamResponseError):
                raise StreamLost(_why(error))  # the server lost its store: set it up again
            if ack.cancelled() or error is not None:
                return sent, True
            sent.append(seq)
        stalled = bool(in_flight) and now - in_flight[0][2] > PUBLISH_TIMEOUT
        return sent, stalled

    def _acked(self, _: asyncio.Future[Any]) -> None:
        self._wake.set()

    def _up(self) -> bool:
        return self._nc is not None and bool(self._nc.is_connected)

    async def _error(self, exc: Exception) -> None:
        logger.debug("NATS: %s", _why(exc))

    async def _disconnected(self) -> None:
        self.connected.clear()
        logger.warning("NATS: link down; events wait in the outbox")

    async def _reconnected(self) -> None:
        self.connected.set()
        self.wake()
        self._check.set()
        logger.info("NATS: link back")


def site_subject(root: str, site: str | None) -> str:
    """An event's subject: by its site, so that a node takes only its own sites'
    (site ids are letters, digits, - and _: always one subject token)."""
    return f"{root}.network" if site is None else f"{root}.site.{site}"


def _why(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
