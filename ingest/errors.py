"""Camera faults in words a village operator understands, never with credentials."""

from __future__ import annotations

import errno
import re
from urllib.parse import urlsplit

import av.error

from ingest.probe import Answer

_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]*@")


class CameraError(Exception):
    """A camera fault, already phrased for an operator and free of secrets."""


class StreamStalled(CameraError):
    pass


def redact(text: str) -> str:
    """Remove user:password@ from every URL in `text`."""
    return _USERINFO.sub(r"\g<scheme>", text)


def endpoint(url: str) -> str:
    """host:port of a camera URL, for messages (never the path or the password)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    default = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443}.get(parts.scheme)
    try:
        port = parts.port or default
    except ValueError:
        port = None
    return f"{host}:{port}" if port else host


def describe(
    exc: BaseException,
    url: str,
    *,
    connecting: bool,
    elapsed: float,
    timeout: float,
    answer: Answer | None = None,
) -> str:
    """Turn a connect (`connecting`) or read failure into an operator's sentence;
    `answer` is how the server answered a plain RTSP request after an ambiguous
    connect failure (ingest/probe.py)."""
    where = endpoint(url)
    if isinstance(exc, CameraError):
        return str(exc)
    if isinstance(exc, av.error.HTTPUnauthorizedError | av.error.HTTPForbiddenError):
        return "wrong user or password"
    if isinstance(exc, av.error.HTTPNotFoundError):
        return f"no such stream on {where} (check the path)"
    if isinstance(exc, ConnectionRefusedError) or _errno(exc) == errno.ECONNREFUSED:
        return f"connection refused by {where} (camera off, or wrong port)"
    if _errno(exc) in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return f"no route to {where} (network down?)"
    if connecting and answer is not None:
        return {
            Answer.REFUSED: f"connection refused by {where} (camera off, or wrong port)",
            Answer.SILENT: f"no answer from {where}",
            Answer.CLOSED: "camera closed the connection",
            Answer.MUTE: "connected, but no video",
            Answer.JUNK: "not an RTSP camera, or a wrong path",
            Answer.RTSP: "connected, but no video",
        }[answer]
    if connecting and (isinstance(exc, av.error.ExitError) or elapsed >= timeout * 0.9):
        return f"no answer from {where}"  # FFmpeg says "invalid data" for a timeout too
    if isinstance(exc, EOFError | av.error.EOFError):
        return "camera closed the stream"
    if isinstance(exc, av.error.InvalidDataError):
        return f"{where} did not send a video stream"
    return f"cannot read from {where} ({type(exc).__name__})"


def ambiguous(exc: BaseException) -> bool:
    """A connect failure whose exception alone does not say what the camera did."""
    named = (
        CameraError,
        av.error.HTTPUnauthorizedError,
        av.error.HTTPForbiddenError,
        av.error.HTTPNotFoundError,
        ConnectionRefusedError,
    )
    unreachable = (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH)
    return not isinstance(exc, named) and _errno(exc) not in unreachable


def _errno(exc: BaseException) -> int | None:
    return exc.errno if isinstance(exc, OSError) else None
