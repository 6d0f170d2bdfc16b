"""Who may use which route: one rule per route, enforced by one middleware.

Every route is added with its `Rule`; a route without one is refused (fail closed),
and tests/relay/test_access.py walks the router to check every rule. An object out
of a user's scope answers 404, exactly like one that does not exist.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, urlsplit

from aiohttp import hdrs, web

from relay.access.accounts import Accounts, User
from relay.web.keys import CONFIG
from relay.web.refusals import refuse

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Scope = Literal["camera", "wall", "site"]

EVERY_ROLE = frozenset(("admin", "officer", "operator", "viewer", "patrol", "node"))
PEOPLE = EVERY_ROLE - {"node"}
SESSION_COOKIE = "vw_session"
UNSAFE = frozenset(("POST", "PUT", "PATCH", "DELETE"))


@dataclass(frozen=True)
class Rule:
    roles: frozenset[str] | None  # None: no login needed
    scope: Scope | None = None  # the path's {camera_id}/{wall_id}/{site_id} must be in scope
    page: bool = False  # anonymous: redirect to the login page instead of 401


PUBLIC = Rule(None)


def logged_in(
    roles: frozenset[str] = EVERY_ROLE, scope: Scope | None = None, page: bool = False
) -> Rule:
    return Rule(roles, scope, page)


RULES = web.AppKey("access_rules", dict[web.AbstractRoute, Rule])
ACCOUNTS = web.AppKey("accounts", Accounts)
USER = web.RequestKey("user", User)


def add_route(app: web.Application, method: str, path: str, handler: Handler, rule: Rule) -> None:
    route = app.router.add_route(method, path, handler)
    app.setdefault(RULES, {})[route] = rule


def user_of(request: web.Request) -> User:
    return request[USER]


def identify(request: web.Request) -> User | None:
    accounts = request.app[ACCOUNTS]
    header = request.headers.get(hdrs.AUTHORIZATION, "")
    if header.lower().startswith("bearer "):
        return accounts.from_token(header[7:].strip())
    cookie = request.cookies.get(SESSION_COOKIE)
    return accounts.from_session(cookie) if cookie else None


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    route = request.match_info.route
    if request.match_info.http_exception is not None:
        return await handler(request)  # aiohttp's own 404 / 405
    rule = request.app[RULES].get(route)
    if rule is None:
        return refuse(403, "this address has no access rule")
    if rule.roles is None:
        return await handler(request)
    user = identify(request)
    if user is None:
        if rule.page:
            raise web.HTTPFound(f"/login?next={quote(request.path_qs)}")
        return refuse(401, "log in first", **{"WWW-Authenticate": 'Bearer realm="villagewatch"'})
    if user.role not in rule.roles:
        return refuse(403, f"not allowed for role {user.role}")
    if rule.scope is not None and not _in_scope(request, rule.scope, user):
        return refuse(404, f"no such {rule.scope}")
    if user.via == "session" and request.method in UNSAFE and not _same_origin(request):
        return refuse(403, "cross-site request refused")
    request[USER] = user
    return await handler(request)


def _in_scope(request: web.Request, scope: Scope, user: User) -> bool:
    config = request.app[CONFIG]
    key = request.match_info.get(f"{scope}_id", "")
    if scope == "camera":
        camera = config.camera(key)
        return camera is not None and user.sees(camera.site)
    if scope == "wall":
        wall = config.wall(key)
        return wall is not None and user.sees(wall.site)
    return user.sees(key)


def _same_origin(request: web.Request) -> bool:
    """Cookie-authenticated changes must come from our own pages (SameSite=Strict
    already keeps the cookie off other sites' requests; this is the second lock)."""
    source = request.headers.get(hdrs.ORIGIN) or request.headers.get(hdrs.REFERER)
    if not source:
        return False
    return urlsplit(source).netloc == request.host
