"""The node's JSON API: health, cameras and the site tree. Never a camera URL."""

from __future__ import annotations

import time
from collections.abc import Collection

from aiohttp import web

from ingest.state import SourceState
from relay.access.accounts import User
from relay.config import Config
from relay.media.hub import Hub
from relay.peers.channel import RemoteChannel
from relay.web.guard import PUBLIC, add_route, identify, logged_in, patrol_cameras, user_of
from relay.web.keys import CONFIG, HUB
from relay.web.metrics import READERS, allowed_address
from relay.web.recordings import RECORDINGS

STARTED = web.AppKey("started", float)
RESTART_NEEDED = web.AppKey("restart_needed", list[str])  # config keys changed since start
DOWN = (SourceState.OFFLINE, SourceState.STALLED)  # idle on-demand cameras are not down


def setup(app: web.Application) -> None:
    app[STARTED] = time.monotonic()
    app[RESTART_NEEDED] = []
    add_route(app, "GET", "/api/health", health, PUBLIC)
    add_route(app, "GET", "/api/cameras", cameras, logged_in())
    add_route(app, "GET", "/api/cameras/{camera_id}", camera, logged_in(scope="camera"))
    add_route(app, "GET", "/api/sites", sites, logged_in())


async def health(request: web.Request) -> web.Response:
    """Public, for a load balancer or a probe: only whether the node is up (a 200)
    and its status; after a reload that changed what is read only at start, the
    status is "restart needed". The details (node, uptime, the keys waiting for a
    restart, the recorders and their disk) only for an admin or the metrics reader,
    who may also read them from an address `metrics.allow` lists."""
    pending = request.app[RESTART_NEEDED]
    body: dict[str, object] = {"status": "restart needed" if pending else "ok"}
    if not _may_read_details(request):
        return web.json_response(body)
    body["node"] = request.app[CONFIG].node.id
    body["uptime"] = round(time.monotonic() - request.app[STARTED], 1)
    body["restart_needed"] = pending
    if RECORDINGS in request.app:
        body["recording"] = request.app[RECORDINGS].health()
    return web.json_response(body)


def _may_read_details(request: web.Request) -> bool:
    user = identify(request)
    if user is not None:
        return user.role in (READERS.roles or ())
    return allowed_address(request)


async def cameras(request: web.Request) -> web.Response:
    user = user_of(request)
    mine = await patrol_cameras(request, user) if user.role == "patrol" else None
    return web.json_response(visible_cameras(request.app, user, mine))


async def camera(request: web.Request) -> web.Response:
    found = camera_json(request.app[HUB], request.match_info["camera_id"])
    return web.json_response(_with_recording(request.app, found))


def visible_cameras(
    app: web.Application, user: User, only: Collection[str] | None = None
) -> list[dict[str, object]]:
    """The cameras `user` sees (of `only`, if given), as /api/cameras lists them."""
    return [
        _with_recording(app, camera_json(app[HUB], c.id))
        for c in app[CONFIG].cameras
        if user.sees(c.site) and (only is None or c.id in only)
    ]


def _with_recording(app: web.Application, found: dict[str, object]) -> dict[str, object]:
    """The recorder's state and the days of footage kept, beside the camera's own."""
    if RECORDINGS in app and "recording" not in found:  # a peer's: its own
        found["recording"] = app[RECORDINGS].status(str(found["id"]))
    return found


def camera_json(hub: Hub, camera_id: str) -> dict[str, object]:
    streams = {ch.stream: ch.source.snapshot() for ch in hub.camera_channels(camera_id)}
    for channel in hub.camera_channels(camera_id):
        streams[channel.stream]["viewers"] = len(channel.subscribers)
    main = streams["main"]
    cam = next(c for c in hub.config.cameras if c.id == camera_id)
    found = {
        "id": cam.id,
        "name": cam.name,
        "site": cam.site,
        "node": hub.config.node.id,  # which node holds the camera
        "always_on": cam.always_on,
        "state": str(hub.camera_state(camera_id)),
        **_since(hub, camera_id),
        "last_error": main["last_error"],  # why it is not online now; None while online
        "last_failure": main["last_failure"],  # {"error", "time"} of the last fault, kept
        "info": main["info"],
        "stats": main["stats"],
        "streams": streams,
    }
    main_channel = hub.channel(camera_id)
    if isinstance(main_channel, RemoteChannel):
        found.update(main_channel.overlay())
    return found


def _since(hub: Hub, camera_id: str) -> dict[str, float | None]:
    """Wall-clock times for people: since when the camera is in its state (the
    earliest of its streams in that state) and when a packet last came from it."""
    sources = [ch.source for ch in hub.camera_channels(camera_id)]
    state = hub.camera_state(camera_id)
    since = min((s.state_since for s in sources if s.state is state), default=None)
    packets = [s.stats.last_packet for s in sources if s.stats.last_packet is not None]
    last_seen = time.time() - (time.monotonic() - max(packets)) if packets else None
    return {
        "state_since": None if since is None else round(since, 3),
        "last_seen": None if last_seen is None else round(last_seen, 3),
    }


async def sites(request: web.Request) -> web.Response:
    config, hub = request.app[CONFIG], request.app[HUB]
    return web.json_response(site_tree(config, hub, user_of(request).sites))


def site_tree(config: Config, hub: Hub, visible: frozenset[str]) -> list[dict[str, object]]:
    """The visible part of the site tree; each site counts its whole subtree's cameras."""
    children: dict[str | None, list[str]] = {}
    for site in config.sites:
        if site.id in visible:
            parent = site.parent if site.parent in visible else None  # a scope's top is a root
            children.setdefault(parent, []).append(site.id)
    names = {s.id: s.name for s in config.sites}
    own: dict[str, list[SourceState]] = {s: [] for s in visible}
    for cam in config.cameras:
        if cam.site in visible:
            own[cam.site].append(hub.camera_state(cam.id))

    def build(site_id: str) -> dict[str, object]:
        kids = [build(k) for k in children.get(site_id, [])]
        states = own[site_id]
        counts = {
            "cameras": len(states),
            "online": states.count(SourceState.ONLINE),
            "offline": sum(s in DOWN for s in states),
            "idle": states.count(SourceState.IDLE),  # on demand, nobody watching
        }
        for kid in kids:
            for key in counts:
                counts[key] += int(str(kid[key]))
        return {"id": site_id, "name": names[site_id], **counts, "children": kids}

    return [build(root) for root in children.get(None, [])]
