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
from collections.abc import Awaitable, Callable
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StreamConfig

from ingest.tasks import cancel_and_wait
from relay.config import NatsConfig
from relay.events import Event
from relay.eventstore import EventStore

logger = logging.getLogger(__name__)

RETRY_SECONDS = 0.5
PUBLISH_TIMEOUT = 2.0
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
        receive: Callable[[Event], Awaitable[bool]],
    ) -> None:
        self.config = config
        self.node_id = node_id
        self.store = store
        self.receive = receive
        self.subject = f"{config.stream}.events"
        self.connected = asyncio.Event()
        self.published = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._nc: Any = None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="nats link")

    async def close(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _run(self) -> None:
        while True:
            try:
                await self._session()
            except NATS_DOWN as exc:
                logger.warning("NATS: %s; retrying", _why(exc))
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
        await js.subscribe(
            self.subject,
            durable=f"node-{self.node_id}",
            stream=self.config.stream,
            cb=self._on_message,
            manual_ack=True,
            config=ConsumerConfig(
                deliver_policy=DeliverPolicy.ALL,
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=30,
                max_ack_pending=20000,
            ),
        )
        self.connected.set()
        logger.info("NATS: connected, stream %s", self.config.stream)
        await self._pump(js)

    async def _ensure_stream(self, js: Any) -> None:
        config = StreamConfig(
            name=self.config.stream,
            subjects=[self.subject],
            max_age=self.config.max_age_days * 86400,
            duplicate_window=120,
        )
        try:
            await js.add_stream(config)
        except nats.js.errors.BadRequestError:
            await js.update_stream(config)  # made by another node, or by an older config

    async def _pump(self, js: Any) -> None:
        """Hand the outbox to JetStream, oldest first, until the outbox is empty."""
        while True:
            batch = await self.store.outbox()
            if not batch:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1):
                        await self._wake.wait()
                continue
            for item in batch:
                payload = json.dumps(item.event.as_json(with_image=True)).encode()
                try:
                    await js.publish(
                        self.subject,
                        payload,
                        timeout=PUBLISH_TIMEOUT,
                        headers={"Nats-Msg-Id": item.event.id},
                    )
                except nats.errors.NoRespondersError:
                    raise  # the stream is gone: set it up again
                except (TimeoutError, nats.errors.Error) as exc:
                    logger.info("NATS: publish waits (%s)", _why(exc))
                    await asyncio.sleep(RETRY_SECONDS)
                    break
                await self.store.sent(item.seq)
                self.published += 1

    async def _on_message(self, msg: Msg) -> None:
        try:
            event = Event.from_json(json.loads(msg.data))
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning("NATS: dropped a malformed event (%s)", type(exc).__name__)
            await msg.ack()
            return
        await self.receive(event)  # stored (or known) before the ack: nothing lost
        await msg.ack()

    async def _error(self, exc: Exception) -> None:
        logger.debug("NATS: %s", _why(exc))

    async def _disconnected(self) -> None:
        self.connected.clear()
        logger.warning("NATS: link down; events wait in the outbox")

    async def _reconnected(self) -> None:
        self.connected.set()
        self.wake()
        logger.info("NATS: link back")


def _why(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
