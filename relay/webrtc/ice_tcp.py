"""ICE over TCP (`webrtc.tcp_port`) for viewers whose UDP is blocked.

Every session offers a passive TCP host candidate on the node's one TCP port (RFC
6544); a browser that cannot reach the UDP candidates connects to it (its own
candidates are "active") and sends its checks, DTLS and SRTP over that connection,
each datagram framed with a 16-bit length (RFC 4571). The first frame of a
connection must be a STUN binding request: the local part of its USERNAME names
the session's candidate, which then owns the connection. To aioice the candidate
is one more StunProtocol whose transport writes frames to the connection of the
address it sends to.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from typing import Any

from relay.webrtc.udp_mux import stun_local_ufrag

logger = logging.getLogger(__name__)

Address = tuple[str, int]
MAX_FRAME = 0xFFFF
MAX_PENDING = 4 * 1024 * 1024  # bytes a connection may hold unsent before it is dropped
FIRST_FRAME_SECONDS = 10.0  # a connection that names no session by then is closed


class TcpCandidateTransport(asyncio.DatagramTransport):
    """One session's passive TCP candidate: datagrams to the connections it owns."""

    def __init__(self, server: IceTcpServer, protocol: Any, address: Address) -> None:
        super().__init__()
        self.server = server
        self.protocol = protocol
        self.address = address
        self.links: dict[Address, TcpLink] = {}
        self._closing = False

    def ufrag(self) -> str | None:
        receiver = getattr(self.protocol, "receiver", None)
        return getattr(receiver, "local_username", None)

    def sendto(self, data: Any, addr: Any = None) -> None:
        link = self.links.get((addr[0], addr[1])) if addr else None
        if link is not None and not self._closing:
            link.send(bytes(data))  # a passive candidate cannot open a connection

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.address if name == "sockname" else default

    def is_closing(self) -> bool:
        return self._closing

    def get_write_buffer_size(self) -> int:
        return 0

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self.server.candidates.discard(self)
        for link in list(self.links.values()):
            link.close()
        asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def abort(self) -> None:
        self.close()


class TcpLink(asyncio.Protocol):
    """One browser's TCP connection, carrying RFC 4571 frames."""

    def __init__(self, server: IceTcpServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.peer: Address = ("", 0)
        self.owner: TcpCandidateTransport | None = None
        self.buffer = b""
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer = (peer[0], peer[1])
        self._deadline = asyncio.get_running_loop().call_later(FIRST_FRAME_SECONDS, self._unclaimed)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data
        at = 0
        while len(buffer) - at >= 2:
            (size,) = struct.unpack_from("!H", buffer, at)
            if len(buffer) - at - 2 < size:
                break
            frame = buffer[at + 2 : at + 2 + size]
            at += 2 + size
            self._frame(frame)
            if self.transport is None or self.transport.is_closing():
                return
        self.buffer = buffer[at:]

    def _frame(self, frame: bytes) -> None:
        owner = self.owner
        if owner is None:
            ufrag = stun_local_ufrag(frame)
            owner = self.server.candidate_for(ufrag) if ufrag else None
            if owner is None:
                self.close()  # not a check for a session of ours
                return
            self.owner = owner
            owner.links[self.peer] = self
            if self._deadline is not None:
                self._deadline.cancel()
        owner.protocol.datagram_received(frame, self.peer)

    def send(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing() or len(data) > MAX_FRAME:
            return
        if transport.get_write_buffer_size() > MAX_PENDING:
            logger.info("ICE-TCP viewer %s:%d cannot keep up: dropped", *self.peer)
            self.close()
            return
        transport.write(struct.pack("!H", len(data)) + data)

    def _unclaimed(self) -> None:
        if self.owner is None:
            self.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        owner, self.owner = self.owner, None
        if owner is not None and owner.links.get(self.peer) is self:
            del owner.links[self.peer]
        self.transport = None


class IceTcpServer:
    """The node's one ICE-TCP port: a listening socket per local address, opened
    at the first candidate for it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.candidates: set[TcpCandidateTransport] = set()
        self.servers: dict[str, asyncio.Server] = {}
        self._lock = asyncio.Lock()

    def candidate_for(self, ufrag: str) -> TcpCandidateTransport | None:
        return next((c for c in self.candidates if c.ufrag() == ufrag), None)

    async def candidate(self, protocol: Any, address: str) -> TcpCandidateTransport:
        """A passive TCP candidate on `address` for this aioice protocol."""
        async with self._lock:
            if address not in self.servers:
                loop = asyncio.get_running_loop()
                self.servers[address] = await loop.create_server(
                    lambda: TcpLink(self), address, self.port
                )
                logger.info("ICE over TCP on %s:%d", address, self.port)
        transport = TcpCandidateTransport(self, protocol, (address, self.port))
        self.candidates.add(transport)
        protocol.connection_made(transport)
        return transport

    def close(self) -> None:
        for server in self.servers.values():
            server.close()
        self.servers.clear()
