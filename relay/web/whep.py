"""WHEP playback (draft-ietf-wish-whep): POST an SDP offer, DELETE the session.

Any WHEP player works: `POST /whep/{camera_id}[?stream=main|sub]` with
`application/sdp` answers `201 Created`, the session's `Location` and the SDP
answer; `DELETE` on that location ends it. Every refusal is a status code and a
one-line reason.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from relay.access.accounts import User
from relay.config import Config
from relay.web.body import read_body
from relay.web.guard import ACCOUNTS, PUBLIC, add_route, identify, logged_in, user_of
from relay.web.keys import AUDIT, CONFIG, HUB
from relay.web.refusals import refuse
from relay.webrtc.ice import ice_servers
from relay.webrtc.service import MAX_OFFER_BYTES, WhepService
from relay.webrtc.session import WhepSession

WHEP = web.AppKey("whep", WhepService)


def setup(app: web.Application) -> None:
    add_route(app, "OPTIONS", "/whep/{camera_id}", options, PUBLIC)  # CORS preflights
    add_route(app, "POST", "/whep/{camera_id}", post_offer, logged_in(scope="camera"))
    add_route(app, "DELETE", "/whep/sessions/{session_id}", delete_session, logged_in())
    add_route(app, "PATCH", "/whep/sessions/{session_id}", patch_session, logged_in())
    add_route(app, "OPTIONS", "/whep/sessions/{session_id}", session_options, PUBLIC)


async def service_lifecycle(app: web.Application) -> AsyncIterator[None]:
    app[WHEP] = WhepService(app[CONFIG], app[HUB], app[AUDIT])
    yield
    await app[WHEP].close()


def _own_session(request: web.Request) -> WhepSession | None:
    """The session named in the path, if it is this user's (an admin's: any)."""
    session = request.app[WHEP].sessions.get(request.match_info["session_id"])
    user = user_of(request)
    if session is None or (session.user != user.name and user.role != "admin"):
        return None
    return session


def _links(config: Config, user: User) -> list[str]:
    links = []
    for server in ice_servers(config, user.name):
        for url in server.urls:
            link = f'<{url}>; rel="ice-server"'
            if server.username is not None:
                link += f'; username="{server.username}"; credential="{server.credential or ""}"'
                link += '; credential-type="password"'
            links.append(link)
    return links


def _watcher(request: web.Request) -> User | None:
    """The caller, if logged in and allowed to watch the camera in the path."""
    user = identify(request)
    camera = request.app[CONFIG].camera(request.match_info["camera_id"])
    return user if user is not None and camera is not None and user.sees(camera.site) else None


async def options(request: web.Request) -> web.Response:
    """Public (a CORS preflight carries no credentials); the ICE servers, whose
    credentials are secrets, go only to a caller allowed to watch this camera."""
    response = web.Response(
        status=204,
        headers={
            "Accept-Post": "application/sdp",
            "Allow": "OPTIONS, POST",
        },
    )
    user = _watcher(request)
    for link in _links(request.app[CONFIG], user) if user else []:
        response.headers.add("Link", link)
    return response


async def post_offer(request: web.Request) -> web.Response:
    config, service = request.app[CONFIG], request.app[WHEP]
    camera = config.camera(request.match_info["camera_id"])
    assert camera is not None  # the access rule checked it
    if request.content_type != "application/sdp":
        return refuse(415, "the offer must be sent as Content-Type: application/sdp")
    stream = request.query.get("stream", "sub" if camera.sub else "main")
    channel = request.app[HUB].channel(camera.id, "sub" if stream == "sub" else "main")
    if stream not in ("main", "sub") or channel is None:
        return refuse(400, f"stream must be main{' or sub' if camera.sub else ''}")
    user = user_of(request)
    with service.reserve(camera, user) as place:
        offer = (await read_body(request, MAX_OFFER_BYTES)).decode("utf-8", "replace")
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        local = sockname[0] if sockname else None
        session, answer = await service.open(
            channel, offer, request.remote or "?", user, local=local, place=place
        )
    if not request.app[ACCOUNTS].still_valid(user):  # access ended while it was made
        await service.end(session.id, "access ended")
        return refuse(401, "access ended: log in again")
    response = web.Response(
        status=201,
        body=answer.encode(),
        content_type="application/sdp",
        headers={"Location": f"/whep/sessions/{session.id}", "ETag": f'"{session.id}"'},
    )
    for link in _links(config, user):
        response.headers.add("Link", link)
    return response


async def delete_session(request: web.Request) -> web.Response:
    session = _own_session(request)
    if session is None or not await request.app[WHEP].end(session.id):
        return refuse(404, "no such session")
    return web.Response(status=200)


async def patch_session(request: web.Request) -> web.Response:
    if _own_session(request) is None:
        return refuse(404, "no such session")
    response = refuse(405, "trickle ICE is not needed: the answer carries every candidate")
    response.headers["Allow"] = "OPTIONS, DELETE"
    return response


async def session_options(request: web.Request) -> web.Response:
    return web.Response(status=204, headers={"Allow": "OPTIONS, DELETE"})
