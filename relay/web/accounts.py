"""Login, logout, who am I, API tokens, and the audit log, over HTTP."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

from aiohttp import web

from ingest.tasks import cancel_and_wait
from relay.refusal import Refused
from relay.web.alarms import home_of
from relay.web.body import query_filters, read_json, text_field, whole_number
from relay.web.guard import (
    ACCOUNTS,
    PEOPLE,
    PUBLIC,
    SESSION_COOKIE,
    add_route,
    logged_in,
    user_of,
)
from relay.web.keys import AUDIT, CONFIG
from relay.web.pages import render
from relay.web.recordings import plays_back
from relay.web.refusals import refuse

logger = logging.getLogger(__name__)
HOUSEKEEPING_SECONDS = 6 * 3600


def setup(app: web.Application) -> None:
    add_route(app, "GET", "/login", login_page, PUBLIC)
    add_route(app, "POST", "/api/login", login, PUBLIC)
    add_route(app, "POST", "/api/logout", logout, logged_in())
    add_route(app, "GET", "/api/me", me, logged_in())
    add_route(app, "GET", "/api/tokens", tokens, logged_in(PEOPLE))
    add_route(app, "POST", "/api/tokens", create_token, logged_in(PEOPLE))
    add_route(app, "DELETE", "/api/tokens/{token_id}", revoke_token, logged_in(PEOPLE))
    add_route(app, "GET", "/api/audit", audit, logged_in(frozenset({"admin"})))


async def housekeeping(app: web.Application) -> AsyncIterator[None]:
    """Each session ends as it expires; audit entries past retention go, every few
    hours. Started after the viewing sessions and feeds, so that it stops first."""

    async def loop() -> None:
        while True:
            await asyncio.sleep(HOUSEKEEPING_SECONDS)
            await app[ACCOUNTS].prune()
            removed = await app[AUDIT].prune(app[CONFIG].audit.retention_days)
            if removed:
                logger.info("audit: %d entries past retention removed", removed)

    task = asyncio.create_task(loop(), name="housekeeping")
    expiry = asyncio.create_task(app[ACCOUNTS].watch_expiry(), name="session-expiry")
    yield
    await cancel_and_wait(expiry)
    await cancel_and_wait(task)


async def login_page(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    page = render(
        "login.html",
        name=config.node.name,
        hint=config.node.login_hint,
        next=local_path(request.query.get("next", "/")),
    )
    return web.Response(text=page, content_type="text/html")


def local_path(value: str) -> str:
    """`value` if it is a path of this node, else "/": where the login page may go
    next. Browsers drop tabs and newlines from URLs and read a backslash as a
    slash, so "/%09/evil" (a tab), "/\\evil" and "//evil" all leave the node; only plain
    printable ASCII paths that stay on it pass (quote() makes them of any path)."""
    if not value.startswith("/") or len(value) > 2000:
        return "/"
    if any(not 0x20 < ord(c) < 0x7F for c in value) or "\\" in value:
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or value.startswith("//"):
        return "/"
    return value


async def login(request: web.Request) -> web.Response:
    body = await read_json(request)
    name = text_field(body, "name", 64)
    password = text_field(body, "password", 256, any_char=True)
    address = request.remote or "?"
    audit = request.app[AUDIT]
    try:
        secret, user = await request.app[ACCOUNTS].login(name, password, address)
    except Refused as refused:
        await audit.record("login.failed", user=name[:64], address=address, status=refused.status)
        raise
    await audit.record("login", user=user.name, address=address)
    config = request.app[CONFIG]
    home = home_of(user, config)
    response = web.json_response({"name": user.name, "role": user.role, "home": home})
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=int(config.auth.session_hours * 3600),
        httponly=True,
        samesite="Strict",
        secure=config.node.tls is not None,
        path="/",
    )
    return response


async def logout(request: web.Request) -> web.Response:
    user = user_of(request)
    await request.app[ACCOUNTS].logout(user)
    await request.app[AUDIT].record("logout", user=user.name, address=request.remote)
    response = web.json_response({"ok": True})
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


async def me(request: web.Request) -> web.Response:
    user, config = user_of(request), request.app[CONFIG]
    team = config.team(user.team) if user.team else None
    return web.json_response(
        {
            "name": user.name,
            "role": user.role,
            "sites": sorted(user.sites),
            "team": {"id": team.id, "name": team.name} if team else None,
            "home": home_of(user, config),
            "node": {"id": config.node.id, "name": config.node.name},
            "on_alarm": config.station.on_alarm,
            "playback": plays_back(config, user),
        }
    )


async def tokens(request: web.Request) -> web.Response:
    return web.json_response(await request.app[ACCOUNTS].list_tokens(user_of(request)))


async def create_token(request: web.Request) -> web.Response:
    user = user_of(request)
    request.app[ACCOUNTS].may_make_tokens(user)
    name = text_field(await read_json(request), "name", 100)
    token_id, secret = await request.app[ACCOUNTS].create_token(user, name)
    await request.app[AUDIT].record("token.create", user=user.name, token=token_id, name=name)
    return web.json_response({"id": token_id, "name": name, "token": secret}, status=201)


async def revoke_token(request: web.Request) -> web.Response:
    user = user_of(request)
    token_id = whole_number(request.match_info["token_id"])
    # Revoking ends what was opened with the token (the accounts' listeners).
    if token_id is None or not await request.app[ACCOUNTS].revoke_token(user, token_id):
        return refuse(404, "no such token")
    await request.app[AUDIT].record("token.revoke", user=user.name, token=token_id)
    return web.json_response({"ok": True})


async def audit(request: web.Request) -> web.Response:
    filters = query_filters(request.query, ("user", "camera", "action"))
    entries = await request.app[AUDIT].query(**filters)
    return web.json_response({"now": time.time(), "entries": entries})
