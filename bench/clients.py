"""Minimal clients of the bench's own, for the processes that share the cores with
the nodes they measure: an RFC 6455 WebSocket reader and an HTTP/1.1 POSTer, each
a fraction of the CPU per message that aiohttp's client takes."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from collections.abc import Callable

CONTENT_LENGTH = re.compile(r"(?im)^content-length:\s*(\d+)")
WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
SEC_KEY = re.compile(r"(?im)^sec-websocket-key:\s*(\S+)")


def _key_of(request: bytes) -> str:
    found = SEC_KEY.search(request.decode("latin-1"))
    assert found, "the handshake request names its Sec-WebSocket-Key"
    return found.group(1)


class DeflateTaken(Exception):
    """The node took the permessage-deflate a feed offered."""


class FeedProtocol(asyncio.Protocol):
    """One feed's WebSocket connection, by hand: the node's frames are unmasked and
    unfragmented (RFC 6455 section 5), and reading them in data_received takes a
    fraction of the CPU per frame that aiohttp's client, or a stream, takes."""

    def __init__(self, request: bytes, on_text: Callable[[bytes], None]) -> None:
        """`request`: the opening handshake (see `handshake_request`); `on_text` is
        given every text frame's payload as it arrives."""
        loop = asyncio.get_running_loop()
        self.request = request
        self.on_text = on_text
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.key = _key_of(request)
        self.transport: asyncio.WriteTransport | None = None
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are no asyncio.Transport; they write all the same
        self.transport = transport  # type: ignore[assignment]
        assert self.transport is not None
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data
        if not self.opened.done():
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buffer
                return
            self.handshake(buffer[:end].decode("latin-1").lower())
            buffer = buffer[end + 4 :]
        at, end = 0, len(buffer)
        while end - at >= 2:
            opcode, size, start = buffer[at] & 0x0F, buffer[at + 1] & 0x7F, at + 2
            if size == 126:
                size, start = int.from_bytes(buffer[at + 2 : at + 4]), at + 4
            elif size == 127:
                size, start = int.from_bytes(buffer[at + 2 : at + 10]), at + 10
            if end < start + size:
                break
            payload, at = buffer[start : start + size], start + size
            if opcode == 0x1:
                self.on_text(payload)
            elif opcode in (0x8, 0x9) and self.transport is not None:
                # a ping gets a pong, a close its close; masked (zero key), as from a client
                reply = 0x88 if opcode == 0x8 else 0x8A
                self.transport.write(bytes((reply, 0x80 | len(payload))) + bytes(4) + payload)
        self.buffer = buffer[at:]

    def handshake(self, head: str) -> None:
        accept = base64.b64encode(hashlib.sha1((self.key + WEBSOCKET_GUID).encode()).digest())
        if "permessage-deflate" in head:  # this reader does not inflate: the feed fails
            self.opened.set_exception(DeflateTaken())
        elif not head.startswith("http/1.1 101") or accept.decode().lower() not in head:
            self.opened.set_exception(ValueError(head.splitlines()[0] if head else "no answer"))
        else:
            self.opened.set_result(None)
            return
        self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed before the handshake"))
        if not self.closed.done():
            self.closed.set_result(None)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class PostProtocol(asyncio.Protocol):
    """One publisher connection, by hand: HTTP/1.1 keep-alive, one request at a time,
    answers with a Content-Length (as every answer of the node has). aiohttp's
    client took about a fifth of a core for 1000 POSTs a second, on the two cores
    the nodes are measured on."""

    def __init__(self) -> None:
        self.transport: asyncio.WriteTransport | None = None
        self.buffer = b""
        self.answer: asyncio.Future[tuple[int, bytes]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data
        end = buffer.find(b"\r\n\r\n")
        if end < 0 or self.answer is None or self.answer.done():
            self.buffer = buffer
            return
        head = buffer[:end].decode("latin-1")
        length = CONTENT_LENGTH.search(head)
        if length is None:
            self.answer.set_exception(ValueError(f"no Content-Length: {head.splitlines()[0]}"))
            return
        total = end + 4 + int(length.group(1))
        if len(buffer) < total:
            self.buffer = buffer
            return
        self.buffer = buffer[total:]
        self.answer.set_result((int(head[9:12]), buffer[end + 4 : total]))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(exc or ConnectionError("closed by the node"))

    async def request(self, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
        """Status and body of the answer to `head` (the request line and headers,
        without Content-Length) with `body`."""
        assert self.transport is not None
        self.answer = asyncio.get_running_loop().create_future()
        self.transport.write(b"%sContent-Length: %d\r\n\r\n%s" % (head, len(body), body))
        return await self.answer
