"""The browser pages and their static files (no build step, no outside resources)."""

from __future__ import annotations

import html
import json
from pathlib import Path

from aiohttp import web

from relay.web.guard import PUBLIC, REFUSAL_PAGE, WATCHERS, add_route, logged_in
from relay.web.keys import CONFIG
from relay.web.labels import label

STATIC = Path(__file__).parent / "static"


def setup(app: web.Application) -> None:
    add_route(app, "GET", "/", index, logged_in(WATCHERS, page=True))
    add_route(app, "GET", "/view/{camera_id}", view, logged_in(scope="camera", page=True))
    add_route(app, "GET", "/static/{filename}", static, PUBLIC)
    app[REFUSAL_PAGE] = refused


def render(template: str, **values: str) -> str:
    """Fill {{name}} with HTML-escaped text and {{name_json}} with a JS literal."""
    text = (STATIC / template).read_text(encoding="utf-8")
    for key, value in values.items():
        safe_json = json.dumps(value).replace("<", "\\u003c")
        text = text.replace("{{" + key + "_json}}", safe_json)
        text = text.replace("{{" + key + "}}", html.escape(value))
    return text


STATIC_FILES = frozenset(p.name for p in STATIC.iterdir() if p.suffix in (".js", ".css", ".png"))


async def static(request: web.Request) -> web.StreamResponse:
    """Only the files shipped in static/: no directory listing, no path tricks."""
    name = request.match_info["filename"]
    if name not in STATIC_FILES:
        raise web.HTTPNotFound(text="no such file\n")
    return web.FileResponse(STATIC / name, headers={"Cache-Control": "no-cache"})


async def index(request: web.Request) -> web.Response:
    page = render("index.html", name=request.app[CONFIG].node.name)
    return web.Response(text=page, content_type="text/html")


async def view(request: web.Request) -> web.Response:
    camera = request.app[CONFIG].camera(request.match_info["camera_id"])
    assert camera is not None  # the access rule checked it
    page = render("view.html", camera=camera.id, name=camera.name)
    return web.Response(text=page, content_type="text/html")


def refused(request: web.Request, status: int) -> web.Response:
    """The page for a refused page: in the page's language (Chinese until the
    browser asks for English), with the header."""
    words = {
        "title": label("zh", f"refused_{status}"),
        "detail": label("zh", f"refused_{status}_detail"),
        "home": label("zh", "go_home"),
    }
    name = request.app[CONFIG].node.name
    page = render("refused.html", status=str(status), name=name, **words)
    return web.Response(status=status, text=page, content_type="text/html")
