"""Request bodies, read whole but never past a limit, with a clear 4xx otherwise."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from relay.refusal import Refused, checked_text, holds_surrogate

MAX_JSON = 16 * 1024


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body (it may arrive in many chunks), or 413 past `limit` bytes."""
    if (request.content_length or 0) > limit:
        raise web.HTTPRequestEntityTooLarge(
            limit, request.content_length or 0, text="body too large\n"
        )
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.content.iter_any():
            size += len(chunk)
            if size > limit:
                raise web.HTTPRequestEntityTooLarge(limit, size, text="body too large\n")
            chunks.append(chunk)
    except web.RequestPayloadError:  # broken chunked framing, a short body, bad gzip
        raise Refused(400, "the request body is malformed") from None
    return b"".join(chunks)


async def read_json(request: web.Request, limit: int = MAX_JSON) -> dict[str, Any]:
    """A JSON object body, or a 4xx that says what is wrong with it."""
    if request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType(text="send Content-Type: application/json\n")
    raw = await read_body(request, limit)
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: [[[[...
        raise web.HTTPBadRequest(text="body is not valid JSON\n") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="body must be a JSON object\n")
    if holds_surrogate(body):  # valid JSON, but no text: every route refuses it here
        raise Refused(400, "body holds a lone surrogate (\\ud800-\\udfff): send valid Unicode")
    return body


def text_field(body: dict[str, Any], key: str, max_len: int, *, any_char: bool = False) -> str:
    """One line of text of 1 to `max_len` characters (relay.text.checked_text);
    `any_char`: taken as it is (a password)."""
    return checked_text(body.get(key), key, max_len, any_char=any_char)


def whole_number(text: str) -> int | None:
    """An id from a path or query: ASCII digits only ('¹'.isdigit() is true too)."""
    if text.isascii() and text.isdigit() and len(text) <= 18:
        return int(text)
    return None


def query_filters(query: Mapping[str, str], columns: tuple[str, ...]) -> dict[str, Any]:
    """`column=value` equality filters and `since`/`until` Unix times from a query."""
    filters: dict[str, Any] = {c: query[c][:200] for c in columns if c in query}
    for key in ("since", "until"):
        if key in query:
            try:
                filters[key] = float(query[key])
            except ValueError:
                raise Refused(400, f"{key} must be a Unix time in seconds") from None
    return filters
