"""Alert events: typed, with an id, origin node, time, site, camera and author.

`parse_request` turns what a user sends into an Event, or a clear refusal; the
bus stores, fans out and forwards Events; `visible` says who may see one.
"""

from __future__ import annotations

import base64
import binascii
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from relay.access.accounts import User
from relay.config import CameraConfig, Config
from relay.refusal import Refused

# An alarm's steps and the state each leaves it in: the station acknowledges and
# assigns it to a patrol team, the team accepts (接警) and arrives (到场), and the
# station or the team resolves it (处置完毕).
ALARM_WORKFLOW = {
    "ack": "acked",
    "assign": "assigned",
    "accept": "accepted",
    "arrive": "arrived",
    "resolve": "resolved",
}
PATROL_STEPS = frozenset({"accept", "arrive", "resolve"})  # what a patrol may do, to its own
RAISED_BY = {  # who may publish what
    "alarm": frozenset({"admin", "officer", "operator"}),
    "sighting": frozenset({"admin", "officer", "operator"}),
    "lookout": frozenset({"admin", "officer"}),
    "cancel": frozenset({"admin", "officer"}),  # a lookout withdrawn (撤销布控)
    "ack": frozenset({"admin", "officer"}),
    "assign": frozenset({"admin", "officer"}),
    "accept": frozenset({"admin", "officer", "patrol"}),
    "arrive": frozenset({"admin", "officer", "patrol"}),
    "resolve": frozenset({"admin", "officer", "patrol"}),
}
# The preset alarm types (盗窃, 火情, 斗殴, 走失, 交通事故, 其他); the reason is free text.
ALARM_KINDS = ("theft", "fire", "fight", "missing", "traffic", "other")
SYSTEM_TYPES = frozenset({"camera.offline", "camera.online", "motion"})
TYPES = frozenset(RAISED_BY) | SYSTEM_TYPES
MAX_TEXT = 2000
MAX_REASON = 200
MAX_IMAGE = 512 * 1024
MAX_EXPIRY = 30 * 86400


@dataclass(frozen=True)
class Event:
    id: str
    type: str
    origin: str  # the node that raised it
    time: float
    site: str | None  # None: the whole network (a network-wide lookout)
    camera: str | None = None
    by: str = "system"
    ref: str | None = None  # the alarm or lookout an ack/assign/resolve/sighting is about
    data: dict[str, Any] = field(default_factory=dict)
    image: bytes | None = None  # JPEG: a camera snapshot, or a lookout's photo

    def as_json(self, *, with_image: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "type": self.type,
            "origin": self.origin,
            "time": self.time,
            "site": self.site,
            "camera": self.camera,
            "by": self.by,
            "ref": self.ref,
            "data": self.data,
            "image": f"/api/events/{self.id}/image" if self.image else None,
        }
        if with_image and self.image:
            out["image_data"] = base64.b64encode(self.image).decode()
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Event:
        image = raw.get("image_data")
        return cls(
            id=str(raw["id"]),
            type=str(raw["type"]),
            origin=str(raw["origin"]),
            time=float(raw["time"]),
            site=raw.get("site"),
            camera=raw.get("camera"),
            by=str(raw.get("by", "system")),
            ref=raw.get("ref"),
            data=dict(raw.get("data") or {}),
            image=base64.b64decode(image) if image else None,
        )

    def with_image(self, image: bytes | None) -> Event:
        return replace(self, image=image)


def new_event(origin: str, type_: str, site: str | None, **fields: Any) -> Event:
    return Event(
        id=uuid.uuid4().hex, type=type_, origin=origin, time=time.time(), site=site, **fields
    )


def visible(event: Event, user: User, config: Config) -> bool:
    """A user sees events of their sites' subtrees, and lookouts issued above them."""
    if event.site is None or user.sees(event.site):
        return True
    return event.type == "lookout" and event.site in config.ancestors(user.sites)


def parse_request(
    body: dict[str, Any], user: User, config: Config, referenced: Event | None
) -> Event:
    """An Event from a user's publish request, checked for type, size and scope."""
    kind = body.get("type")
    if kind not in RAISED_BY:
        raise Refused(400, f"type must be one of {', '.join(sorted(RAISED_BY))}")
    if user.role not in RAISED_BY[kind]:
        raise Refused(403, f"role {user.role} may not publish {kind}")
    if kind == "lookout":
        return _lookout(body, user, config)
    if kind == "alarm":
        return _alarm(body, user, config)
    about = _referenced(body, referenced, "lookout" if kind in ("sighting", "cancel") else "alarm")
    if not visible(about, user, config):
        raise Refused(404, "no such event")
    if user.role == "patrol" and about.data.get("team") != user.team:
        raise Refused(403, "this alarm is not assigned to your team")
    site, camera_id = about.site, about.camera
    data: dict[str, Any] = {}
    if kind == "sighting":  # where the lookout was seen: a camera of the user's
        camera = _camera(body, user, config)
        site, camera_id = camera.site, camera.id
    if kind == "assign":
        data.update(_team(body, config))
    data["note"] = _text(body, "note", MAX_TEXT, required=False)
    event = new_event(
        config.node.id, kind, site, camera=camera_id, by=user.name, ref=about.id, data=data
    )
    if kind == "resolve" and body.get("photo") is not None:  # the patrol's photo of the scene
        return event.with_image(_photo(body.get("photo")))
    return event


def _alarm(body: dict[str, Any], user: User, config: Config) -> Event:
    camera = _camera(body, user, config)
    reason = _text(body, "reason", MAX_REASON, required=False)
    kind = body.get("kind", "other")
    if kind not in ALARM_KINDS:
        raise Refused(400, f"kind must be one of {', '.join(ALARM_KINDS)}")
    return new_event(
        config.node.id,
        "alarm",
        camera.site,
        camera=camera.id,
        by=user.name,
        data={"reason": reason, "kind": kind},
    )


def _team(body: dict[str, Any], config: Config) -> dict[str, str]:
    """A configured team by id; free text only on a node with no teams configured."""
    team = _text(body, "team", 100, required=True)
    if not config.patrol_teams:
        return {"team": team, "team_name": team}
    found = config.team(team)
    if found is None:
        raise Refused(400, "team must be the id of a patrol team of this node")
    return {"team": found.id, "team_name": found.name}


def _text(body: dict[str, Any], key: str, limit: int, *, required: bool) -> str:
    value = body.get(key, "")
    if not isinstance(value, str):
        raise Refused(400, f"{key} must be text")
    value = value.strip()
    if required and not value:
        raise Refused(400, f"{key} is required")
    if len(value) > limit:
        raise Refused(413, f"{key} is longer than {limit} characters")
    return value


def _camera(body: dict[str, Any], user: User, config: Config) -> CameraConfig:
    camera_id = body.get("camera")
    camera = config.camera(camera_id) if isinstance(camera_id, str) else None
    if camera is None or not user.sees(camera.site):
        raise Refused(404, "no such camera")
    return camera


def _referenced(body: dict[str, Any], referenced: Event | None, kind: str) -> Event:
    if not isinstance(body.get("ref"), str):
        raise Refused(400, f"ref must be the id of a{'n' if kind == 'alarm' else ''} {kind}")
    if referenced is None or referenced.type != kind:
        raise Refused(404, f"no such {kind}")
    return referenced


def _lookout(body: dict[str, Any], user: User, config: Config) -> Event:
    text = _text(body, "text", MAX_TEXT, required=True)
    area = body.get("area", "network")
    if area == "network":
        site = None
    elif isinstance(area, dict) and isinstance(area.get("site"), str):
        site = area["site"]
        if not user.sees(site):
            raise Refused(404, "no such site")
    else:
        raise Refused(400, 'area must be "network" or {"site": SITE_ID}')
    expires_in = body.get("expires_in", 86400)
    if (
        not isinstance(expires_in, int | float)
        or isinstance(expires_in, bool)
        or not (60 <= expires_in <= MAX_EXPIRY)
    ):
        raise Refused(400, f"expires_in must be seconds from 60 to {MAX_EXPIRY}")
    photo = body.get("photo")
    image = None if photo is None else _photo(photo)
    event = new_event(
        config.node.id,
        "lookout",
        site,
        by=user.name,
        data={"text": text, "expires": time.time() + expires_in},
    )
    return event.with_image(image)


def _photo(photo: object) -> bytes:
    if not isinstance(photo, str) or len(photo) > MAX_IMAGE * 4 // 3 + 4:
        raise Refused(413, f"photo must be a base64 JPEG of at most {MAX_IMAGE} bytes")
    try:
        image = base64.b64decode(photo, validate=True)
    except (binascii.Error, ValueError):
        raise Refused(400, "photo is not base64") from None
    if not image.startswith(b"\xff\xd8"):
        raise Refused(400, "photo is not a JPEG")
    return image
