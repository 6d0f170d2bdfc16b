"""A refused request: a status and one line saying why, never a traceback.

Any room may raise it; only web/ turns it into an HTTP answer.
"""

from __future__ import annotations


class Refused(Exception):
    """Raised anywhere a request cannot be served; the app's middleware answers it."""

    def __init__(self, status: int, reason: str, retry_after: int | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.retry_after = retry_after
