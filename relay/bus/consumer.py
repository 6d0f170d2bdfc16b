"""This node's durable consumer on the stream: made, watched, and reset so that
what was in flight when the node stopped comes first."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

logger = logging.getLogger(__name__)

CHECK_SECONDS = 2.0  # how often the stream and this node's consumer are looked for
CHECK_TIMEOUT = 2.0
ACK_WAIT = 30  # s before the server sends an unacknowledged event again


class StreamLost(nats.js.errors.Error):
    """The stream or this node's consumer is gone from the server."""

    def __str__(self) -> str:
        return f"the stream or this node's consumer is gone ({self.args[0] if self.args else ''})"


async def subscribe(
    js: Any,
    subject: str,
    stream: str,
    durable: str,
    cb: Callable[[Msg], Awaitable[None]],
    *,
    filters: list[str] | None = None,
) -> None:
    """Bind to the durable consumer, making it (from the stream's start) if missing;
    `filters`: the subjects it takes (this node's sites'), none: all."""
    await js.subscribe(
        subject,
        durable=durable,
        stream=stream,
        cb=cb,
        manual_ack=True,
        config=ConsumerConfig(
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=ACK_WAIT,
            max_ack_pending=20000,
            filter_subjects=filters or None,
        ),
    )


async def in_flight_first(js: Any, stream: str, durable: str) -> None:
    """What this consumer was given and never acknowledged (the node stopped with it
    in flight) would come again only after ACK_WAIT, behind everything since: reset
    the consumer to its ack floor, so it comes first (events after it that were
    acknowledged come again too; their ids drop them)."""
    try:
        info = await js.consumer_info(stream, durable)
    except nats.js.errors.NotFoundError:
        return  # subscribe makes it
    pending = info.num_ack_pending
    if not pending:
        return
    try:
        await js.reset_consumer(stream, durable)
    except nats.js.errors.APIError as exc:  # a server before 2.14 has no reset
        logger.warning(
            "NATS: %d events in flight at the last stop come after ack_wait (%s)", pending, exc
        )
    else:
        logger.info("NATS: %d events in flight at the last stop come first", pending)


async def watch(
    js: Any, stream: str, durable: str, check: asyncio.Event, up: Callable[[], bool]
) -> None:
    """A server that lost its store (a fresh volume) has neither the stream nor the
    consumer, and says nothing to a node that only receives: look every
    CHECK_SECONDS, and at once when `check` is set (after a reconnect). Raises
    StreamLost if either is gone, so that the session is set up again."""
    while True:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CHECK_SECONDS):
                await check.wait()
        check.clear()
        if not up():
            continue
        try:
            await js.consumer_info(stream, durable, timeout=CHECK_TIMEOUT)
        except nats.js.errors.NotFoundError as exc:
            raise StreamLost(str(exc) or type(exc).__name__) from exc
        except (TimeoutError, nats.errors.Error):
            continue  # the link is down: nats-py reconnects, and we look again
