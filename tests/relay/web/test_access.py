"""Access on every route, for every role, in and out of scope.

The matrix is built from the app's own router: a route added without an access
rule, or without a line in EXPECTED below, makes this test fail.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from relay.access.audit import SCHEMA as AUDIT_SCHEMA
from relay.access.audit import AuditLog
from relay.app import reload_config
from relay.config import parse_config
from relay.db import Database
from relay.web.guard import RULES
from relay.web.keys import AUDIT, DB
from relay.web.whep import WHEP
from relay.webrtc.client import WhepClient
from tests.access_nodes import USERS, config_text
from tests.conftest import ADMIN, PASSWORD, Node, NodeFactory

ROLES = ("anonymous", "admin", "officer", "operator", "watcher", "peer", "outsider", "patrol")
EVERYONE = dict.fromkeys(ROLES[1:])
PATH_VALUES = {
    "camera_id": "e1",
    "wall_id": "ew",
    "site_id": "east",
    "session_id": "no-such-session",
    "token_id": "999999",
    "event_id": "no-such-event",
    "layout_id": "999999",
    "filename": "whep-player.js",
    "segment_id": "999999",
    "export_id": "999999",
    "lead_id": "999999",
}


def expect(
    ok: int,
    *,
    anonymous: int = 401,
    denied: tuple[str, ...] = (),
    out: int = 0,
    patrol: int = 0,
) -> dict[str, int]:
    """Status per role: `ok` for the allowed, 403 for `denied` roles, `out` for the
    out-of-scope user (0: same as ok); `patrol` for the patrol, whose team has no
    alarm here, so no camera either (0: as the others)."""
    result = {"anonymous": anonymous}
    for role in ROLES[1:]:
        result[role] = 403 if role in denied else ok
    if out:
        result["outsider"] = out
    if patrol:
        result["patrol"] = patrol
    return result


PUBLIC_OK = dict.fromkeys(ROLES, 200)
NOT_ADMIN = ("officer", "operator", "watcher", "peer", "outsider", "patrol")
PAGES_NOT_FOR = ("peer", "patrol")  # watching pages: not for nodes, nor for a patrol
NO_EVIDENCE = ("peer", "watcher", "patrol")  # the leads register: PLAYERS only
EXPECTED: dict[tuple[str, str], dict[str, int]] = {
    ("GET", "/"): expect(200, anonymous=302, denied=PAGES_NOT_FOR),
    ("GET", "/login"): PUBLIC_OK,
    ("POST", "/api/login"): dict.fromkeys(ROLES, 400),  # the test sends {}
    ("POST", "/api/logout"): expect(200),
    ("GET", "/api/me"): expect(200),
    ("GET", "/api/tokens"): expect(200, denied=("peer",)),
    ("POST", "/api/tokens"): expect(403),  # a token makes none: only a login does
    ("DELETE", "/api/tokens/{token_id}"): expect(404, denied=("peer",)),
    ("GET", "/api/audit"): expect(200, denied=NOT_ADMIN),
    ("GET", "/api/health"): PUBLIC_OK,
    ("POST", "/api/events"): expect(400),  # the test sends {}: no type
    ("GET", "/api/events"): expect(200),
    ("GET", "/api/events/{event_id}/image"): expect(404),
    ("GET", "/api/cameras"): expect(200),
    ("GET", "/api/cameras/{camera_id}"): expect(200, out=404, patrol=404),
    ("GET", "/api/sites"): expect(200),
    ("OPTIONS", "/whep/{camera_id}"): dict.fromkeys(ROLES, 204),
    ("POST", "/whep/{camera_id}"): expect(415, out=404, patrol=404),  # the test sends no SDP
    ("DELETE", "/whep/sessions/{session_id}"): expect(404),
    ("PATCH", "/whep/sessions/{session_id}"): expect(404),
    ("OPTIONS", "/whep/sessions/{session_id}"): dict.fromkeys(ROLES, 204),
    ("GET", "/view/{camera_id}"): expect(200, anonymous=302, out=404, patrol=404),
    ("GET", "/static/{filename}"): PUBLIC_OK,
    ("GET", "/wall/{wall_id}"): expect(200, anonymous=302, out=404, denied=PAGES_NOT_FOR),
    ("GET", "/station"): expect(200, anonymous=302, denied=PAGES_NOT_FOR),
    ("GET", "/api/walls"): expect(200, patrol=403),
    ("GET", "/api/walls/{wall_id}"): expect(200, out=404, patrol=403),
    ("GET", "/api/layouts"): expect(200, denied=("peer", "patrol")),
    ("POST", "/api/layouts"): expect(400, denied=("peer", "patrol")),  # the test sends {}
    ("DELETE", "/api/layouts/{layout_id}"): expect(404, denied=("peer", "patrol")),
    ("GET", "/metrics"): expect(200, denied=tuple(ROLES[2:])),  # admin and role metrics
    ("GET", "/api/cameras/{camera_id}/motion"): expect(200, out=404, patrol=404),
    ("GET", "/api/cameras/{camera_id}/picture"): expect(200, out=404, patrol=404),
    # admins only; e1 has no motion: 409 once the rule lets the admin through
    ("GET", "/api/cameras/{camera_id}/motion/regions"): expect(409, denied=NOT_ADMIN),
    ("PUT", "/api/cameras/{camera_id}/motion/regions"): expect(409, denied=NOT_ADMIN),
    ("DELETE", "/api/cameras/{camera_id}/motion/regions"): expect(409, denied=NOT_ADMIN),
    ("GET", "/cameras/{camera_id}/motion"): expect(409, anonymous=302, denied=NOT_ADMIN),
    ("GET", "/api/inspection"): expect(200, patrol=403),
    ("GET", "/api/inspection.csv"): expect(200, patrol=403),
    ("GET", "/inspection"): expect(200, anonymous=302, denied=PAGES_NOT_FOR),
    # A peer node plays back and exports for its users (docs/cascade.md).
    ("GET", "/api/cameras/{camera_id}/recordings"): expect(
        200, denied=("watcher",), out=404, patrol=404
    ),
    ("POST", "/api/cameras/{camera_id}/playback"): expect(
        400, denied=("watcher",), out=404, patrol=404
    ),
    ("GET", "/api/cameras/{camera_id}/segments/{segment_id}"): expect(
        403, denied=("watcher",), out=404, patrol=404
    ),
    ("DELETE", "/api/playback/{session_id}"): expect(404),
    ("POST", "/api/exports"): expect(404, denied=("watcher", "patrol")),  # {}: no camera
    ("GET", "/api/exports"): expect(200, denied=("watcher", "patrol")),
    ("GET", "/api/exports/{export_id}"): expect(404, denied=("watcher", "patrol")),
    ("GET", "/api/exports/{export_id}/file"): expect(404, denied=("watcher", "patrol")),
    ("GET", "/api/exports/{export_id}/manifest"): expect(404, denied=("watcher", "patrol")),
    ("DELETE", "/api/exports/{export_id}"): expect(404, denied=NOT_ADMIN),
    ("POST", "/api/leads"): expect(400, denied=NO_EVIDENCE),
    ("GET", "/api/leads"): expect(200, denied=NO_EVIDENCE),
    ("GET", "/api/leads/stats"): expect(200, denied=NO_EVIDENCE),
    ("PATCH", "/api/leads/{lead_id}"): expect(404, denied=NO_EVIDENCE),
    ("GET", "/playback"): expect(200, anonymous=302, denied=("peer", "watcher", "patrol")),
    ("GET", "/api/alarms"): expect(200),
    ("GET", "/api/alarms.csv"): expect(200, denied=("watcher", "peer", "patrol")),
    ("GET", "/api/patrol-teams"): expect(200),
    ("GET", "/api/lookouts"): expect(200),
    ("GET", "/alarms"): expect(200, anonymous=302, denied=("watcher", "peer", "patrol")),
    ("GET", "/patrol"): expect(
        200, anonymous=302, denied=("operator", "watcher", "peer", "outsider")
    ),
    ("GET", "/api/cameras/{camera_id}/stream"): expect(
        200, denied=("officer", "operator", "watcher", "outsider", "patrol")
    ),
    ("GET", "/api/peers"): expect(200, denied=NOT_ADMIN),
    # a WebSocket: the allowed get as far as the missing upgrade
    ("GET", "/api/catalog"): expect(
        400, denied=("officer", "operator", "watcher", "outsider", "patrol")
    ),
}
ENDLESS = {("GET", "/api/cameras/{camera_id}/stream")}  # a 200 streams until closed


def token_of(role: str) -> dict[str, str]:
    if role == "anonymous":
        return {}
    if role == "admin":
        return ADMIN
    return {"Authorization": f"Bearer {role}-token"}


def routes(node: Node) -> list[tuple[str, str]]:
    found = []
    for route in node.app.router.routes():
        info = route.get_info()
        path = info.get("formatter") or info.get("path")
        found.append((route.method, str(path)))
    return found


async def test_every_route_for_every_role(start_node: NodeFactory) -> None:
    node = await start_node(config_text())
    rules = node.app[RULES]
    assert all(route in rules for route in node.app.router.routes()), "a route has no rule"
    seen = routes(node)
    missing = set(seen) - set(EXPECTED)
    assert not missing, f"routes with no expected access in this test: {sorted(missing)}"

    wrong = []
    async with aiohttp.ClientSession(node.url) as http:
        for method, template in seen:
            path = re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES[m.group(1)], template)
            for role, want in EXPECTED[(method, template)].items():
                async with http.request(
                    method,
                    path,
                    json={} if method in ("POST", "PATCH") else None,
                    headers=token_of(role),
                    allow_redirects=False,
                ) as response:
                    endless = (method, template) in ENDLESS and response.status == 200
                    raw = b"" if endless else await response.read()  # a JPEG, too
                    body = raw.decode(errors="replace")
                    if response.status != want:
                        wrong.append(f"{method} {path} as {role}: {response.status} != {want}")
                    assert "Traceback" not in body
    assert not wrong, "\n".join(wrong)


async def test_lists_show_only_what_is_in_scope(start_node: NodeFactory) -> None:
    node = await start_node(config_text())
    async with aiohttp.ClientSession(node.url) as http:

        async def get(path: str, role: str) -> Any:
            async with http.get(path, headers=token_of(role)) as r:
                assert r.status == 200
                return await r.json()

        assert [c["id"] for c in await get("/api/cameras", "operator")] == ["e1"]
        assert [c["id"] for c in await get("/api/cameras", "officer")] == ["e1", "w1"]
        (east,) = await get("/api/sites", "operator")
        assert (east["id"], east["cameras"], east["children"]) == ("east", 1, [])
        (station,) = await get("/api/sites", "officer")
        assert {c["id"] for c in station["children"]} == {"east", "west"}
        assert sorted((await get("/api/me", "officer"))["sites"]) == ["east", "station", "west"]


def browser_like(node: Node) -> aiohttp.ClientSession:
    """A client that keeps cookies for 127.0.0.1, as browsers do."""
    return aiohttp.ClientSession(node.url, cookie_jar=aiohttp.CookieJar(unsafe=True))


async def test_browser_session_cookie(start_node: NodeFactory) -> None:
    node = await start_node(config_text())
    async with browser_like(node) as http:
        async with http.post("/api/login", json={"name": "operator", "password": "nope"}) as r:
            assert (r.status, await r.text()) == (401, "wrong name or password\n")
        async with http.post("/api/login", json={"name": "nobody", "password": "nope"}) as r:
            assert (r.status, await r.text()) == (401, "wrong name or password\n")
        async with http.post("/api/login", json={"name": "operator", "password": PASSWORD}) as r:
            assert r.status == 200
            cookie = r.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Max-Age=" in cookie
        async with http.get("/api/me") as r:
            assert (await r.json())["name"] == "operator"
        # A change with the cookie but from another site (or no origin at all) is refused.
        async with http.post("/api/tokens", json={"name": "x"}) as r:
            assert (r.status, await r.text()) == (403, "cross-site request refused\n")
        evil = {"Origin": "http://evil.example"}
        async with http.post("/api/tokens", json={"name": "x"}, headers=evil) as r:
            assert r.status == 403
        own = {"Origin": node.url}
        async with http.post("/api/tokens", json={"name": "phone"}, headers=own) as r:
            assert r.status == 201
        async with http.post("/api/logout", headers=own) as r:
            assert r.status == 200
        async with http.get("/api/me") as r:
            assert r.status == 401


async def test_sessions_expire(start_node: NodeFactory) -> None:
    node = await start_node(config_text() + "auth: {session_hours: 0.0003}\n")  # ~1 s
    async with browser_like(node) as http:
        async with http.post("/api/login", json={"name": "operator", "password": PASSWORD}) as r:
            assert r.status == 200
        async with http.get("/api/me") as r:
            assert r.status == 200
        await asyncio.sleep(1.2)  # what is measured is the passing of time itself
        async with http.get("/api/me") as r:
            assert r.status == 401


async def test_revoked_token_ends_its_viewing_sessions(start_node: NodeFactory) -> None:
    node = await start_node(config_text())
    async with browser_like(node) as http:
        async with http.post("/api/login", json={"name": "admin", "password": PASSWORD}) as r:
            assert r.status == 200
        own = {"Origin": node.url}
        async with http.post("/api/tokens", json={"name": "wall pc"}, headers=own) as r:
            created = await r.json()
        async with http.get("/api/tokens", headers=ADMIN) as r:
            listed = await r.json()
        assert [t["name"] for t in listed] == ["wall pc"]
        assert created["token"] not in str(listed), "tokens are listed without their secret"
        client = WhepClient(f"{node.url}/whep/e1", token=created["token"])
        await client.connect(http)
        async with asyncio.timeout(10):
            await client.first_frame()
        assert len(node.app[WHEP].sessions) == 1
        async with http.delete(f"/api/tokens/{created['id']}", headers=ADMIN) as r:
            assert r.status == 200
        assert node.app[WHEP].sessions == {}
        headers = {"Authorization": f"Bearer {created['token']}"}
        async with http.get("/api/me", headers=headers) as r:
            assert r.status == 401
        await client.close(None)


async def test_removed_user_loses_access_and_sessions(start_node: NodeFactory) -> None:
    node = await start_node(config_text())
    async with aiohttp.ClientSession(node.url) as http:
        client = WhepClient(f"{node.url}/whep/e1", token="operator-token")
        await client.connect(http)
        assert len(node.app[WHEP].sessions) == 1
        fewer = parse_config(config_text(tuple(u for u in USERS if u[0] != "operator")))
        pending = await reload_config(node.app, fewer)
        assert pending == ["node.data_dir"], "the data_dir differs: a restart applies it"
        assert node.app[WHEP].sessions == {}
        async with http.get("/api/me", headers=token_of("operator")) as r:
            assert r.status == 401
        await client.close(None)


async def test_audit_records_who_watched_what(start_node: NodeFactory) -> None:
    node = await start_node(config_text())
    started = time.time()
    async with aiohttp.ClientSession(node.url) as http:
        client = WhepClient(f"{node.url}/whep/e1", token="watcher-token")
        await client.connect(http)
        await client.close(http)
        await node.app[AUDIT].record("other", user="admin")
        query = f"/api/audit?user=watcher&camera=e1&since={started - 1}"
        async with http.get(query, headers=ADMIN) as r:
            entries = (await r.json())["entries"]
        async with http.get("/api/audit?since=soon", headers=ADMIN) as r:
            assert (r.status, await r.text()) == (400, "since must be a Unix time in seconds\n")
    assert [e["action"] for e in entries] == ["view.end", "view.start"]
    assert all(e["address"] == "127.0.0.1" for e in entries)
    assert entries[0]["detail"]["seconds"] >= 0


async def test_audit_entries_recorded_together_share_transactions(tmp_path: Path) -> None:
    db = Database(tmp_path / "audit.sqlite", AUDIT_SCHEMA)
    await db.open()
    audit, trips = AuditLog(db), 0
    submit = db.submit

    def counted(*args: Any) -> None:
        nonlocal trips
        trips += 1
        submit(*args)

    db.submit = counted  # type: ignore[method-assign,assignment]
    async with asyncio.timeout(10):
        await asyncio.gather(*(audit.record("view.start", user=f"u{i}") for i in range(50)))
    assert trips <= 3, f"{trips} trips to SQLite for 50 entries"
    assert sorted(e["user"] for e in await audit.query()) == sorted(f"u{i}" for i in range(50))
    await db.close()
    with pytest.raises(RuntimeError):  # a closed database is an error, never a hang
        async with asyncio.timeout(5):
            await audit.record("view.end", user="u0")


async def test_audit_cannot_be_rewritten(start_node: NodeFactory) -> None:
    node = await start_node(config_text())
    await node.app[AUDIT].record("login", user="operator")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        await node.app[DB].execute("UPDATE audit SET user = 'someone else'")


async def test_audit_keeps_entries_for_its_retention_only(start_node: NodeFactory) -> None:
    node = await start_node(config_text())
    old = time.time() - 400 * 86400
    await node.app[DB].insert("INSERT INTO audit (time, action) VALUES (?, 'login')", (old,))
    await node.app[AUDIT].record("login", user="operator")
    assert await node.app[AUDIT].prune(retention_days=365) == 1
    assert [e["user"] for e in await node.app[AUDIT].query()] == ["operator"]
