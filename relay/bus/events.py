"""Alert events: typed, with an id, origin node, time, site, camera and author.

`parse_request` turns what a user sends into an Event, or a clear refusal; the
bus stores, fans out and forwards Events; `visible` says who may see one.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from relay.access.accounts import User
from relay.config import CameraConfig, Config
from relay.refusal import Refused, checked_text

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
ALARM_EVENTS = frozenset({"alarm", *ALARM_WORKFLOW})  # an alarm and its steps
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
SYSTEM_TYPES = frozenset(
    {
        "camera.offline",
        "camera.online",
        "motion",
        "camera.tamper",
        "camera.ok",
        "inspection.summary",
        "storage.low",
    }
)
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
    def from_json(cls, raw: object) -> Event:
        """An Event from another node's JSON, checked field by field: Unusable if it
        is not one this node can store and show."""
        if not isinstance(raw, dict):
            raise Unusable("not a JSON object")
        try:
            json.dumps(raw, ensure_ascii=False).encode()
        except (UnicodeError, RecursionError):
            raise Unusable("text that is not valid Unicode") from None
        kind = _field(raw, "type", str, required=True)
        if kind not in TYPES:
            raise Unusable(f"unknown type {str(kind)[:40]!r}")
        when = raw.get("time")
        if not isinstance(when, int | float) or isinstance(when, bool) or not math.isfinite(when):
            raise Unusable("time is not a number of seconds")
        return cls(
            id=_field(raw, "id", str, required=True),
            type=kind,
            origin=_field(raw, "origin", str, required=True),
            time=float(when),
            site=_field(raw, "site", str),
            camera=_field(raw, "camera", str),
            by=_field(raw, "by", str) or "system",
            ref=_field(raw, "ref", str),
            data=_data(raw.get("data")),
            image=_image(raw.get("image_data")),
        )

    def with_image(self, image: bytes | None) -> Event:
        return replace(self, image=image)


class Unusable(ValueError):
    """Another node's event this node cannot use, and why (one line)."""


DATA_TYPES: dict[str, type | tuple[type, ...]] = {
    "reason": str,
    "team": str,
    "note": str,
    "text": str,
    "error": str,
    "expires": (int, float),
}
MAX_NAME = 200  # an id, node, site, camera or user name from the network


def _field(raw: dict[str, Any], key: str, kind: type[str], *, required: bool = False) -> Any:
    value = raw.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, kind) or not value or len(value) > MAX_NAME:
        raise Unusable(f"{key} is not a name")
    return value


def _data(data: object) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise Unusable("data is not an object")
    for key, kind in DATA_TYPES.items():
        value = data.get(key)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            raise Unusable(f"data.{key} has the wrong type")
    if isinstance(data.get("expires"), float) and not math.isfinite(data["expires"]):
        raise Unusable("data.expires is not a time")
    return data


def _image(image: object) -> bytes | None:
    if image is None or image == "":
        return None
    if not isinstance(image, str):
        raise Unusable("image_data is not base64")
    try:
        return base64.b64decode(image, validate=True)
    except (binascii.Error, ValueError):
        raise Unusable("image_data is not base64") from None


def new_event(origin: str, type_: str, site: str | None, **fields: Any) -> Event:
    return Event(
        id=uuid.uuid4().hex, type=type_, origin=origin, time=time.time(), site=site, **fields
    )


def in_sites(event: Event, user: User, config: Config) -> bool:
    """Events of a user's sites' subtrees, and lookouts issued above them."""
    if event.site is None or user.sees(event.site):
        return True
    return event.type == "lookout" and event.site in config.ancestors(user.sites)


def visible(event: Event, user: User, config: Config) -> bool:
    """What a user sees: the events of their sites (`in_sites`). A patrol sees, of
    the alarms, those assigned to its team only (an alarm and each of its steps
    carry the team it had when stored, `data.team`; an assign also the team it
    took the alarm from, `data.from_team`, so that team hears it is no longer
    theirs), and no other event about a camera (health, tamper, motion,
    sightings: their pictures are of cameras it may not view)."""
    if user.role == "patrol":
        if event.type in ALARM_EVENTS:
            teams = (event.data.get("team"), event.data.get("from_team"))
            if user.team not in (teams if event.type == "assign" else teams[:1]):
                return False
        elif event.camera is not None:
            return False
    return in_sites(event, user, config)


def scope_of(user: User, config: Config) -> tuple[frozenset[str], frozenset[str]]:
    """What `in_sites` lets `user` see, as sites: those whose events they see, and
    those above them whose lookouts they see too (events of no site: everyone)."""
    return user.sites, config.ancestors(user.sites)


def team_of(user: User) -> str | None:
    """The team whose alarms alone a patrol sees (None: not a patrol)."""
    return user.team if user.role == "patrol" else None


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
    if not in_sites(about, user, config):  # a patrol is told below that it is not its team's
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
    data["note"] = _text(body, "note", MAX_TEXT, required=False, prose=True)
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


def _text(
    body: dict[str, Any], key: str, limit: int, *, required: bool, prose: bool = False
) -> str:
    return checked_text(body.get(key, ""), key, limit, required=required, prose=prose, too_long=413)


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
    text = _text(body, "text", MAX_TEXT, required=True, prose=True)
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
    """A photo's bytes; decoded and cleaned (relay.bus.photo) before it is stored."""
    if not isinstance(photo, str):
        raise Refused(400, "photo must be text: a JPEG or PNG in base64")
    if len(photo) > MAX_IMAGE * 4 // 3 + 4:
        raise Refused(413, f"photo must be a JPEG or PNG of at most {MAX_IMAGE} bytes")
    try:
        return base64.b64decode(photo, validate=True)
    except (binascii.Error, ValueError):
        raise Refused(400, "photo is not base64") from None
