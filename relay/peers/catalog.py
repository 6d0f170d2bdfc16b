"""What a peer node shows this node: its sites and cameras with their live states.

One task per peer asks the peer's API (`/api/sites`, `/api/cameras`, with the
node-user token) every `poll` seconds; the peer answers only within the sites it
granted this node. A peer that does not answer is unreachable until it answers
again: the retries back off (capped, jittered) and never block anything else.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from relay.config import PeerConfig

logger = logging.getLogger(__name__)

REQUEST_TIMEOUT = 5.0
BACKOFF_MAX = 10.0


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
    polls: int = 0
    _failures: int = 0

    async def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.peer.token}"}
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
        async with aiohttp.ClientSession(headers=headers, timeout=timeout) as http:
            while True:
                await self.poll_once(http)
                await asyncio.sleep(self._delay())

    async def poll_once(self, http: aiohttp.ClientSession) -> None:
        try:
            tree = await self._get(http, "/api/sites")
            cameras = await self._get(http, "/api/cameras")
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            self._failed(describe(exc))
        else:
            self.sites = flatten(tree)
            self.cameras = [c for c in cameras if isinstance(c, dict) and "id" in c]
            if not self.reachable:
                logger.info("peer %s: reachable, %d cameras", self.peer.id, len(self.cameras))
            self.reachable, self.error, self._failures = True, None, 0
        self.polls += 1
        try:
            self.on_change(self)
        except Exception:  # a bad report must not end the link
            logger.exception("peer %s: could not take its catalog", self.peer.id)

    async def _get(self, http: aiohttp.ClientSession, path: str) -> list[Any]:
        async with http.get(self.peer.url + path) as response:
            if response.status != 200:
                raise ValueError(f"{path} answered {response.status}")
            found = await response.json()
        if not isinstance(found, list):
            raise ValueError(f"{path} is not a list")
        return found

    def _failed(self, error: str) -> None:
        if self.reachable or self.error != error:
            logger.warning("peer %s: village node unreachable (%s)", self.peer.id, error)
        self.reachable, self.error = False, error
        self._failures += 1

    def _delay(self) -> float:
        if not self._failures:
            return self.peer.poll
        base = min(BACKOFF_MAX, 0.5 * 2 ** min(self._failures, 10))
        return float(min(self.peer.poll, base) * random.uniform(0.5, 1.0))


def describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer"
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
