"""How many logins may be tried, and how fast: per address and per name.

An attempt is counted the moment it starts, before its password is checked, so
that concurrent guesses see each other (40 at once are not all judged); a right
password then takes its own attempt back and clears its name's count, never the
address's (one good login between guesses resets nothing for the guesser).
Past its limit an address is refused for a while (429); a name is slowed down and
its attempts taken one at a time, so guesses from many addresses cannot run in
parallel either, while the real user, from their own address, still gets in.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator

from relay.config import AuthConfig
from relay.refusal import Refused

TRACKED_KEYS = 10_000  # failed-login counters kept at most (oldest forgotten first)
NAME_QUEUE = 2  # attempts for a name past its limit that may wait their turn; more: 429
SLOWEST = 5.0  # s an attempt past its name's limit waits, at most


class FailureCounter:
    """Recent failures per key within a sliding window, in bounded memory."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def count(self, key: str, now: float) -> int:
        times = self._failures.get(key)
        if times is None:
            return 0
        while times and now - times[0] > self.window:
            times.popleft()
        if not times:
            del self._failures[key]
            return 0
        return len(times)

    def oldest(self, key: str) -> float:
        times = self._failures.get(key)
        return times[0] if times else 0.0

    def add(self, key: str, now: float) -> None:
        self._failures.setdefault(key, deque()).append(now)
        self._failures.move_to_end(key)
        while len(self._failures) > TRACKED_KEYS:
            self._failures.popitem(last=False)

    def clear(self, key: str) -> None:
        self._failures.pop(key, None)

    def discard(self, key: str, at: float) -> None:
        """Forget the one failure added at `at` (an attempt that turned out right)."""
        times = self._failures.get(key)
        if times is not None:
            with contextlib.suppress(ValueError):
                times.remove(at)


class Attempt:
    """One login attempt; `succeeded()` once its password proved right."""

    def __init__(self) -> None:
        self.ok = False

    def succeeded(self) -> None:
        self.ok = True


class LoginLimiter:
    def __init__(self, auth: AuthConfig) -> None:
        self.auth = auth
        window = auth.login_window_minutes * 60
        self.by_address = FailureCounter(window)
        self.by_name = FailureCounter(window)
        self._turns: dict[str, asyncio.Lock] = {}
        self._queued: dict[str, int] = {}  # name -> attempts holding or awaiting its turn

    @contextlib.asynccontextmanager
    async def attempt(self, name: str, address: str) -> AsyncIterator[Attempt]:
        """Counts an attempt as failed unless it calls `succeeded()`; Refused (429)
        when the address is past its limit or too many wait for the name's turn."""
        now = time.monotonic()
        if self.by_address.count(address, now) >= self.auth.login_failures_per_address:
            wait = self.by_address.oldest(address) + self.by_address.window - now
            raise Refused(429, "too many failed logins from here", max(1, round(wait)))
        excess = self.by_name.count(name, now) - self.auth.login_failures_per_user
        if excess >= 0 and self._queued.get(name, 0) > NAME_QUEUE:
            raise Refused(429, "too many logins for this name at once", round(SLOWEST))
        # No await between the checks above and this: concurrent attempts count.
        self.by_address.add(address, now)
        self.by_name.add(name, now)
        attempt = Attempt()
        try:
            if excess < 0:
                yield attempt
            else:
                async with self._turn(name):
                    await asyncio.sleep(min(SLOWEST, 0.25 * 2 ** min(excess, 5)))
                    yield attempt
        finally:
            if attempt.ok:
                self.by_name.clear(name)
                self.by_address.discard(address, now)

    @contextlib.asynccontextmanager
    async def _turn(self, name: str) -> AsyncIterator[None]:
        lock = self._turns.setdefault(name, asyncio.Lock())
        self._queued[name] = self._queued.get(name, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._queued[name] -= 1
            if not self._queued[name]:
                del self._queued[name], self._turns[name]
