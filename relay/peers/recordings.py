"""Asking a peer for its recordings on behalf of a user of this node.

A remote camera's recordings, playback sessions, segments and exports stay at
the node that holds the camera; this node forwards each request there with its
node token and the name of the user it asks for (`ON_BEHALF`), so that the peer
audits "node station, on behalf of li" and still serves only the sites it
granted the node. A peer known to be down is refused at once; one that stops
answering is given up after a few seconds: nothing waits on it.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from ingest.readers.peer import UNREACHABLE
from relay.peers.catalog import PeerLink, describe
from relay.peers.channel import SEPARATOR
from relay.peers.network import Network
from relay.refusal import Refused

logger = logging.getLogger(__name__)

ON_BEHALF = "X-On-Behalf-Of"  # a node's request: the user of that node it asks for
CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 15.0  # between two reads of an answer: a segment or an export file
# A JSON answer (a list, a session, an export's row) comes within this, or never;
# media (a segment, an export's file) may take long, but never stalls.
QUICK = aiohttp.ClientTimeout(total=5.0, sock_connect=CONNECT_TIMEOUT)
MEDIA = aiohttp.ClientTimeout(sock_connect=CONNECT_TIMEOUT, sock_read=READ_TIMEOUT)
# What a segment's answer says of it, passed on to the user.
PASSED_HEADERS = ("X-Codec", "X-Segment-Start", "X-Fragment-Start", "X-Fragment-End")


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class PeerRecordings:
    """One HTTP client for every peer's recording routes."""

    def __init__(self, network: Network) -> None:
        self.network = network
        self._http: aiohttp.ClientSession | None = None

    def link_of(self, remote_id: str) -> tuple[PeerLink, str] | None:
        """The peer that holds `remote_id` (PEER.CAMERA or PEER.EXPORT) and its own id."""
        peer, dot, own = remote_id.partition(SEPARATOR)
        link = self.network.links.get(peer)
        return (link, own) if dot and own and link is not None else None

    async def ask(
        self, link: PeerLink, method: str, path: str, on_behalf: str, **kw: Any
    ) -> Answer:
        """The peer's whole answer; a refusal of the peer passed on as it said it."""
        async with self.open(link, method, path, on_behalf, **kw) as response:
            return Answer(response.status, await response.read())

    @contextlib.asynccontextmanager
    async def open(
        self, link: PeerLink, method: str, path: str, on_behalf: str, **kw: Any
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """The peer's answer to read as it comes (an export file); Refused (502/503,
        "village node unreachable") if the peer cannot be reached, and the peer's own
        refusal (4xx) as it said it."""
        if not link.reachable:
            raise Refused(503, f"{UNREACHABLE} ({link.error})", retry_after=5)
        headers = {"Authorization": f"Bearer {link.peer.token}", ON_BEHALF: quote(on_behalf)}
        try:
            async with self._client().request(
                method, link.peer.url + path, headers=headers, **kw
            ) as response:
                if response.status >= 400:
                    reason = (await response.text()).strip() or response.reason or "refused"
                    raise Refused(response.status, f"{reason} (node {link.peer.id})")
                yield response
        except (aiohttp.ClientError, TimeoutError) as exc:
            logger.warning("peer %s: %s %s failed: %s", link.peer.id, method, path, describe(exc))
            raise Refused(502, f"{UNREACHABLE} ({describe(exc)})", retry_after=5) from None

    def _client(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=MEDIA)
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None
