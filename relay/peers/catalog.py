"""What a peer node shows this node: its sites and cameras with their live states.

One task per peer keeps the peer's catalog feed open (`/api/catalog`, a WebSocket,
with the node-user token): the whole catalog first, then each camera's changes as
they happen; the peer sends only the sites it granted this node. When the feed
drops, the peer is unreachable at once; the task reconnects with capped, jittered
backoff and the first message after a reconnect is a whole catalog again, so
nothing missed in between stays wrong. A ping every `poll` seconds finds a link
that died without a word (no answer within half of it: unreachable).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from relay.config import PeerConfig

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 10.0
MAX_MESSAGE = 16 * 1024 * 1024  # a whole catalog of a few hundred cameras, with room
STEADY = 30.0  # s a feed must have lasted for its next failure to start from the first delay


@dataclass(frozen=True)
class RemoteSite:
    id: str
    name: str
    parent: str | None  # None: a top of what the peer shows this node


@dataclass
class PeerLink:
    peer: PeerConfig
    on_change: Callable[[PeerLink], None]
    sites: list[RemoteSite] = field(default_factory=list)
    cameras: list[dict[str, Any]] = field(default_factory=list)
    reachable: bool = False
    error: str | None = "not asked yet"
    catalogs: int = 0  # whole catalogs taken: one per connection
    _failures: int = 0

    async def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.peer.token}"}
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT)
        async with aiohttp.ClientSession(headers=headers, timeout=timeout) as http:
            while True:
                opened = time.monotonic()
                try:
                    await self.follow(http)
                    error = "the catalog feed closed"
                except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                    error = describe(exc)
                if time.monotonic() - opened > STEADY:
                    self._failures = 0
                self._failed(error)
                await asyncio.sleep(self._delay())

    async def follow(self, http: aiohttp.ClientSession) -> None:
        """Take the peer's catalog and its changes until the feed ends."""
        url = self.peer.url + "/api/catalog"
        async with asyncio.timeout(CONNECT_TIMEOUT):
            ws = await http.ws_connect(url, heartbeat=self.peer.poll, max_msg_size=MAX_MESSAGE)
        async with ws:
            async for message in ws:
                if message.type is not aiohttp.WSMsgType.TEXT:
                    break
                self._take(json.loads(message.data))
                self._report()
        failed = ws.exception()
        if failed is not None:
            raise failed

    def _take(self, message: Any) -> None:
        if not isinstance(message, dict):
            raise ValueError("a catalog message is not an object")
        if isinstance(whole := message.get("catalog"), dict):
            self.sites = flatten(whole.get("sites") or [])
            self.cameras = reports(whole.get("cameras"))
            self.catalogs += 1
            if not self.reachable:
                logger.info("peer %s: reachable, %d cameras", self.peer.id, len(self.cameras))
            self.reachable, self.error = True, None
        elif self.reachable:
            changed = {c["id"]: c for c in reports(message.get("changed"))}
            self.cameras = [changed.pop(c["id"], c) for c in self.cameras]
            self.cameras.extend(changed.values())

    def _failed(self, error: str) -> None:
        if self.reachable or self.error != error:
            logger.warning("peer %s: village node unreachable (%s)", self.peer.id, error)
        self.reachable, self.error = False, error
        self._failures += 1
        self._report()

    def _report(self) -> None:
        try:
            self.on_change(self)
        except Exception:  # a bad report must not end the link
            logger.exception("peer %s: could not take its catalog", self.peer.id)

    def _delay(self) -> float:
        base = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** min(self._failures - 1, 10))
        return float(base * random.uniform(0.5, 1.0))


def reports(cameras: Any) -> list[dict[str, Any]]:
    """The camera objects of a catalog message (anything else is left out)."""
    if not isinstance(cameras, list):
        return []
    return [c for c in cameras if isinstance(c, dict) and isinstance(c.get("id"), str)]


def describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return "no answer"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"the catalog feed answered {exc.status}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "connection refused or no route"
    return str(exc) or type(exc).__name__


def flatten(tree: list[Any], parent: str | None = None) -> list[RemoteSite]:
    found: list[RemoteSite] = []
    for node in tree:
        if isinstance(node, dict) and isinstance(node.get("id"), str):
            found.append(RemoteSite(node["id"], str(node.get("name") or node["id"]), parent))
            found.extend(flatten(node.get("children") or [], node["id"]))
    return found
