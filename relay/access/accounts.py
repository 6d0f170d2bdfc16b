"""Accounts: who a request comes from (session cookie or Bearer token), and logins.

Users are in the config (password hashes only). Browser sessions and API tokens
are random secrets kept as hashes in SQLite, so they outlive a restart and a
stolen database holds nothing usable. Failed logins are counted per address
(then refused for a while) and per user (then slowed down, so an attacker cannot
lock the real user out).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Literal

from relay.access.passwords import hash_password, hash_token, new_secret, verify_password
from relay.config import Config, UserConfig
from relay.db import Database
from relay.refusal import Refused

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    hash TEXT PRIMARY KEY, user TEXT NOT NULL, created REAL NOT NULL,
    expires REAL NOT NULL, address TEXT
);
CREATE TABLE IF NOT EXISTS tokens (
    id INTEGER PRIMARY KEY, user TEXT NOT NULL, name TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE, created REAL NOT NULL, last_used REAL, revoked REAL
);
"""

Via = Literal["session", "token", "node-token"]
TRACKED_KEYS = 10_000  # failed-login counters kept at most (oldest forgotten first)


@dataclass(frozen=True)
class User:
    name: str
    role: str
    sites: frozenset[str]  # every site this user may see: the subtrees of their sites
    via: Via
    credential: str  # the session or token hash it came with

    def sees(self, site_id: str) -> bool:
        return site_id in self.sites


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


class Accounts:
    def __init__(self, config: Config, db: Database) -> None:
        self.db = db
        self.config = config
        self._users: dict[str, UserConfig] = {}
        self._node_tokens: dict[str, UserConfig] = {}
        self._scopes: dict[str, tuple[str, frozenset[str]]] = {}
        self._sessions: dict[str, tuple[str, float]] = {}  # hash -> (user, expires)
        self._tokens: dict[str, tuple[int, str]] = {}  # hash -> (id, user), live ones
        window = config.auth.login_window_minutes * 60
        self._by_address = FailureCounter(window)
        self._by_user = FailureCounter(window)
        self._dummy_hash = hash_password(new_secret())  # for unknown names: same cost
        self.set_users(config)

    def set_users(self, config: Config) -> None:
        """Take the users of a (re)loaded config; sessions of removed users end."""
        self.config = config
        # A node user is another node, never a person: it has no login, only its token.
        self._users = {u.name: u for u in config.users if u.password_hash and u.role != "node"}
        self._node_tokens = {u.token_hash: u for u in config.users if u.token_hash}
        every_site = frozenset(s.id for s in config.sites)
        self._scopes = {  # name -> (role, the sites they see), worked out once, not per request
            u.name: (u.role, every_site if u.role == "admin" else config.subtree(u.sites))
            for u in config.users
        }
        known = set(self._scopes)
        self._sessions = {h: s for h, s in self._sessions.items() if s[0] in known}
        self._tokens = {h: t for h, t in self._tokens.items() if t[1] in known}

    async def prune(self) -> None:
        """Forget expired sessions, in memory and on disk."""
        now = time.time()
        self._sessions = {h: s for h, s in self._sessions.items() if s[1] >= now}
        await self.db.execute("DELETE FROM sessions WHERE expires < ?", (now,))

    async def open(self) -> None:
        await self.prune()
        for row in await self.db.fetch("SELECT hash, user, expires FROM sessions"):
            self._sessions[row["hash"]] = (row["user"], row["expires"])
        for row in await self.db.fetch("SELECT id, user, hash FROM tokens WHERE revoked IS NULL"):
            self._tokens[row["hash"]] = (row["id"], row["user"])
        self.set_users(self.config)

    def _user(self, name: str, via: Via, credential: str) -> User | None:
        scope = self._scopes.get(name)
        return None if scope is None else User(name, scope[0], scope[1], via, credential)

    # --- logins --------------------------------------------------------------

    async def login(self, name: str, password: str, address: str) -> tuple[str, User]:
        """A new session secret for a right password; Refused otherwise."""
        now = time.monotonic()
        auth = self.config.auth
        if self._by_address.count(address, now) >= auth.login_failures_per_address:
            wait = self._by_address.oldest(address) + self._by_address.window - now
            raise Refused(429, "too many failed logins from here", max(1, round(wait)))
        excess = self._by_user.count(name, now) - auth.login_failures_per_user
        if excess >= 0:
            await asyncio.sleep(min(5.0, 0.25 * 2 ** min(excess, 5)))  # slowed, not locked
        user_config = self._users.get(name)
        stored = user_config.password_hash if user_config else None
        ok = await asyncio.to_thread(verify_password, password, stored or self._dummy_hash)
        if not (ok and stored):
            self._by_address.add(address, now)
            self._by_user.add(name, now)
            raise Refused(401, "wrong name or password")
        self._by_address.clear(address)
        secret = new_secret()
        digest = hash_token(secret)
        expires = time.time() + auth.session_hours * 3600
        await self.db.insert(
            "INSERT INTO sessions (hash, user, created, expires, address) VALUES (?, ?, ?, ?, ?)",
            (digest, name, time.time(), expires, address),
        )
        self._sessions[digest] = (name, expires)
        user = self._user(name, "session", digest)
        assert user is not None
        return secret, user

    async def logout(self, user: User) -> None:
        if user.via == "session":
            self._sessions.pop(user.credential, None)
            await self.db.execute("DELETE FROM sessions WHERE hash = ?", (user.credential,))

    def from_session(self, secret: str) -> User | None:
        digest = hash_token(secret)
        found = self._sessions.get(digest)
        if found is None or found[1] < time.time():
            return None
        return self._user(found[0], "session", digest)

    def from_token(self, secret: str) -> User | None:
        digest = hash_token(secret)
        node = self._node_tokens.get(digest)
        if node is not None:
            return self._user(node.name, "node-token", digest)
        found = self._tokens.get(digest)
        return self._user(found[1], "token", digest) if found else None

    # --- API tokens ----------------------------------------------------------

    async def create_token(self, user: User, name: str) -> tuple[int, str]:
        secret = "vw_" + new_secret()
        digest = hash_token(secret)
        token_id = await self.db.insert(
            "INSERT INTO tokens (user, name, hash, created) VALUES (?, ?, ?, ?)",
            (user.name, name, digest, time.time()),
        )
        self._tokens[digest] = (token_id, user.name)
        return token_id, secret

    async def list_tokens(self, user: User) -> list[dict[str, object]]:
        rows = await self.db.fetch(
            "SELECT id, user, name, created, revoked FROM tokens WHERE ? OR user = ? ORDER BY id",
            (user.role == "admin", user.name),
        )
        return [dict(row) for row in rows]

    async def revoke_token(self, user: User, token_id: int) -> str | None:
        """The revoked token's hash, or None when `user` has no such live token."""
        for digest, (tid, owner) in list(self._tokens.items()):
            if tid == token_id and (owner == user.name or user.role == "admin"):
                del self._tokens[digest]
                await self.db.execute(
                    "UPDATE tokens SET revoked = ? WHERE id = ?", (time.time(), token_id)
                )
                return digest
        return None
