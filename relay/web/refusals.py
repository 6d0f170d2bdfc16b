"""Refusals as HTTP answers: one line of text, never the request echoed back."""

from __future__ import annotations

from aiohttp import web

from relay.refusal import Refused


def refuse(status: int, reason: str, **headers: str) -> web.Response:
    return web.Response(status=status, text=reason + "\n", headers=headers)


def answer(refused: Refused) -> web.Response:
    headers = {"Retry-After": str(refused.retry_after)} if refused.retry_after else {}
    return refuse(refused.status, refused.reason, **headers)
