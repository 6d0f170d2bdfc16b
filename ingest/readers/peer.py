"""A camera of another node: its HTTP stream (ingest/wire.py), read in a thread.

`peer+http://node:TOKEN@HOST:PORT/api/cameras/ID/stream?stream=sub` (or
`peer+https://`): the token travels as the URL's password so that it is redacted
wherever a camera URL is, and is sent as a Bearer token, never in the path.
"""

from __future__ import annotations

import socket
import ssl
import time
from urllib.parse import unquote, urlsplit

from ingest.errors import CameraError
from ingest.packet import MediaPacket, StreamInfo
from ingest.readers.base import POLL_SECONDS
from ingest.wire import FrameBuffer, WireError, parse_info, parse_packet

UNREACHABLE = "village node unreachable"
MAX_HEADER = 16 * 1024


class PeerReader:
    def __init__(self, url: str, *, connect_timeout: float) -> None:
        parts = urlsplit(url)
        secure = parts.scheme == "peer+https"
        host, port = parts.hostname or "", parts.port or (443 if secure else 80)
        token = unquote(parts.password or "")
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        deadline = time.monotonic() + connect_timeout
        try:
            sock = socket.create_connection((host, port), timeout=connect_timeout)
        except OSError:
            raise CameraError(UNREACHABLE) from None
        if secure:
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
        self._sock = sock
        self._frames = FrameBuffer()
        try:
            request = (
                f"GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\n"
                f"Authorization: Bearer {token}\r\n\r\n"
            )
            sock.sendall(request.encode())
            self._read_head(deadline)
            self.info: StreamInfo = self._first_info(deadline)
        except BaseException:
            sock.close()
            raise

    def _recv(self, timeout: float) -> bytes | None:
        """Some bytes, or None when none came within `timeout`."""
        self._sock.settimeout(max(0.01, timeout))
        try:
            data = self._sock.recv(256 * 1024)
        except TimeoutError:
            return None
        except OSError:
            raise CameraError(UNREACHABLE) from None
        if not data:
            raise EOFError
        return data

    def _read_head(self, deadline: float) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            if time.monotonic() > deadline or len(head) > MAX_HEADER:
                raise CameraError("the village node did not answer the stream request")
            data = self._recv(deadline - time.monotonic())
            head += data or b""
        head, _, rest = head.partition(b"\r\n\r\n")
        status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        fields = status_line.split(" ", 2)
        status = int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else 0
        if status != 200:
            reason = rest.decode("utf-8", "replace").strip().splitlines()[:1]
            raise CameraError(f"village node answered {status}: {''.join(reason)[:200]}")
        self._frames.feed(rest)

    def _first_info(self, deadline: float) -> StreamInfo:
        while True:
            frame = self._next_frame()
            if frame is not None:
                if frame[:1] != b"I":
                    raise CameraError("the village node sent no stream facts")
                return parse_info(frame)
            if time.monotonic() > deadline:
                raise CameraError("the village node's camera is not sending")
            data = self._recv(deadline - time.monotonic())
            if data:
                self._frames.feed(data)

    def _next_frame(self) -> bytes | None:
        try:
            return self._frames.next_frame()
        except WireError as exc:
            raise CameraError(f"the village node sent a broken stream: {exc}") from None

    def read(self) -> MediaPacket | None:
        while True:
            frame = self._next_frame()
            if frame is not None:
                break
            data = self._recv(POLL_SECONDS)
            if data is None:
                return None
            self._frames.feed(data)
        try:
            if frame[:1] == b"I":
                self.info = parse_info(frame)  # the camera reconnected with new facts
                return None
            return parse_packet(frame, time.monotonic())
        except WireError as exc:
            raise CameraError(f"the village node sent a broken stream: {exc}") from None

    def close(self) -> None:
        self._sock.close()
