"""Every viewer's media on one UDP port (`webrtc.udp_port`), as MediaMTX and go2rtc do.

A firewall in a village office opens one port, not a range. aioice gives each ICE
host candidate a socket of its own; here each candidate gets a `MuxedTransport`
on a socket shared by every session of that local address instead. A datagram is
handed to the candidate it is for:

- a STUN binding request by the local part of its USERNAME (the session's ICE
  username fragment), and its source address is then that candidate's;
- anything else (STUN answers, DTLS, SRTP) by its source address: the remote
  addresses a candidate sends to or was asked from are its own.

What the candidates send goes out of the shared socket through one DatagramBatch
for all of them: a frame's packets to every viewer in one loop turn's sends.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from typing import Any, cast

from relay.webrtc.udp_batch import DatagramBatch

logger = logging.getLogger(__name__)

STUN_COOKIE = b"\x21\x12\xa4\x42"
BINDING_REQUEST = 0x0001
USERNAME = 0x0006
Address = tuple[str, int]


def stun_local_ufrag(data: bytes) -> str | None:
    """The local ufrag a STUN binding request is for (USERNAME is "local:remote"),
    or None if `data` is no binding request with a USERNAME."""
    if len(data) < 20 or data[4:8] != STUN_COOKIE:
        return None
    kind, length = struct.unpack_from("!HH", data)
    if kind != BINDING_REQUEST:
        return None
    at, end = 20, min(len(data), 20 + length)
    while at + 4 <= end:
        attribute, size = struct.unpack_from("!HH", data, at)
        if at + 4 + size > end:
            return None  # an attribute past the message's end: not a request of ours
        if attribute == USERNAME:
            username = data[at + 4 : at + 4 + size].decode("utf-8", "replace")
            return username.partition(":")[0] or None
        at += 4 + (size + 3) // 4 * 4
    return None


class MuxedTransport(asyncio.DatagramTransport):
    """One ICE candidate's view of the shared socket."""

    def __init__(self, socket: MuxSocket, protocol: Any) -> None:
        super().__init__()
        self.socket = socket
        self.protocol = protocol
        self.addresses: set[Address] = set()
        self._closing = False

    @property
    def shared_batch(self) -> DatagramBatch | None:
        return self.socket.batch

    def ufrag(self) -> str | None:
        receiver = getattr(self.protocol, "receiver", None)
        return getattr(receiver, "local_username", None)

    def sendto(self, data: Any, addr: Any = None) -> None:
        if self._closing or self.socket.transport is None:
            return
        self.socket.claim(tuple(addr[:2]), self)
        self.socket.transport.sendto(data, addr)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "sockname":
            return self.socket.sockname
        return default  # no "socket": nobody may tune or close the shared one

    def is_closing(self) -> bool:
        return self._closing

    def get_write_buffer_size(self) -> int:
        shared = self.socket.transport
        return shared.get_write_buffer_size() if shared is not None else 0  # type: ignore[attr-defined]

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self.socket.forget(self)
        asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def abort(self) -> None:
        self.close()


class MuxSocket(asyncio.DatagramProtocol):
    """The shared socket of one local address, and the candidates on it."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.sockname: Address = ("", 0)
        self.batch: DatagramBatch | None = None
        self.candidates: set[MuxedTransport] = set()
        self.by_address: dict[Address, MuxedTransport] = {}
        self.dropped = 0  # datagrams for no candidate

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's UDP transport is no asyncio.DatagramTransport; it sends all the same
        self.transport = cast(asyncio.DatagramTransport, transport)
        self.sockname = transport.get_extra_info("sockname")[:2]
        self.batch = DatagramBatch(self.transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        addr = (addr[0], addr[1])
        ufrag = stun_local_ufrag(data)
        candidate = self._by_ufrag(ufrag) if ufrag else None
        if candidate is not None:
            self.claim(addr, candidate)
        else:
            candidate = self.by_address.get(addr)
        if candidate is None:
            self.dropped += 1
            return
        candidate.protocol.datagram_received(data, addr)

    def _by_ufrag(self, ufrag: str) -> MuxedTransport | None:
        # A few requests a second per session (checks, consent): a scan is enough.
        return next((c for c in self.candidates if c.ufrag() == ufrag), None)

    def claim(self, addr: Address, candidate: MuxedTransport) -> None:
        owner = self.by_address.get(addr)
        if owner is candidate:
            return
        if owner is not None:
            owner.addresses.discard(addr)
        self.by_address[addr] = candidate
        candidate.addresses.add(addr)

    def forget(self, candidate: MuxedTransport) -> None:
        self.candidates.discard(candidate)
        for addr in candidate.addresses:
            if self.by_address.get(addr) is candidate:
                del self.by_address[addr]
        candidate.addresses.clear()

    def close(self) -> None:
        if self.batch is not None:
            self.batch.close()
        if self.transport is not None:
            self.transport.close()


class UdpMux:
    """The node's one UDP port: a shared socket per local address, bound at the
    first candidate for it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sockets: dict[str, MuxSocket] = {}
        self._binding: dict[str, asyncio.Task[MuxSocket]] = {}

    async def endpoint(self, factory: Any, address: str) -> tuple[MuxedTransport, Any]:
        """What `loop.create_datagram_endpoint(factory, (address, 0))` gives aioice."""
        shared = await self._socket(address)
        protocol = factory()
        transport = MuxedTransport(shared, protocol)
        shared.candidates.add(transport)
        protocol.connection_made(transport)
        return transport, protocol

    async def _socket(self, address: str) -> MuxSocket:
        found = self.sockets.get(address)
        if found is not None:
            return found
        task = self._binding.get(address)
        if task is None:
            task = self._binding[address] = asyncio.get_running_loop().create_task(
                self._bind(address)
            )
        try:
            return await asyncio.shield(task)
        finally:
            if task.done():
                self._binding.pop(address, None)

    async def _bind(self, address: str) -> MuxSocket:
        loop = asyncio.get_running_loop()
        _, shared = await loop.create_datagram_endpoint(MuxSocket, local_addr=(address, self.port))
        self.sockets[address] = shared
        logger.info("WebRTC media of every viewer on UDP %s:%d", address, self.port)
        return shared

    def close(self) -> None:
        for shared in self.sockets.values():
            shared.close()
        self.sockets.clear()


class PortZeroLoop:
    """The loop aioice binds its candidates with, but for port 0 (any port): those
    endpoints are made by `bind`. Everything else is the real loop's."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loop, name)

    async def create_datagram_endpoint(
        self, factory: Any, local_addr: Any = None, **kwargs: Any
    ) -> Any:
        if local_addr is None or local_addr[1] != 0:
            return await self._loop.create_datagram_endpoint(factory, local_addr, **kwargs)
        return await self.bind(factory, local_addr[0], **kwargs)

    async def bind(self, factory: Any, host: str, **kwargs: Any) -> Any:
        raise NotImplementedError


class MuxLoop(PortZeroLoop):
    """Port-0 endpoints are candidates on the mux."""

    def __init__(self, loop: asyncio.AbstractEventLoop, mux: UdpMux) -> None:
        super().__init__(loop)
        self._mux = mux

    async def bind(self, factory: Any, host: str, **kwargs: Any) -> Any:
        return await self._mux.endpoint(factory, host)
