"""Who may use which route: one rule per route, enforced by one middleware.

Every route is added with its `Rule`; a route without one is refused (fail closed),
and tests/relay/web/test_access.py walks the router to check every rule. An object out
of a user's scope answers 404, exactly like one that does not exist.

A patrol (a team's phone) works the alarms assigned to its team: its cameras are
those of its team's unresolved alarms only, and walls, the station, the overview
and the inspection are not for it (`WATCHERS` leaves it out).
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
WATCHERS = PEOPLE - {"patrol"}  # people who watch cameras, walls and the upkeep
NOT_PATROL = EVERY_ROLE - {"patrol"}  # the same, and other nodes
SESSION_COOKIE = "vw_session"
UNSAFE = frozenset(("POST", "PUT", "PATCH", "DELETE"))


@dataclass(frozen=True)
class Rule:
    roles: frozenset[str] | None  # None: no login needed
    scope: Scope | None = None  # the path's {camera_id}/{wall_id}/{site_id} must be in scope
    page: bool = False  # anonymous: redirect to the login page instead of 401
    allow_from: Callable[[web.Request], bool] | None = None  # anonymous, if it says so


PUBLIC = Rule(None)


def logged_in(
    roles: frozenset[str] = EVERY_ROLE, scope: Scope | None = None, page: bool = False
) -> Rule:
    return Rule(roles, scope, page)


RULES = web.AppKey("access_rules", dict[web.AbstractRoute, Rule])
ACCOUNTS = web.AppKey("accounts", Accounts)
USER = web.RequestKey("user", User)
# A page's refusal (403, 404) as an HTML page with the header; pages.py makes it.
REFUSAL_PAGE: web.AppKey[Callable[[web.Request, int], web.Response]] = web.AppKey("refusal_page")
# The cameras of a patrol's team's unresolved alarms (the alarm workflow knows them).
PatrolCameras = Callable[[User], Awaitable[frozenset[str]]]
PATROL_CAMERAS: web.AppKey[PatrolCameras] = web.AppKey("patrol_cameras")


def add_route(app: web.Application, method: str, path: str, handler: Handler, rule: Rule) -> None:
    route = app.router.add_route(method, path, handler)
    app.setdefault(RULES, {})[route] = rule


def user_of(request: web.Request) -> User:
    return request[USER]


def identify(request: web.Request) -> User | None:
    accounts = request.app[ACCOUNTS]
    header = request.headers.get(hdrs.AUTHORIZATION, "")
    if header.lower().startswith("bearer "):
        token = header[7:].strip()
        return accounts.from_token(token) if _credential_shaped(token) else None
    cookie = request.cookies.get(SESSION_COOKIE)
    return accounts.from_session(cookie) if cookie and _credential_shaped(cookie) else None


def _credential_shaped(secret: str) -> bool:
    """Secrets the node makes are short printable ASCII; anything else (raw bytes
    arrive as lone surrogates, which no hash can take) is no credential at all."""
    return len(secret) <= 512 and secret.isascii() and secret.isprintable()


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
    if user is None and rule.allow_from is not None and rule.allow_from(request):
        return await handler(request)
    if user is None:
        if rule.page:
            raise web.HTTPFound(f"/login?next={quote(request.path_qs)}")
        return refuse(401, "log in first", **{"WWW-Authenticate": 'Bearer realm="villagewatch"'})
    if user.role not in rule.roles:
        return _refuse(request, rule, 403, f"not allowed for role {user.role}")
    if rule.scope is not None and not await _in_scope(request, rule.scope, user):
        return _refuse(request, rule, 404, f"no such {rule.scope}")
    if _changes(request) and not _origin_allowed(request, user):
        return refuse(403, "cross-site request refused")
    request[USER] = user
    return await handler(request)


def _refuse(request: web.Request, rule: Rule, status: int, reason: str) -> web.Response:
    """A person who opens a page they may not see gets a page (with the header, to
    go elsewhere or log out); programs calling an API get the one-line reason."""
    page = request.app.get(REFUSAL_PAGE)
    if rule.page and page is not None:
        return page(request, status)
    return refuse(status, reason)


async def _in_scope(request: web.Request, scope: Scope, user: User) -> bool:
    config = request.app[CONFIG]
    key = request.match_info.get(f"{scope}_id", "")
    if scope == "camera":
        camera = config.camera(key)
        if camera is None or not user.sees(camera.site):
            return False
        return user.role != "patrol" or key in await patrol_cameras(request, user)
    if scope == "wall":
        wall = config.wall(key)
        return wall is not None and user.sees(wall.site)
    return user.sees(key)


async def patrol_cameras(request: web.Request, user: User) -> frozenset[str]:
    """A patrol's cameras; none when the node has no alarm workflow (fail closed)."""
    cameras = request.app.get(PATROL_CAMERAS)
    return await cameras(user) if cameras is not None else frozenset()


def _changes(request: web.Request) -> bool:
    """An unsafe method, or a WebSocket upgrade (a GET that opens a live channel)."""
    upgrade = request.headers.get(hdrs.UPGRADE, "").lower() == "websocket"
    return request.method in UNSAFE or upgrade


def _origin_allowed(request: web.Request, user: User) -> bool:
    """Cookie-authenticated changes must come from our own pages (SameSite=Strict
    keeps the cookie off other sites' requests, but not off another port of this
    host: this is the second lock). A foreign Origin is refused whatever the
    credential; a token may come without one (programs send none)."""
    source = request.headers.get(hdrs.ORIGIN) or request.headers.get(hdrs.REFERER)
    if not source:
        return user.via != "session"
    return same_origin(source, request)


DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def same_origin(source: str, request: web.Request) -> bool:
    """Whether `source` (an Origin or Referer) has the request's scheme, host and
    port (RFC 6454), not only a look-alike netloc."""
    try:
        theirs = urlsplit(source)
        ours = urlsplit(f"{request.scheme}://{request.host}")
        their_port = theirs.port or DEFAULT_PORTS.get(theirs.scheme)
        our_port = ours.port or DEFAULT_PORTS.get(ours.scheme)
    except ValueError:  # a port that is not a number, a malformed IPv6 address
        return False
    return (
        theirs.scheme == ours.scheme
        and theirs.username is None
        and theirs.password is None
        and theirs.hostname is not None
        and theirs.hostname == ours.hostname
        and their_port == our_port
    )
