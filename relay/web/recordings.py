"""Recordings over HTTP: spans and gaps, audited playback sessions, fMP4 media.

Playback is MSE in the browser fed with the recorder's own fMP4: a segment's
init part and its fragments from a moment on, by segment id (never a path); for
a session whose browser cannot take H.265, that part transcoded to H.264.
Every playback session is in the audit log: who, camera, the span watched, from
where.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator
from concurrent.futures import Future
from dataclasses import dataclass, field

from aiohttp import web

from relay.access.accounts import User
from relay.bus.events import Event, new_event
from relay.bus.store import StoredEvent
from relay.config import CameraConfig, Config
from relay.peers.channel import SEPARATOR
from relay.record import fmp4, index
from relay.record.playback import Part, read_part
from relay.record.retention import RetentionReport
from relay.record.service import Recordings, parse_span
from relay.record.transcode import Transcodes
from relay.refusal import Refused
from relay.web import remote_recordings as remote
from relay.web.body import read_json
from relay.web.events import BUS
from relay.web.guard import ACCOUNTS, PEOPLE, REFUSAL_PAGE, add_route, logged_in, user_of
from relay.web.keys import AUDIT, CONFIG, DB, HUB, RELOAD_LISTENERS
from relay.web.pages import render

logger = logging.getLogger(__name__)

RECORDINGS = web.AppKey("recordings", Recordings)
PLAYBACK = web.AppKey("playback_sessions", dict[str, "PlaybackSession"])
TRANSCODES = web.AppKey("playback_transcodes", Transcodes)
SESSION_IDLE = 120.0  # a session nobody fetched for this long is ended (and audited)
PLAYERS = frozenset({"admin", "officer", "operator"})
# A peer node plays back for its users, within the sites granted to it.
PLAYERS_AND_PEERS = PEOPLE | {"node"}


@dataclass
class PlaybackSession:
    id: str
    user: str
    camera: str
    address: str | None
    asked: float
    first: float
    last: float
    touched: float
    h265: bool  # the browser takes H.265 as recorded; if not, it is transcoded
    detail: dict[str, str] = field(default_factory=dict)  # for the audit: node, on_behalf
    node: str | None = None  # a remote camera's: the peer holding it...
    remote: str = ""  # ...and the session opened there
    credential: str = ""  # the login or token it was opened with: it ends with it


def setup(app: web.Application) -> None:
    camera = logged_in(PLAYERS_AND_PEERS, scope="camera")
    add_route(app, "GET", "/api/cameras/{camera_id}/recordings", recordings, camera)
    add_route(app, "POST", "/api/cameras/{camera_id}/playback", start_playback, camera)
    add_route(app, "GET", "/api/cameras/{camera_id}/segments/{segment_id}", media, camera)
    add_route(
        app, "DELETE", "/api/playback/{session_id}", end_playback, logged_in(PLAYERS_AND_PEERS)
    )
    add_route(app, "GET", "/playback", page, logged_in(PEOPLE, page=True))
    app[PLAYBACK] = {}
    app[TRANSCODES] = Transcodes()


async def page(request: web.Request) -> web.Response:
    if not plays_back(request.app[CONFIG], user_of(request)):
        return request.app[REFUSAL_PAGE](request, 403)  # a live-only viewer, a patrol
    text = render("playback.html", name=request.app[CONFIG].node.name)
    return web.Response(text=text, content_type="text/html")


async def lifecycle(app: web.Application) -> AsyncIterator[None]:
    """The recorders, retention, and what they hear from and tell the bus: every
    alarm raised here locks its clip; storage turning low raises storage.low."""
    config, bus = app[CONFIG], app[BUS]
    service = Recordings(config, app[HUB], app[DB])
    app[RECORDINGS] = service
    publishing: set[asyncio.Task[object]] = set()

    def storage_low(report: RetentionReport) -> None:
        root = next(s.id for s in config.sites if s.parent is None)
        event = new_event(config.node.id, "storage.low", root, data=report.as_json())
        task = asyncio.create_task(bus.publish(event))
        publishing.add(task)
        task.add_done_callback(publishing.discard)

    def alarms(committed: list[StoredEvent]) -> None:
        for stored in committed:
            event = stored.event
            cam = _own_camera(app[CONFIG], event)  # the config of now: reloads
            if event.type == "alarm" and cam is not None:
                app[DB].submit(functools.partial(_lock_clip, cam, event), _logged)

    service.on_storage_low.append(storage_low)
    bus.on_local.append(alarms)
    bus.on_received.append(alarms)
    await service.start()
    app[RELOAD_LISTENERS].append(service.apply)
    yield
    app[RELOAD_LISTENERS].remove(service.apply)
    bus.on_local.remove(alarms)
    bus.on_received.remove(alarms)
    await service.close()
    for task in list(publishing):
        await asyncio.wait([task])
    for session in list(app[PLAYBACK].values()):
        await _end(app, session)


def _own_camera(config: Config, event: Event) -> CameraConfig | None:
    """The camera of this node an alarm is about: raised here, or raised by a peer
    on this node's camera as the peer names it (NODE.CAMERA, docs/cascade.md)."""
    name = event.camera or ""
    if event.origin != config.node.id:
        prefix = f"{config.node.id}{SEPARATOR}"
        name = name.removeprefix(prefix) if name.startswith(prefix) else ""
    cam = config.camera(name)
    return cam if cam is not None and SEPARATOR not in cam.id else None  # a peer's: there


def _lock_clip(cam: CameraConfig, event: Event, conn: sqlite3.Connection) -> int:
    """An alarm's clip (pre and post seconds around it) is kept from retention."""
    start, end = event.time - cam.record.pre, event.time + cam.record.post
    return index.lock(conn, cam.id, start=start, end=end, kind="alarm", ref=event.id)


def _logged(done: Future[object]) -> None:
    if done.exception() is not None:
        logger.warning("alarm clip not locked: %s", done.exception())


def plays_back(config: Config, user: User) -> bool:
    """Whether the user may watch recordings: the players, a peer node, and a
    viewer the config grants `playback` (what /api/me tells the pages)."""
    if user.role in PLAYERS or user.role == "node":
        return True
    account = next((u for u in config.users if u.name == user.name), None)
    return user.role == "viewer" and account is not None and account.playback


def may_play(request: web.Request, user: User) -> None:
    if not plays_back(request.app[CONFIG], user):
        raise Refused(403, f"role {user.role} may watch live video only")


async def recordings(request: web.Request) -> web.Response:
    may_play(request, user_of(request))
    if (peer := remote.remote_of(request, "camera_id")) is not None:
        return await remote.recordings(request, peer)
    camera_id = request.match_info["camera_id"]
    since, until = parse_span(request.query.get("since"), request.query.get("until"))
    service = request.app[RECORDINGS]
    segments = await service.segments(camera_id, since, until)
    marks = await request.app[DB].fetch(
        "SELECT start, end, kind, ref FROM evidence_locks"
        " WHERE camera = ? AND start < ? AND end > ?",
        (camera_id, until, since),
    )
    before, after = await _nearest(request, camera_id, since, until)
    return web.json_response(
        {
            "camera": camera_id,
            "since": since,
            "until": until,
            **index.spans(segments, since, until),
            "segments": [s.as_json() for s in segments],
            "evidence": [dict(m) for m in marks],
            "recording": service.status(camera_id),
            "before": before,
            "after": after,
        }
    )


async def _nearest(
    request: web.Request, camera_id: str, since: float, until: float
) -> tuple[float | None, float | None]:
    """The recorded moments nearest outside the span asked: the last one before
    `since` and the first after `until` (None: nothing there). A page asked for
    a day with no footage offers to jump to them."""
    rows = await request.app[DB].fetch(
        "SELECT (SELECT MAX(end) FROM segments WHERE camera = ? AND end <= ? AND end > start),"
        " (SELECT MIN(start) FROM segments WHERE camera = ? AND start >= ? AND end > start)",
        (camera_id, since, camera_id, until),
    )
    return rows[0][0], rows[0][1]


async def start_playback(request: web.Request) -> web.Response:
    """Opens an audited session at a moment; media requests name it."""
    user = user_of(request)
    may_play(request, user)
    camera_id = request.match_info["camera_id"]
    body = await read_json(request)
    at = body.get("at")
    if not isinstance(at, int | float) or isinstance(at, bool):
        raise Refused(400, "at must be epoch seconds")
    h265 = body.get("h265", True)
    if not isinstance(h265, bool):
        raise Refused(400, "h265 must be true or false (whether the browser plays H.265)")
    peer = remote.remote_of(request, "camera_id")
    if peer is None and not await request.app[RECORDINGS].segments(camera_id, at - 1, at + 1):
        raise Refused(404, "nothing is recorded at that moment")
    await _sweep(request.app)
    now = time.time()
    session = PlaybackSession(
        secrets.token_urlsafe(12), user.name, camera_id, request.remote, at, at, at, now, h265,
        detail=remote.on_behalf(request),
    )  # fmt: skip
    if peer is not None:
        session.node, session.remote = (
            peer[0].peer.id,
            await remote.open_playback(request, peer, at, h265),
        )
        session.detail["node"] = session.node
    session.credential = user.credential
    request.app[PLAYBACK][session.id] = session
    cam = request.app[CONFIG].camera(camera_id)
    await request.app[AUDIT].record(
        "playback.start",
        user=user.name,
        address=request.remote,
        camera=camera_id,
        site=cam.site if cam else None,
        session=session.id,
        at=at,
        **session.detail,
    )
    if not request.app[ACCOUNTS].still_valid(user):  # access ended while it was opened
        await _end(request.app, session, reason="access ended")
        raise Refused(401, "access ended")
    return web.json_response({"session": session.id, "camera": camera_id, "at": at}, status=201)


async def media(request: web.Request) -> web.StreamResponse:
    """A segment's init part and its fragments from `from` (wall time) on."""
    user = user_of(request)
    may_play(request, user)
    camera_id = request.match_info["camera_id"]
    session = request.app[PLAYBACK].get(request.query.get("session", ""))
    if session is None or session.user != user.name or session.camera != camera_id:
        raise Refused(403, "open a playback session first (POST .../playback)")
    try:
        segment_id = int(request.match_info["segment_id"])
        start_at = float(request.query.get("from", "0"))
    except ValueError:
        raise Refused(400, "a segment id and from= in epoch seconds") from None
    if session.node is not None and (peer := remote.remote_of(request, "camera_id")):
        answer, first, last = await remote.segment(request, peer, str(segment_id), session.remote)
        session.first, session.last = min(session.first, first), max(session.last, last)
        session.touched = time.time()
        return answer
    service = request.app[RECORDINGS]
    segment = await service.segment(camera_id, segment_id)
    part = await asyncio.to_thread(read_part, service.file_of(segment), segment.start, start_at)
    session.first, session.last = min(session.first, part.first), max(session.last, part.last)
    session.touched = time.time()
    headers = {
        "X-Segment-Start": f"{segment.start:.3f}",
        "X-Fragment-Start": f"{part.first:.3f}",
        "X-Fragment-End": f"{part.last:.3f}",
        "X-Codec": part.codec,
        "Cache-Control": "no-store",
    }
    if segment.codec == "h265" and not session.h265:
        await _sweep(request.app)  # sessions gone idle give their slot back first
        return await _transcoded(request, session, part, headers)
    return web.Response(body=part.data, content_type="video/mp4", headers=headers)


async def _transcoded(
    request: web.Request, session: PlaybackSession, part: Part, headers: dict[str, str]
) -> web.StreamResponse:
    """The part as H.264 for a browser without HEVC, streamed as it is encoded; the
    response starts once the init part (and so the codecs string) is known."""
    limit = request.app[CONFIG].storage.playback_transcodes
    transcoded = request.app[TRANSCODES].stream(session.id, part.data, limit)
    async with contextlib.aclosing(transcoded) as chunks:
        head = b""
        async for chunk in chunks:
            head += chunk
            codec = fmp4.init_codec(head)
            if codec is not None:
                break
        else:
            raise Refused(500, "this recording could not be transcoded for the browser")
        response = web.StreamResponse(headers={**headers, "X-Codec": codec, "X-Transcoded": "1"})
        response.content_type = "video/mp4"
        await response.prepare(request)
        await response.write(head)
        async for chunk in chunks:
            await response.write(chunk)
        await response.write_eof()
    session.touched = time.time()
    return response


async def end_playback(request: web.Request) -> web.Response:
    session = request.app[PLAYBACK].get(request.match_info["session_id"])
    if session is None or session.user != user_of(request).name:
        raise Refused(404, "no such playback session")
    await _end(request.app, session)
    return web.Response(status=204)


async def _sweep(app: web.Application) -> None:
    """Sessions nobody fetched from for a while end, audited with what they watched."""
    now = time.time()
    for session in list(app[PLAYBACK].values()):
        if now - session.touched > SESSION_IDLE:
            await _end(app, session)


async def _end(app: web.Application, session: PlaybackSession, reason: str | None = None) -> None:
    if app[PLAYBACK].pop(session.id, None) is None:
        return  # ended already (two ways of ending can meet across an await)
    app[TRANSCODES].end(session.id)
    if session.node is not None:
        await remote.end_playback(app, session.node, session.remote, session.user)
    await _audit_end(app, session, reason)


async def end_credentials(app: web.Application, credentials: frozenset[str]) -> None:
    """The playback sessions opened with these credentials end at once (a logout,
    a revoked token, a user removed), each audited with what it watched."""
    for session in list(app[PLAYBACK].values()):
        if session.credential in credentials:
            await _end(app, session, reason="access ended")


async def _audit_end(
    app: web.Application, session: PlaybackSession, reason: str | None = None
) -> None:
    await app[AUDIT].record(
        "playback.end",
        user=session.user,
        address=session.address,
        camera=session.camera,
        session=session.id,
        start=round(session.first, 3),
        end=round(session.last, 3),
        **session.detail,
        **({"reason": reason} if reason else {}),
    )
