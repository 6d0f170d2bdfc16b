"""Who may play back, the refusals, and the audit of every playback session."""

from __future__ import annotations

import time
from typing import Any

import aiohttp

from relay.record import fmp4
from relay.web.recordings import PLAYBACK, RECORDINGS
from tests.conftest import ADMIN, PASSWORD, Node, NodeFactory, users_yaml
from tests.relay.record.common import closed_segments

CONFIG = (
    "node: {id: test, name: Test node}\n"
    "sites:\n"
    "  - {id: east, name: East}\n"
    "  - {id: west, name: West}\n"
    "cameras:\n"
    "  - {id: cam1, name: One, site: east,"
    " main: 'synthetic://320x180?fps=15&keyframe_interval=1'}\n"
    "storage: {segment_seconds: 5}\n"
) + users_yaml(
    ("looker", "viewer", "east"), ("westop", "operator", "west"), ("eastop", "operator", "east")
)
# the same viewer, granted playback
GRANTED = CONFIG.replace(
    "{name: looker, role: viewer,", "{name: looker, role: viewer, playback: true,"
)


async def call(node: Node, method: str, path: str, who: str, body: Any = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {who}-token"} if who != "admin" else ADMIN
    async with (
        aiohttp.ClientSession(headers=headers) as http,
        http.request(method, node.url + path, json=body) as r,
    ):
        if r.content_type == "application/json":
            return r.status, await r.json()
        return r.status, await r.read()


async def test_playback_rights_refusals_and_audit(start_node: NodeFactory) -> None:
    node = await start_node(CONFIG)
    segment = (await closed_segments(node.app[RECORDINGS], "cam1", 1))[0]
    at = segment.start + 2
    recordings = f"/api/cameras/cam1/recordings?since={at - 60}&until={at + 60}"
    assert (await call(node, "GET", recordings, "looker"))[0] == 403  # live only
    assert (await call(node, "GET", recordings, "westop"))[0] == 404  # not their site
    status, reason = await call(
        node, "GET", f"/api/cameras/cam1/recordings?since={at}&until={at - 1}", "eastop"
    )
    assert (status, reason) == (400, b"the start is not before the end\n")
    status, reason = await call(
        node, "POST", "/api/cameras/cam1/playback", "eastop", {"at": at - 3600}
    )
    assert (status, reason) == (404, b"nothing is recorded at that moment\n")
    media = f"/api/cameras/cam1/segments/{segment.id}?from={at}"
    assert (await call(node, "GET", media + "&session=made-up", "eastop"))[0] == 403

    status, opened = await call(node, "POST", "/api/cameras/cam1/playback", "eastop", {"at": at})
    assert status == 201
    status, data = await call(node, "GET", f"{media}&session={opened['session']}", "eastop")
    assert status == 200
    # init part then fragments from the one holding the moment
    kinds = [kind for kind, _, _ in fmp4._boxes(data)]
    assert kinds[:3] == [b"ftyp", b"moov", b"moof"]
    assert len(data) < segment.bytes  # the fragments before the moment are left out
    assert (await call(node, "GET", f"{media}&session={opened['session']}", "westop"))[0] == 404
    status, _ = await call(node, "DELETE", f"/api/playback/{opened['session']}", "eastop")
    assert status == 204
    _, audit = await call(node, "GET", "/api/audit?camera=cam1", "admin")
    entries = {e["action"]: e for e in audit["entries"]}
    assert entries["playback.start"]["user"] == "eastop"
    assert entries["playback.start"]["address"] == "127.0.0.1"
    end = entries["playback.end"]["detail"]
    assert end["start"] <= at + 0.01 and at < end["end"] <= segment.end + 0.01

    granted = await start_node(GRANTED)
    await closed_segments(granted.app[RECORDINGS], "cam1", 1)
    now = time.time()
    status, _ = await call(
        granted, "GET", f"/api/cameras/cam1/recordings?since={now - 60}", "looker"
    )
    assert status == 200


async def test_me_tells_the_pages_exactly_who_may_play_back(start_node: NodeFactory) -> None:
    """/api/me's `playback` (the wall's look-back button) agrees with the routes."""
    for config, viewer_plays in ((CONFIG, False), (GRANTED, True)):
        node = await start_node(config)
        for who, plays in (("looker", viewer_plays), ("eastop", True), ("admin", True)):
            _, me = await call(node, "GET", "/api/me", who)
            assert me["playback"] is plays, (who, me)
            now = time.time()
            status, _ = await call(
                node, "GET", f"/api/cameras/cam1/recordings?since={now - 60}", who
            )
            assert status == (200 if plays else 403), (who, status)


async def test_recordings_name_the_nearest_footage_outside_the_span(
    start_node: NodeFactory,
) -> None:
    """A day (or any span) with nothing recorded still answers, with the last recorded
    moment before it and the first after it: the page offers to jump there."""
    node = await start_node(CONFIG)
    segments = await closed_segments(node.app[RECORDINGS], "cam1", 2)
    first, last = segments[0], segments[-1]

    async def nearest(since: float, until: float) -> tuple[Any, Any, list[Any]]:
        path = f"/api/cameras/cam1/recordings?since={since}&until={until}"
        status, body = await call(node, "GET", path, "eastop")
        assert status == 200, body
        return body["before"], body["after"], body["spans"]

    before, after, spans = await nearest(first.start - 7200, first.start - 3600)
    assert (before, spans) == (None, []) and abs(after - first.start) < 0.01
    before, after, spans = await nearest(last.end + 3600, last.end + 7200)
    assert after is None and spans == []
    # the open segment grows on: the latest moment is at least the last closed file's end
    assert before >= last.end - 0.01
    # files meet end to end, within the packets' arrival jitter: the next one
    # starts after a span that ends inside the first
    before, after, spans = await nearest(first.start - 1, (first.start + first.end) / 2)
    assert before is None and spans and abs(after - segments[1].start) < 0.01


async def test_a_logout_ends_its_playback_sessions_at_once(start_node: NodeFactory) -> None:
    """A playback session lives no longer than the login it was opened with: it
    ends, audited with what was watched, when the login does, not 2 min later."""
    node = await start_node(CONFIG)
    segment = (await closed_segments(node.app[RECORDINGS], "cam1", 1))[0]
    async with aiohttp.ClientSession(
        node.url, cookie_jar=aiohttp.CookieJar(unsafe=True), headers={"Origin": node.url}
    ) as browser:
        async with browser.post("/api/login", json={"name": "eastop", "password": PASSWORD}) as r:
            assert r.status == 200
        at = segment.start + 1
        async with browser.post("/api/cameras/cam1/playback", json={"at": at}) as r:
            assert r.status == 201, await r.text()
            opened = (await r.json())["session"]
        media = f"/api/cameras/cam1/segments/{segment.id}?from={at}&session={opened}"
        async with browser.get(media) as r:
            assert r.status == 200
        # another login of the same user keeps its own session
        status, other = await call(node, "POST", "/api/cameras/cam1/playback", "eastop", {"at": at})
        assert status == 201
        async with browser.post("/api/logout") as r:
            assert r.status == 200
    sessions: dict[str, Any] = node.app[PLAYBACK]
    assert set(sessions) == {other["session"]}
    _, audit = await call(node, "GET", "/api/audit?camera=cam1", "admin")
    (end,) = [e for e in audit["entries"] if e["action"] == "playback.end"]
    assert end["detail"]["session"] == opened and end["detail"]["reason"] == "access ended"
    assert end["detail"]["start"] - 0.01 <= at <= end["detail"]["end"] + 1  # what was watched
