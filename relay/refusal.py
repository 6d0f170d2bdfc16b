"""A refused request: a status and one line saying why, never a traceback."""

from __future__ import annotations

from aiohttp import web


class Refused(Exception):
    """Raised anywhere a request cannot be served; the app's middleware answers it."""

    def __init__(self, status: int, reason: str, retry_after: int | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.retry_after = retry_after

    def response(self) -> web.Response:
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after else {}
        return refuse(self.status, self.reason, **headers)


def refuse(status: int, reason: str, **headers: str) -> web.Response:
    return web.Response(status=status, text=reason + "\n", headers=headers)
