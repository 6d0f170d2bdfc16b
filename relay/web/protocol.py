"""aiohttp's HTTP connection handler, bent in one place: `install()`, once per
process, from the composition root. Checked on the aiohttp versions in CHECKED
(pyproject.toml pins the bound; tests/relay/web/test_protocol.py fails on any other).

- Timeouts aiohttp has not: a request header must be complete within
  HEADER_TIMEOUT of its first byte; a body must keep coming (no pause longer
  than BODY_STALL) and be complete within BODY_TIMEOUT. Without them a client
  that sends half a header, or a header and no body, holds a connection (and a
  handler) for as long as it likes. A connection with no request on it closes
  after IDLE_TIMEOUT (aiohttp's own default is an hour).
- aiohttp's own refusals (a malformed request line or header, answered before
  any middleware runs) are one line naming what is wrong, like the node's own,
  and never echo the request's bytes; its 500 page is one line too.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import aiohttp
from aiohttp import http_exceptions, web_protocol, web_server
from aiohttp.streams import StreamReader
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import Response, StreamResponse

from relay.refusal import Refused

logger = logging.getLogger(__name__)

CHECKED = ("3.14.",)  # aiohttp version prefixes checked
HEADER_TIMEOUT = 10.0
BODY_STALL = 10.0
BODY_TIMEOUT = 60.0
IDLE_TIMEOUT = 75.0
PARSER_REASONS: tuple[tuple[type[Exception], str], ...] = (  # most specific first
    (http_exceptions.BadHttpMethod, "not an HTTP request (unknown method)"),
    (http_exceptions.LineTooLong, "request line or header too long"),
    (http_exceptions.InvalidURLError, "malformed request target"),
    (http_exceptions.BadStatusLine, "malformed request line"),
    (http_exceptions.InvalidHeader, "malformed header"),
    (http_exceptions.PayloadEncodingError, "malformed body framing"),
)
_LATE_REASON = b"the request header did not come in time\n"
_HEADER_LATE = (
    b"HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"X-Content-Type-Options: nosniff\r\nConnection: close\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(_LATE_REASON), _LATE_REASON)
)
_installed = False


def refusal_text(status: int, exc: BaseException | None) -> str:
    """One line for a refusal aiohttp makes itself: from the error's kind, never
    from its message (which quotes the request)."""
    if status == HTTPStatus.INTERNAL_SERVER_ERROR:
        return "internal error: the node could not answer this request"
    for kind, reason in PARSER_REASONS:
        if isinstance(exc, kind):
            return reason
    if isinstance(exc, http_exceptions.HttpProcessingError):
        return "malformed HTTP request"
    try:
        return HTTPStatus(status).phrase.lower()
    except ValueError:
        return "request refused"


class GuardedRequestHandler(web_protocol.RequestHandler):
    """aiohttp's RequestHandler with read timeouts and one-line refusals."""

    __slots__ = ("_body", "_body_progress", "_body_seen", "_body_started", "_guard", "_late")

    def __init__(
        self, manager: web_server.Server, *, keepalive_timeout: float | None = None, **kwargs: Any
    ) -> None:
        idle = IDLE_TIMEOUT if keepalive_timeout is None else keepalive_timeout
        super().__init__(manager, keepalive_timeout=idle, **kwargs)
        self._guard: Any = None  # the armed timer: header or body deadline
        self._body: StreamReader | None = None
        self._body_started = self._body_progress = 0.0
        self._body_seen = 0
        self._late = False

    def data_received(self, data: bytes) -> None:
        if self._late:
            return  # timed out: what still comes is dropped until the answer is out
        requests = self._request_count
        super().data_received(data)
        if self._payload_parser is not None or self._upgraded or self._force_close:
            self._disarm()  # a WebSocket now, or closing: not ours to time
        elif self._request_count > requests:  # a header is complete
            self._disarm()
            payload = self._messages[-1][1] if self._messages else None
            if isinstance(payload, StreamReader) and not payload.is_eof():
                self._time_body(payload)
        elif data and self._guard is None and (self._body is None or self._body.is_eof()):
            self._body = None  # the first bytes of a header
            self._guard = self._loop.call_later(HEADER_TIMEOUT, self._header_late)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _disarm(self) -> None:
        if self._guard is not None:
            self._guard.cancel()
            self._guard = None
        self._body = None

    def _header_late(self) -> None:
        self._guard = None
        if self.transport is None or self._force_close:
            return
        logger.info(
            "%s: request header incomplete after %.0f s: closed", _peer(self), HEADER_TIMEOUT
        )
        if not self._request_in_progress:
            self.transport.write(_HEADER_LATE)
        self.force_close()

    def _time_body(self, payload: StreamReader) -> None:
        self._body = payload
        self._body_started = self._body_progress = self._loop.time()
        self._body_seen = payload.total_bytes
        self._guard = self._loop.call_later(BODY_STALL, self._check_body)

    def _check_body(self) -> None:
        self._guard = None
        payload = self._body
        if payload is None or payload.is_eof() or self.transport is None:
            return
        now = self._loop.time()
        if payload.total_bytes != self._body_seen:
            self._body_seen, self._body_progress = payload.total_bytes, now
        due = min(self._body_progress + BODY_STALL, self._body_started + BODY_TIMEOUT)
        if now < due:
            self._guard = self._loop.call_at(due, self._check_body)
            return
        self._body = None
        logger.info("%s: request body stalled or too slow: closed", _peer(self))
        if not self._request_in_progress:
            self.force_close()
            return
        # The handler waiting for the body hears why (relay/app.py answers 408),
        # and the connection closes once that answer is out.
        self._late = True
        payload.set_exception(Refused(408, "the request body did not come in time"))
        payload.feed_eof()
        self.transport.pause_reading()
        self.close()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> StreamResponse:
        if status == HTTPStatus.INTERNAL_SERVER_ERROR:
            self.log_exception("Error handling request from %s", request.remote, exc_info=exc)
        else:  # a malformed request: the client's business, no traceback in the log
            logger.info("%s: %d %s", request.remote, status, type(exc).__name__)
        if request.writer.output_size > 0:
            raise ConnectionError("a response was begun: no room for an error answer")
        response = Response(
            status=status,
            text=refusal_text(status, exc) + "\n",
            headers={"X-Content-Type-Options": "nosniff"},
        )
        response.force_close()
        return response


def _peer(handler: GuardedRequestHandler) -> str:
    peer = handler.peername
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "?"


def checked() -> bool:
    return aiohttp.__version__.startswith(CHECKED)


def install() -> None:
    """Idempotent: every aiohttp server of this process makes its connections'
    handlers with GuardedRequestHandler (aiohttp's Server looks the class up in
    its module at each connection)."""
    global _installed  # noqa: PLW0603 - the process-wide once; the patch is process-wide
    if _installed:
        return
    _installed = True
    if not checked():
        logger.warning("aiohttp %s is not checked with relay.web.protocol", aiohttp.__version__)
    web_server.RequestHandler = GuardedRequestHandler  # type: ignore[attr-defined]
