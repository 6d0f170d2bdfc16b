"""Places for viewers: how many sessions the node, a camera and one credential may
have, counted from the moment an offer arrives.

An offer that never connects holds its place for `webrtc.connect_timeout`. So one
credential may have only a few pending at once (`pending_per_credential`, and
`pending_per_credential_camera` for one camera), and a viewer of a higher role
who finds the node or the camera full takes the place of the oldest pending
session of the lowest role below theirs instead of being refused.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from relay.access.accounts import User
from relay.config import WebRtcConfig
from relay.refusal import Refused

RETRY_FULL = 10
RETRY_PENDING = 2


class Seat(Protocol):
    """What places need of a session."""

    @property
    def camera_id(self) -> str: ...
    @property
    def credential(self) -> str: ...
    @property
    def connected(self) -> bool: ...
    @property
    def rank(self) -> int: ...
    @property
    def started(self) -> float: ...


S = TypeVar("S", bound=Seat)


@dataclass(eq=False)
class Opening:
    """A viewer's place from its offer until its session exists: counted at once,
    so that offers arriving together cannot all pass the limits."""

    camera_id: str
    credential: str


class Places(Generic[S]):
    def __init__(
        self,
        limits: WebRtcConfig,
        sessions: Mapping[str, S],
        evict: Callable[[S, User], None],
    ) -> None:
        """`sessions`: the live ones (the service's own dict); `evict(session, for_user)`
        takes a pending session out of it at once and ends it."""
        self.limits = limits
        self.sessions = sessions
        self.evict = evict
        self.opening: set[Opening] = set()

    def viewers(self, camera_id: str) -> int:
        return sum(s.camera_id == camera_id for s in self.sessions.values()) + sum(
            o.camera_id == camera_id for o in self.opening
        )

    @contextlib.contextmanager
    def reserve(self, camera_id: str, user: User) -> Iterator[Opening]:
        self._admit(camera_id, user)
        place = Opening(camera_id, user.credential)
        self.opening.add(place)
        try:
            yield place
        finally:
            self.opening.discard(place)

    def _admit(self, camera_id: str, user: User) -> None:
        limits = self.limits
        pending = [o.camera_id for o in self.opening if o.credential == user.credential]
        pending += [
            s.camera_id
            for s in self.sessions.values()
            if s.credential == user.credential and not s.connected
        ]
        if len(pending) >= limits.pending_per_credential:
            raise Refused(429, "too many of your offers are not connected yet", RETRY_PENDING)
        if pending.count(camera_id) >= limits.pending_per_credential_camera:
            raise Refused(
                429, "too many of your offers for this camera are not connected yet", RETRY_PENDING
            )
        full = len(self.sessions) + len(self.opening) >= limits.max_viewers
        if full and not self._evict_pending(user, None):
            raise Refused(503, "this node serves its maximum of viewers", RETRY_FULL)
        full = self.viewers(camera_id) >= limits.max_viewers_per_camera
        if full and not self._evict_pending(user, camera_id):
            raise Refused(503, "this camera has its maximum of viewers", RETRY_FULL)

    def _evict_pending(self, user: User, camera_id: str | None) -> bool:
        """Evict the oldest pending session of the lowest role below `user`'s (of the
        camera, if one is named); whether there was one."""
        below = [
            s
            for s in self.sessions.values()
            if not s.connected and s.rank < user.rank and camera_id in (None, s.camera_id)
        ]
        if not below:
            return False
        self.evict(min(below, key=lambda s: (s.rank, s.started)), user)
        return True
