"""What a reloaded config changes about the cameras, and which changes cut video.

A camera restarts (its channels closed, their viewers ended, new ones opened) only
when what its source reads changed: a URL or a timeout. Everything else (name,
site, always-on, idle timeout, and the recording and motion settings other rooms
keep on the camera) is taken over by the running channel in place.
"""

from __future__ import annotations

from dataclasses import dataclass

from relay.config import CameraConfig, Config

SOURCE_FIELDS = ("main", "sub", "connect_timeout", "stall_timeout", "backoff_max")


@dataclass(frozen=True)
class CameraChanges:
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    restarted: tuple[str, ...] = ()  # its source settings changed: new channels
    updated: tuple[str, ...] = ()  # changed in place: the channels keep running

    @property
    def ended(self) -> tuple[str, ...]:
        """Cameras whose channels were closed: their consumers must let go."""
        return self.removed + self.restarted

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.restarted or self.updated)

    def as_dict(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in self.__dict__.items() if v}


def source_changed(old: CameraConfig, new: CameraConfig) -> bool:
    return any(getattr(old, name) != getattr(new, name) for name in SOURCE_FIELDS)


def camera_changes(old: Config, new: Config) -> CameraChanges:
    before = {c.id: c for c in old.cameras}
    after = {c.id: c for c in new.cameras}
    changed = [i for i in after if i in before and after[i] != before[i]]
    restarted = tuple(i for i in changed if source_changed(before[i], after[i]))
    return CameraChanges(
        added=tuple(i for i in after if i not in before),
        removed=tuple(i for i in before if i not in after),
        restarted=restarted,
        updated=tuple(i for i in changed if i not in restarted),
    )
