"""Recordings of a peer's camera, served at this node through the peer.

The recording routes (recordings, playback sessions, segments, exports) take a
remote camera `PEER.CAMERA` and a remote export `PEER.ID` exactly like local
ones: relay/web/recordings.py and exports.py check the user here (role, sites)
and hand the request to this module, which asks the peer with this node's token
on behalf of the user (relay/peers/recordings.py). Both ends audit: this node
its user, the peer "node X on behalf of user Y" (`on_behalf` in its entries).

Exports of a remote camera are built at the peer and fetched through it: the
footage, the evidence lock that keeps it from retention, the file, its SHA-256
and manifest stay at the node that recorded them, and nothing is copied to a
second disk that retention does not watch.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, unquote

from aiohttp import web

from relay.config import CameraConfig
from relay.peers.catalog import PeerLink
from relay.peers.recordings import ON_BEHALF, PASSED_HEADERS, QUICK, Answer, PeerRecordings
from relay.refusal import Refused, checked_text
from relay.web.guard import user_of
from relay.web.keys import AUDIT
from relay.web.peers import NETWORK

PEER_RECORDINGS = web.AppKey("peer_recordings", PeerRecordings)
Remote = tuple[PeerLink, str]  # the peer, and the camera's or export's id there


async def lifecycle(app: web.Application) -> AsyncIterator[None]:
    client = PeerRecordings(app[NETWORK])
    app[PEER_RECORDINGS] = client
    yield
    await client.close()


# --- at the node asked: who a peer asks for ---------------------------------------


def on_behalf(request: web.Request) -> dict[str, str]:
    """For the audit of a node's request: the user of that node it asks for."""
    asked = request.headers.get(ON_BEHALF)
    if user_of(request).role != "node" or not asked:
        return {}
    return {"on_behalf": checked_text(unquote(asked), ON_BEHALF, 200)}


def actor(request: web.Request) -> str:
    """Who asks, in one name: `li via station` for a node asking for its user li."""
    name = user_of(request).name
    asked = on_behalf(request).get("on_behalf")
    return f"{asked} via {name}" if asked else name


# --- at the node asking ---------------------------------------------------------


def remote_of(request: web.Request, key: str) -> Remote | None:
    """The peer holding the path's `key` (a camera or an export), if not this node."""
    if PEER_RECORDINGS not in request.app:
        return None
    return request.app[PEER_RECORDINGS].link_of(request.match_info.get(key, ""))


def remote_camera(request: web.Request, camera_id: str) -> Remote | None:
    return request.app[PEER_RECORDINGS].link_of(camera_id)


async def _ask(request: web.Request, remote: Remote, method: str, path: str, **kw: Any) -> Answer:
    kw.setdefault("timeout", QUICK)
    return await request.app[PEER_RECORDINGS].ask(remote[0], method, path, actor(request), **kw)


def _camera_path(remote: Remote, rest: str) -> str:
    return f"/api/cameras/{quote(remote[1], safe='')}/{rest}"


async def recordings(request: web.Request, remote: Remote) -> web.Response:
    query = {k: v for k, v in request.query.items() if k in ("since", "until")}
    found = (
        await _ask(request, remote, "GET", _camera_path(remote, "recordings"), params=query)
    ).json()
    found.update(camera=request.match_info["camera_id"], node=remote[0].peer.id)
    return web.json_response(found)


async def open_playback(request: web.Request, remote: Remote, at: float, h265: bool) -> str:
    """The peer's playback session at `at`, for this node's user: its id there. The
    peer transcodes H.265 for a browser that cannot take it, as it would locally."""
    path = _camera_path(remote, "playback")
    body = {"at": at, "h265": h265}
    return str((await _ask(request, remote, "POST", path, json=body)).json()["session"])


async def segment(
    request: web.Request, remote: Remote, segment_id: str, session: str
) -> tuple[web.StreamResponse, float, float]:
    """A segment's media from the peer, passed on as it comes, and the span it
    covers (for the audit)."""
    query = {"from": request.query.get("from", "0"), "session": session}
    path = _camera_path(remote, f"segments/{quote(segment_id, safe='')}")
    headers = {"Cache-Control": "no-store"}
    response, passed = await _relay(request, remote, path, headers, params=query)
    first, last = (float(passed.get(f"X-Fragment-{k}", 0)) for k in ("Start", "End"))
    return response, first, last


async def end_playback(app: web.Application, node: str, session: str, user: str) -> None:
    """Ends the peer's session (the peer audits what was watched); a peer that is
    gone ends its sessions itself when they go idle."""
    client = app[PEER_RECORDINGS]
    link = client.network.links.get(node)
    if link is None:
        return
    with contextlib.suppress(Refused):  # logged by the client; the peer sweeps it
        path = f"/api/playback/{quote(session, safe='')}"
        await client.ask(link, "DELETE", path, user, timeout=QUICK)


# --- exports --------------------------------------------------------------------


def _exported(remote: Remote, row: dict[str, Any]) -> dict[str, Any]:
    """A peer's export row as this node names it: PEER.ID, PEER.CAMERA."""
    peer = remote[0].peer.id
    out = {**row, "id": f"{peer}.{row['id']}", "camera": f"{peer}.{row['camera']}", "node": peer}
    out["file"] = f"/api/exports/{out['id']}/file" if row.get("file") else None
    return out


async def create_export(
    request: web.Request, remote: Remote, cam: CameraConfig, body: dict[str, Any]
) -> web.Response:
    asked = {**body, "camera": remote[1]}
    row = (await _ask(request, remote, "POST", "/api/exports", json=asked)).json()
    export = _exported(remote, row)
    await request.app[AUDIT].record(
        "export.create",
        user=user_of(request).name,
        address=request.remote,
        camera=cam.id,
        site=cam.site,
        export=export["id"],
        node=remote[0].peer.id,
        start=body["start"],
        end=body["end"],
    )
    location = f"/api/exports/{export['id']}"
    return web.json_response(export, status=202, headers={"Location": location})


async def exports_of_peers(request: web.Request) -> list[dict[str, Any]]:
    """Every reachable peer's exports within the user's sites (an unreachable
    peer's are left out: the list never waits on it)."""
    user, links = user_of(request), request.app[PEER_RECORDINGS].network.links.values()

    async def of(link: PeerLink) -> list[dict[str, Any]]:
        try:
            rows = (await _ask(request, (link, ""), "GET", "/api/exports")).json()
        except Refused:
            return []
        return [_exported((link, ""), r) for r in rows if user.sees(str(r.get("site")))]

    found = await asyncio.gather(*(of(link) for link in links if link.reachable))
    return [row for rows in found for row in rows]


async def export_info(request: web.Request, remote: Remote) -> dict[str, Any]:
    """The peer's export, if the user here may see its site (404 otherwise)."""
    if not remote[1].isdigit():
        raise Refused(404, "no such export")
    try:
        row = (await _ask(request, remote, "GET", f"/api/exports/{remote[1]}")).json()
    except Refused as refused:
        raise Refused(404, "no such export") if refused.status == 404 else refused from None
    if not user_of(request).sees(str(row.get("site"))):
        raise Refused(404, "no such export")
    return _exported(remote, row)


async def export_download(
    request: web.Request, remote: Remote, part: str, headers: dict[str, str]
) -> web.StreamResponse:
    """The export's file or manifest, streamed from the peer as it comes."""
    return (await _relay(request, remote, f"/api/exports/{remote[1]}/{part}", headers))[0]


async def _relay(
    request: web.Request, remote: Remote, path: str, headers: dict[str, str], **kw: Any
) -> tuple[web.StreamResponse, dict[str, str]]:
    """The peer's answer to a GET passed on as it comes (never whole in memory),
    and the headers of it passed on."""
    client = request.app[PEER_RECORDINGS]
    async with client.open(remote[0], "GET", path, actor(request), **kw) as got:
        passed = {k: got.headers[k] for k in PASSED_HEADERS if k in got.headers}
        response = web.StreamResponse(headers={**headers, **passed})
        response.content_type = got.content_type
        if got.content_length is not None:
            response.content_length = got.content_length
        await response.prepare(request)
        async for chunk in got.content.iter_chunked(1 << 16):
            await response.write(chunk)
        await response.write_eof()
    return response, passed
