"""The browser pages and their static files (no build step, no outside resources)."""

from __future__ import annotations

import html
import json
from pathlib import Path

from aiohttp import web

from relay.keys import CONFIG

STATIC = Path(__file__).parent / "static"


def setup(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_get("/view/{camera_id}", view)
    app.router.add_static("/static/", STATIC, append_version=False)


def render(template: str, **values: str) -> str:
    """Fill {{name}} with HTML-escaped text and {{name_json}} with a JS literal."""
    text = (STATIC / template).read_text(encoding="utf-8")
    for key, value in values.items():
        safe_json = json.dumps(value).replace("<", "\\u003c")
        text = text.replace("{{" + key + "_json}}", safe_json)
        text = text.replace("{{" + key + "}}", html.escape(value))
    return text


async def index(request: web.Request) -> web.Response:
    page = render("index.html", name=request.app[CONFIG].node.name)
    return web.Response(text=page, content_type="text/html")


async def view(request: web.Request) -> web.Response:
    camera = request.app[CONFIG].camera(request.match_info["camera_id"])
    if camera is None:
        raise web.HTTPNotFound(text="no such camera")
    page = render("view.html", camera=camera.id, name=camera.name)
    return web.Response(text=page, content_type="text/html")
