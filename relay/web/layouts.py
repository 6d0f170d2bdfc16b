"""Saved viewer layouts: an officer's named grids of cameras, personal or shared.

A layout is a grid (one of the wall layouts) and the camera of each tile, in tile
order, `null` for an empty tile. Everyone sees their own layouts and the shared
ones whose cameras they may all see; owners delete their own, admins any.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from relay.access.accounts import User
from relay.config import CAMERA_REF_PATTERN, LAYOUTS, Config
from relay.refusal import Refused, checked_text
from relay.web.body import read_json, whole_number
from relay.web.guard import WATCHERS, add_route, logged_in, user_of
from relay.web.keys import AUDIT, CONFIG, DB
from relay.web.refusals import refuse

SCHEMA = """
CREATE TABLE IF NOT EXISTS layouts (
    id INTEGER PRIMARY KEY, owner TEXT NOT NULL, name TEXT NOT NULL,
    layout TEXT NOT NULL, cameras TEXT NOT NULL, shared INTEGER NOT NULL,
    updated REAL NOT NULL, UNIQUE (owner, name)
);
"""

MAX_NAME = 64
MAX_PER_USER = 100
SHARERS = frozenset(("admin", "officer", "operator"))  # viewers only watch
KEYS = ("name", "layout", "cameras", "shared")
_ID = re.compile(CAMERA_REF_PATTERN)


def tiles(layout: str) -> int:
    """How many tiles a layout has: "3x3" 9, "1+7" 8."""
    big, plus, small = layout.partition("+")
    if plus:
        return 1 + int(small)
    side = int(big.partition("x")[0])
    return side * side


@dataclass(frozen=True)
class Layout:
    name: str
    layout: str
    cameras: list[str | None]
    shared: bool


def parse_layout(body: dict[str, Any], config: Config, user: User) -> Layout:
    """A layout from a request body, or Refused saying what is wrong."""
    unknown = sorted(k for k in body if k not in KEYS)
    if unknown:
        raise Refused(400, f"unknown key {_shown(unknown[0])} (keys: {', '.join(KEYS)})")
    name = checked_text(body.get("name"), "name", MAX_NAME)
    layout = body.get("layout")
    if not isinstance(layout, str) or layout not in LAYOUTS:
        raise Refused(400, f"layout must be one of {', '.join(LAYOUTS)}")
    shared = body.get("shared", False)
    if not isinstance(shared, bool):
        raise Refused(400, "shared must be true or false")
    if shared and user.role not in SHARERS:
        raise Refused(403, f"role {user.role} cannot share layouts")
    return Layout(name, layout, _cameras(body.get("cameras"), layout, config, user), shared)


def _cameras(value: object, layout: str, config: Config, user: User) -> list[str | None]:
    count = tiles(layout)
    if not isinstance(value, list) or len(value) > count:
        raise Refused(
            400, f"cameras must be a list of at most {count} camera ids (null: empty tile)"
        )
    seen: set[str] = set()
    for i, cam_id in enumerate(value):
        if cam_id is None:
            continue
        if not isinstance(cam_id, str) or not _ID.match(cam_id):
            raise Refused(400, f"cameras[{i}] must be a camera id or null")
        camera = config.camera(cam_id)
        if camera is None or not user.sees(camera.site):
            raise Refused(400, f"unknown camera {cam_id!r}")
        if cam_id in seen:
            raise Refused(400, f"camera {cam_id!r} is in the layout twice")
        seen.add(cam_id)
    if not seen:
        raise Refused(400, "a layout needs at least one camera")
    return list(value)


def _shown(key: str) -> str:
    return repr(key) if key.isprintable() and len(key) <= 40 else "(too long or unprintable)"


class LayoutStore:
    """The layouts table, in the node's database."""

    def __init__(self, app: web.Application) -> None:
        self.db = app[DB]
        self.config = app[CONFIG]

    async def visible(self, user: User) -> list[dict[str, Any]]:
        rows = await self.db.fetch(
            "SELECT * FROM layouts WHERE owner = ? OR shared = 1 ORDER BY owner != ?, name, id",
            (user.name, user.name),
        )
        found = [self._json(row, user) for row in rows]
        return [layout for layout in found if layout is not None]

    def _json(self, row: sqlite3.Row, user: User) -> dict[str, Any] | None:
        """What `user` may see of a row: None for another's layout showing a camera
        out of their scope; cameras gone from the config show as empty tiles."""
        cameras: list[str | None] = []
        for cam_id in json.loads(row["cameras"]):
            camera = self.config.camera(cam_id) if cam_id else None
            if camera is not None and not user.sees(camera.site):
                if row["owner"] != user.name:
                    return None
                camera = None  # the owner's scope shrank since
            cameras.append(camera.id if camera else None)
        return {
            "id": row["id"],
            "name": row["name"],
            "layout": row["layout"],
            "cameras": cameras,
            "shared": bool(row["shared"]),
            "owner": row["owner"],
            "mine": row["owner"] == user.name,
            "can_delete": row["owner"] == user.name or user.role == "admin",
            "updated": row["updated"],
        }

    async def save(self, user: User, layout: Layout) -> tuple[dict[str, Any], bool]:
        """Insert, or replace the user's layout of that name; (layout, created)."""

        def work(conn: sqlite3.Connection) -> tuple[int, bool]:
            # The database thread runs one work at a time: the count and the write agree.
            old = conn.execute(
                "SELECT id FROM layouts WHERE owner = ? AND name = ?", (user.name, layout.name)
            ).fetchone()
            values = (layout.layout, json.dumps(layout.cameras), layout.shared, time.time())
            if old is not None:
                conn.execute(
                    "UPDATE layouts SET layout = ?, cameras = ?, shared = ?, updated = ?"
                    " WHERE id = ?",
                    (*values, old["id"]),
                )
                return int(old["id"]), False
            (count,) = conn.execute(
                "SELECT COUNT(*) FROM layouts WHERE owner = ?", (user.name,)
            ).fetchone()
            if count >= MAX_PER_USER:
                raise Refused(409, f"you have {MAX_PER_USER} layouts: delete one first")
            cursor = conn.execute(
                "INSERT INTO layouts (layout, cameras, shared, updated, owner, name)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (*values, user.name, layout.name),
            )
            return int(cursor.lastrowid or 0), True

        layout_id, created = await self.db.run(work)
        (row,) = await self.db.fetch("SELECT * FROM layouts WHERE id = ?", (layout_id,))
        saved = self._json(row, user)
        assert saved is not None  # its cameras were just checked against this user
        return saved, created

    async def delete(self, user: User, layout_id: int) -> None:
        rows = await self.db.fetch("SELECT * FROM layouts WHERE id = ?", (layout_id,))
        seen = self._json(rows[0], user) if rows else None
        if seen is None or not (seen["mine"] or seen["shared"] or user.role == "admin"):
            raise Refused(404, "no such layout")
        if not seen["can_delete"]:
            raise Refused(403, "only its owner or an admin may delete this layout")
        await self.db.execute("DELETE FROM layouts WHERE id = ?", (layout_id,))


LAYOUT_STORE = web.AppKey("layout_store", LayoutStore)


def setup(app: web.Application) -> None:
    app[LAYOUT_STORE] = LayoutStore(app)
    rule = logged_in(WATCHERS)
    add_route(app, "GET", "/api/layouts", list_layouts, rule)
    add_route(app, "POST", "/api/layouts", save_layout, rule)
    add_route(app, "DELETE", "/api/layouts/{layout_id}", delete_layout, rule)


async def list_layouts(request: web.Request) -> web.Response:
    return web.json_response(await request.app[LAYOUT_STORE].visible(user_of(request)))


async def save_layout(request: web.Request) -> web.Response:
    user = user_of(request)
    layout = parse_layout(await read_json(request), request.app[CONFIG], user)
    saved, created = await request.app[LAYOUT_STORE].save(user, layout)
    await request.app[AUDIT].record(
        "layout.save", user=user.name, layout=saved["id"], name=saved["name"], shared=layout.shared
    )
    return web.json_response(saved, status=201 if created else 200)


async def delete_layout(request: web.Request) -> web.Response:
    user = user_of(request)
    layout_id = whole_number(request.match_info["layout_id"])
    if layout_id is None:
        return refuse(404, "no such layout")
    await request.app[LAYOUT_STORE].delete(user, layout_id)
    await request.app[AUDIT].record("layout.delete", user=user.name, layout=layout_id)
    return web.json_response({"ok": True})
