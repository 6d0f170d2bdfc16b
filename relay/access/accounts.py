"""Accounts: who a request comes from (session cookie or Bearer token), and logins.

Users are in the config (password hashes only). Browser sessions and API tokens
are random secrets kept as hashes in SQLite, so they outlive a restart and a
stolen database holds nothing usable. Failed logins are counted per address
(then refused for a while) and per user (then slowed down and taken one at a
time, so an attacker cannot lock the real user out nor guess in parallel); an
attempt counts from the moment it starts, so concurrent guesses cannot all pass.

When a credential's access ends or changes (logout, revocation, expiry, a user
removed or given another role or sites by a reload), every listener in
`on_credentials_ended` is told its hash at once: the composition root ends the
viewing sessions and event feeds opened with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from relay.access.logins import LoginLimiter
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

logger = logging.getLogger(__name__)

Via = Literal["session", "token", "node-token"]
RANKS = {"viewer": 1, "operator": 2, "node": 2, "officer": 3, "admin": 4}  # who yields to whom
EXPIRY_CHECK_MAX = 60.0  # s between looks at session expiry, at most
CredentialsEnded = Callable[[frozenset[str]], Awaitable[None]]


@dataclass(frozen=True)
class User:
    name: str
    role: str
    sites: frozenset[str]  # every site this user may see: the subtrees of their sites
    via: Via
    credential: str  # the session or token hash it came with
    team: str | None = None  # a patrol login's team

    def sees(self, site_id: str) -> bool:
        return site_id in self.sites

    @property
    def rank(self) -> int:
        return RANKS.get(self.role, 0)


class Accounts:
    def __init__(self, config: Config, db: Database) -> None:
        self.db = db
        self.config = config
        self.on_credentials_ended: list[CredentialsEnded] = []
        self._users: dict[str, UserConfig] = {}
        self._node_tokens: dict[str, UserConfig] = {}
        self._scopes: dict[str, tuple[str, frozenset[str], str | None]] = {}
        self._sessions: dict[str, tuple[str, float]] = {}  # hash -> (user, expires)
        self._tokens: dict[str, tuple[int, str]] = {}  # hash -> (id, user), live ones
        self._limiter = LoginLimiter(config.auth)
        self._sessions_changed = asyncio.Event()
        self._dummy_hash = hash_password(new_secret())  # for unknown names: same cost
        self.set_users(config)

    def set_users(self, config: Config) -> frozenset[str]:
        """Take the users of a (re)loaded config; return the credentials whose access
        ended (a removed user, a replaced node token) or changed (another role, other
        sites): what was opened with them must end. Sessions of removed users end."""
        old_scopes, old_node_tokens = self._scopes, self._node_tokens
        self.config = config
        self._limiter.auth = config.auth
        # A node user is another node, never a person: it has no login, only its token.
        self._users = {u.name: u for u in config.users if u.password_hash and u.role != "node"}
        self._node_tokens = {u.token_hash: u for u in config.users if u.token_hash}
        every_site = frozenset(s.id for s in config.sites)
        self._scopes = {  # name -> (role, the sites they see), worked out once, not per request
            u.name: (u.role, every_site if u.role == "admin" else config.subtree(u.sites), u.team)
            for u in config.users
        }
        changed = {n for n, scope in old_scopes.items() if self._scopes.get(n) != scope}
        ended = {h for h, u in old_node_tokens.items() if h not in self._node_tokens}
        ended |= {h for h, (name, _) in self._sessions.items() if name in changed}
        ended |= {h for h, (_, name) in self._tokens.items() if name in changed}
        ended |= {h for h, u in old_node_tokens.items() if u.name in changed}
        known = set(self._scopes)
        self._sessions = {h: s for h, s in self._sessions.items() if s[0] in known}
        self._tokens = {h: t for h, t in self._tokens.items() if t[1] in known}
        return frozenset(ended)

    async def reload(self, config: Config) -> None:
        """set_users, then tell the listeners whose access ended or changed."""
        await self._ended(self.set_users(config), "the config changed")

    async def _ended(self, credentials: frozenset[str], why: str) -> None:
        if not credentials:
            return
        logger.info("access ended for %d credential(s): %s", len(credentials), why)
        for listener in self.on_credentials_ended:
            try:
                await listener(credentials)
            except Exception:  # one listener's failure must not keep access for another
                logger.exception("a listener failed to end access (%s)", why)

    def still_valid(self, user: User) -> bool:
        """Whether `user`, identified a moment ago, would still be identified so now
        (for work that began before an await: a new viewing session, a feed)."""
        digest = user.credential
        if user.via == "session":
            found = self._sessions.get(digest)
            live = found is not None and found[1] >= time.time()
        elif user.via == "token":
            live = digest in self._tokens
        else:
            live = digest in self._node_tokens
        return live and self._user(user.name, user.via, digest) == user

    async def prune(self) -> None:
        """End expired sessions (what was opened with them too), in memory and on disk."""
        now = time.time()
        expired = frozenset(h for h, s in self._sessions.items() if s[1] < now)
        for digest in expired:
            del self._sessions[digest]
        await self.db.execute("DELETE FROM sessions WHERE expires < ?", (now,))
        await self._ended(expired, "sessions expired")

    async def watch_expiry(self) -> None:
        """Runs for ever: ends each session when it expires, in use or not."""
        while True:
            soonest = min((s[1] for s in self._sessions.values()), default=math.inf)
            wait = min(EXPIRY_CHECK_MAX, max(0.0, soonest - time.time()))
            self._sessions_changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._sessions_changed.wait()
            if any(s[1] < time.time() for s in self._sessions.values()):
                try:
                    await self.prune()
                except Exception:  # the database, say: tried again at the next look
                    logger.exception("could not end expired sessions")
                    await asyncio.sleep(1)

    async def open(self) -> None:
        now = time.time()
        await self.db.execute("DELETE FROM sessions WHERE expires < ?", (now,))
        for row in await self.db.fetch("SELECT hash, user, expires FROM sessions"):
            self._sessions[row["hash"]] = (row["user"], row["expires"])
        for row in await self.db.fetch("SELECT id, user, hash FROM tokens WHERE revoked IS NULL"):
            self._tokens[row["hash"]] = (row["id"], row["user"])
        self.set_users(self.config)

    def _user(self, name: str, via: Via, credential: str) -> User | None:
        scope = self._scopes.get(name)
        return None if scope is None else User(name, scope[0], scope[1], via, credential, scope[2])

    # --- logins --------------------------------------------------------------

    async def login(self, name: str, password: str, address: str) -> tuple[str, User]:
        """A new session secret for a right password; Refused otherwise."""
        async with self._limiter.attempt(name, address) as attempt:
            user_config = self._users.get(name)
            stored = user_config.password_hash if user_config else None
            ok = await asyncio.to_thread(verify_password, password, stored or self._dummy_hash)
            if not (ok and stored):
                raise Refused(401, "wrong name or password")
            attempt.succeeded()
        secret = new_secret()
        digest = hash_token(secret)
        expires = time.time() + self.config.auth.session_hours * 3600
        await self.db.insert(
            "INSERT INTO sessions (hash, user, created, expires, address) VALUES (?, ?, ?, ?, ?)",
            (digest, name, time.time(), expires, address),
        )
        self._sessions[digest] = (name, expires)
        self._sessions_changed.set()
        user = self._user(name, "session", digest)
        assert user is not None
        return secret, user

    async def logout(self, user: User) -> None:
        """A session ends (and what was opened with it); a token lives on."""
        if user.via == "session":
            self._sessions.pop(user.credential, None)
            await self.db.execute("DELETE FROM sessions WHERE hash = ?", (user.credential,))
            await self._ended(frozenset((user.credential,)), "logged out")

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

    @staticmethod
    def may_make_tokens(user: User) -> None:
        """Only a person logged in with a password makes tokens: a token (stolen,
        say) cannot make others that would outlive its own revocation."""
        if user.via != "session":
            raise Refused(403, "tokens are made by a person logged in with a password")

    async def create_token(self, user: User, name: str) -> tuple[int, str]:
        self.may_make_tokens(user)
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

    async def revoke_token(self, user: User, token_id: int) -> bool:
        """Revoke a live token of `user`'s (an admin's: anyone's), and end what was
        opened with it; False when there is no such token."""
        for digest, (tid, owner) in list(self._tokens.items()):
            if tid == token_id and (owner == user.name or user.role == "admin"):
                del self._tokens[digest]
                await self.db.execute(
                    "UPDATE tokens SET revoked = ? WHERE id = ?", (time.time(), token_id)
                )
                await self._ended(frozenset((digest,)), "token revoked")
                return True
        return False
