"""Video walls: the village wall page, the station viewer page, and the walls' JSON.

The pages are static templates; everything live (cameras, states, tours) comes
from the JSON below and /api/cameras, /api/sites, so a wall left open for days
follows the node without a reload.
"""

from __future__ import annotations

from aiohttp import web

from relay.config import WallConfig
from relay.web.cameras import camera_json
from relay.web.guard import NOT_PATROL, WATCHERS, add_route, logged_in, user_of
from relay.web.keys import CONFIG, HUB
from relay.web.pages import render


def setup(app: web.Application) -> None:
    pages = logged_in(WATCHERS, page=True)
    add_route(app, "GET", "/wall/{wall_id}", wall_page, logged_in(WATCHERS, "wall", page=True))
    add_route(app, "GET", "/station", station_page, pages)
    add_route(app, "GET", "/api/walls", walls, logged_in(NOT_PATROL))
    add_route(app, "GET", "/api/walls/{wall_id}", wall, logged_in(NOT_PATROL, scope="wall"))


async def wall_page(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    found = config.wall(request.match_info["wall_id"])
    assert found is not None  # the access rule checked it
    page = render("wall.html", wall=found.id, name=found.name or found.id, node=config.node.name)
    return web.Response(text=page, content_type="text/html")


async def station_page(request: web.Request) -> web.Response:
    page = render("station.html", name=request.app[CONFIG].node.name)
    return web.Response(text=page, content_type="text/html")


def wall_summary(found: WallConfig) -> dict[str, object]:
    return {
        "id": found.id,
        "name": found.name or found.id,
        "site": found.site,
        "layout": found.layout,
        "dwell": found.dwell,
        "font_scale": found.font_scale,
    }


async def walls(request: web.Request) -> web.Response:
    user = user_of(request)
    found = [w for w in request.app[CONFIG].walls if user.sees(w.site)]
    return web.json_response([wall_summary(w) for w in found])


async def wall(request: web.Request) -> web.Response:
    """The wall with its cameras' states, in tour order; cameras the user may not
    see are left out, as in every list."""
    config, hub, user = request.app[CONFIG], request.app[HUB], user_of(request)
    found = config.wall(request.match_info["wall_id"])
    assert found is not None  # the access rule checked it
    cameras = []
    for cam_id in found.cameras:
        camera = config.camera(cam_id)
        if camera is not None and user.sees(camera.site):
            cameras.append(camera_json(hub, cam_id))
    return web.json_response({**wall_summary(found), "cameras": cameras})
