"""The catalog feed a node serves its peers: sites and cameras, then their changes.

`GET /api/catalog` (a WebSocket; roles `node` and `admin`) sends, as JSON text
messages, `{"catalog": {"sites": [...], "cameras": [...]}}` first (what
`/api/sites` and `/api/cameras` answer the same user), then
`{"changed": [camera, ...]}` each time a camera's state changes, and a whole
catalog again after a config reload. Only the sites the user may see, on every
message. Changes wait in a set per feed, not a queue: a peer that reads slowly
gets each camera's latest state once, and memory stays flat.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from aiohttp import web

from ingest.tasks import cancel_and_wait
from relay.access.accounts import User
from relay.config import Config
from relay.media.changes import CameraChanges
from relay.media.hub import Channel
from relay.web.cameras import site_tree, visible_cameras
from relay.web.events import open_feed, send_text
from relay.web.guard import add_route, logged_in, user_of
from relay.web.keys import CONFIG, HUB, RELOAD_LISTENERS
from relay.web.refusals import refuse


class CatalogWatch:
    """What one feed has still to send: a whole catalog, or the cameras changed."""

    def __init__(self, user: User) -> None:
        self.user = user
        self.whole = True
        self.changed: set[str] = set()
        self.wake = asyncio.Event()
        self.wake.set()

    def camera_changed(self, camera_id: str) -> None:
        self.changed.add(camera_id)
        self.wake.set()

    def all_changed(self) -> None:
        self.whole = True
        self.wake.set()

    def message(self, app: web.Application) -> dict[str, object] | None:
        """The next message, or None when there is nothing to send."""
        self.wake.clear()
        whole, self.whole = self.whole, False
        changed, self.changed = self.changed, set()
        if whole:
            sites = site_tree(app[CONFIG], app[HUB], self.user.sites)
            return {"catalog": {"sites": sites, "cameras": visible_cameras(app, self.user)}}
        cameras = visible_cameras(app, self.user, changed)
        return {"changed": cameras} if cameras else None


class CatalogWatches(set[CatalogWatch]):
    """The catalog feeds open now."""


WATCHES = web.AppKey("catalog_watches", CatalogWatches)


def setup(app: web.Application) -> None:
    add_route(app, "GET", "/api/catalog", catalog, logged_in(frozenset(("node", "admin"))))
    app[WATCHES] = CatalogWatches()


async def lifecycle(app: web.Application) -> AsyncIterator[None]:
    """Every camera state change and every reload reaches the open feeds."""
    watches = app[WATCHES]

    def camera_changed(channel: Channel) -> None:
        for watch in watches:
            watch.camera_changed(channel.camera.id)

    async def reloaded(_config: Config, _changes: CameraChanges) -> None:
        for watch in watches:
            watch.all_changed()

    app[HUB].state_listeners.append(camera_changed)
    app[RELOAD_LISTENERS].append(reloaded)
    yield
    app[RELOAD_LISTENERS].remove(reloaded)
    app[HUB].state_listeners.remove(camera_changed)


async def catalog(request: web.Request) -> web.StreamResponse:
    socket = web.WebSocketResponse(heartbeat=20, max_msg_size=4096, compress=False)
    if not socket.can_prepare(request).ok:
        return refuse(400, "the catalog feed is a WebSocket")
    watch = CatalogWatch(user_of(request))
    await open_feed(request, socket)
    transport = request.transport
    assert transport is not None  # the connection is open: it was just prepared
    request.app[WATCHES].add(watch)
    sender = asyncio.create_task(_send(request.app, socket, transport, watch))
    try:
        async for _message in socket:
            pass  # the peer says nothing; this ends when it goes or the node stops
    finally:
        request.app[WATCHES].discard(watch)
        await cancel_and_wait(sender)
    return socket


async def _send(
    app: web.Application,
    socket: web.WebSocketResponse,
    transport: asyncio.Transport,
    watch: CatalogWatch,
) -> None:
    while True:
        await watch.wake.wait()
        message = watch.message(app)
        if message is not None and not await send_text(
            socket, transport, json.dumps(message).encode()
        ):
            return
