"""What an RTSP server says to a plain OPTIONS request, asked after FFmpeg failed
to open it: FFmpeg reports a timeout, garbage and a closed connection alike
("invalid data"), so the operator would be sent to the network when the fault is
the camera. One short extra connection, only after a failed open, in the
camera's own thread.

A server that accepts the connection is on the network: if it then says nothing
(a camera whose media pipeline hangs answers not even OPTIONS while it waits for
pictures), the fault is the camera's, not the network's."""

from __future__ import annotations

import enum
import socket
import threading
import time
from urllib.parse import urlsplit, urlunsplit

SLICE = 0.25  # s one blocking call may take, so a stop is seen quickly


class Answer(enum.StrEnum):
    REFUSED = "refused"
    SILENT = "silent"  # the connection was not even accepted in time
    CLOSED = "closed"  # accepted the connection and closed it without a word
    MUTE = "mute"  # accepted the connection and said nothing in time
    JUNK = "junk"  # answered, but not in RTSP
    RTSP = "rtsp"  # a real RTSP answer: the fault is after the handshake


def probe(url: str, timeout: float, stop: threading.Event) -> Answer | None:
    """How the server at an rtsp:// URL answers OPTIONS within `timeout`; None for
    other schemes, or once `stop` is set."""
    parts = urlsplit(url)
    if parts.scheme != "rtsp" or stop.is_set():
        return None
    try:
        port = parts.port or 554
    except ValueError:
        return None
    deadline = time.monotonic() + timeout
    try:
        conn = socket.create_connection((parts.hostname or "", port), timeout=timeout)
    except ConnectionRefusedError:
        return Answer.REFUSED
    except OSError:
        return Answer.SILENT
    with conn:
        return _ask(conn, _without_credentials(url), deadline, stop)


def _ask(conn: socket.socket, url: str, deadline: float, stop: threading.Event) -> Answer | None:
    heard = b""
    try:
        conn.sendall(f"OPTIONS {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n".encode())
        while len(heard) < 5 and time.monotonic() < deadline and not stop.is_set():
            conn.settimeout(max(0.01, min(SLICE, deadline - time.monotonic())))
            try:
                chunk = conn.recv(64)
            except TimeoutError:
                continue
            if not chunk:
                break
            heard += chunk
    except OSError:  # reset by the server
        return Answer.JUNK if heard else Answer.CLOSED
    if stop.is_set():
        return None
    if not heard:
        return Answer.MUTE if time.monotonic() >= deadline else Answer.CLOSED
    return Answer.RTSP if heard.startswith(b"RTSP/"[: len(heard)]) else Answer.JUNK


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
