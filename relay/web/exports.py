"""Evidence over HTTP: exports (every download audited) and the leads register."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from relay.access.accounts import User
from relay.record import leads
from relay.record.exports import ExportRequest, Exports
from relay.record.service import parse_span
from relay.refusal import Refused
from relay.web import remote_recordings as remote
from relay.web.body import read_json
from relay.web.guard import add_route, logged_in, user_of
from relay.web.keys import AUDIT, CONFIG, DB
from relay.web.recordings import PLAYERS, RECORDINGS

EXPORTS = web.AppKey("exports", Exports)
ADMIN = frozenset({"admin"})
# A peer node exports and downloads for its users, within the sites granted to it;
# it never deletes an export nor touches the leads register.
EXPORTERS = PLAYERS | {"node"}


def setup(app: web.Application) -> None:
    evidence, exporters = logged_in(PLAYERS), logged_in(EXPORTERS)
    add_route(app, "POST", "/api/exports", create_export, exporters)
    add_route(app, "GET", "/api/exports", list_exports, exporters)
    add_route(app, "GET", "/api/exports/{export_id}", export_info, exporters)
    add_route(app, "GET", "/api/exports/{export_id}/file", export_file, exporters)
    add_route(app, "GET", "/api/exports/{export_id}/manifest", export_manifest, exporters)
    add_route(app, "DELETE", "/api/exports/{export_id}", delete_export, logged_in(ADMIN))
    add_route(app, "POST", "/api/leads", create_lead, evidence)
    add_route(app, "GET", "/api/leads", list_leads, evidence)
    add_route(app, "GET", "/api/leads/stats", lead_stats, evidence)
    add_route(app, "PATCH", "/api/leads/{lead_id}", update_lead, evidence)


async def lifecycle(app: web.Application) -> AsyncIterator[None]:
    exports = Exports(app[CONFIG], app[DB], app[RECORDINGS].root)
    app[EXPORTS] = exports
    yield
    await exports.close()


def _number(body: dict[str, Any], key: str) -> float:
    value = body.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise Refused(400, f"{key} must be epoch seconds")
    return float(value)


async def create_export(request: web.Request) -> web.Response:
    user, config = user_of(request), request.app[CONFIG]
    body = await read_json(request)
    camera_id = body.get("camera")
    cam = config.camera(camera_id) if isinstance(camera_id, str) else None
    if cam is None or not user.sees(cam.site):
        raise Refused(404, "no such camera")
    start, end = _number(body, "start"), _number(body, "end")
    if start >= end:
        raise Refused(400, "the start is not before the end")
    note = body.get("note", "")
    if not isinstance(note, str) or len(note) > 2000:
        raise Refused(400, "note must be text of at most 2000 characters")
    if (peer := remote.remote_camera(request, cam.id)) is not None:
        return await remote.create_export(request, peer, cam, body)
    service = request.app[RECORDINGS]
    found = [s for s in await service.segments(cam.id, start, end) if s.end > s.start]
    segments = [(s, service.file_of(s)) for s in found]
    ask = ExportRequest(remote.actor(request), cam.id, cam.site, start, end, note)
    export_id = await request.app[EXPORTS].create(ask, segments)
    await request.app[AUDIT].record(
        "export.create",
        user=user.name,
        address=request.remote,
        camera=cam.id,
        site=cam.site,
        export=export_id,
        start=start,
        end=end,
        **remote.on_behalf(request),
    )
    info = await request.app[EXPORTS].get(export_id)
    return web.json_response(info, status=202, headers={"Location": f"/api/exports/{export_id}"})


async def _visible(request: web.Request) -> dict[str, Any]:
    if (peer := remote.remote_of(request, "export_id")) is not None:
        return await remote.export_info(request, peer)
    try:
        export_id = int(request.match_info["export_id"])
    except ValueError:
        raise Refused(404, "no such export") from None
    found = await request.app[EXPORTS].get(export_id)
    if found is None or not user_of(request).sees(found["site"]):
        raise Refused(404, "no such export")
    return found


async def list_exports(request: web.Request) -> web.Response:
    local = await request.app[EXPORTS].list(user_of(request).sites)
    return web.json_response(local + await remote.exports_of_peers(request))


async def export_info(request: web.Request) -> web.Response:
    return web.json_response(await _visible(request))


async def export_file(request: web.Request) -> web.StreamResponse:
    found = await _visible(request)
    if found["state"] != "ready":
        raise Refused(409, f"the export is {found['state']}, not ready")
    user = user_of(request)
    await request.app[AUDIT].record(
        "export.download",
        user=user.name,
        address=request.remote,
        camera=found["camera"],
        site=found["site"],
        export=found["id"],
        sha256=found["sha256"],
        **({"node": found["node"]} if "node" in found else remote.on_behalf(request)),
    )
    name = f"{found['camera']}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime(found['start']))}.mp4"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if (peer := remote.remote_of(request, "export_id")) is not None:
        return await remote.export_download(request, peer, "file", headers)
    path, _ = request.app[EXPORTS].paths(found["id"])
    return web.FileResponse(path, headers=headers)


async def export_manifest(request: web.Request) -> web.StreamResponse:
    found = await _visible(request)
    if found["state"] != "ready":
        raise Refused(409, f"the export is {found['state']}, not ready")
    if (peer := remote.remote_of(request, "export_id")) is not None:
        return await remote.export_download(request, peer, "manifest", {})
    _, manifest = request.app[EXPORTS].paths(found["id"])
    return web.FileResponse(manifest, headers={"Content-Type": "application/json"})


async def delete_export(request: web.Request) -> web.Response:
    if (peer := remote.remote_of(request, "export_id")) is not None:
        raise Refused(403, f"an export of node {peer[0].peer.id} is deleted there, by its admin")
    found = await _visible(request)
    await request.app[EXPORTS].delete(found["id"])
    await request.app[AUDIT].record(
        "export.delete", user=user_of(request).name, camera=found["camera"], export=found["id"]
    )
    return web.Response(status=204)


def _site_scope(request: web.Request, user: User, site: str | None) -> frozenset[str]:
    if site is None:
        return user.sites
    if not user.sees(site):
        raise Refused(404, "no such site")
    return request.app[CONFIG].subtree([site]) & user.sites


async def create_lead(request: web.Request) -> web.Response:
    user = user_of(request)
    lead = leads.parse_lead(await read_json(request))
    if not user.sees(lead["site"]):
        raise Refused(404, "no such site")
    lead_id = await request.app[DB].run(lambda conn: leads.add(conn, user.name, lead))
    await request.app[AUDIT].record(
        "lead.create", user=user.name, address=request.remote, site=lead["site"], lead=lead_id
    )
    return web.json_response({"id": lead_id, **lead}, status=201)


async def update_lead(request: web.Request) -> web.Response:
    """The outcome, as the police report it back: persons checked, case, arrests."""
    user = user_of(request)
    try:
        lead_id = int(request.match_info["lead_id"])
    except ValueError:
        raise Refused(404, "no such lead") from None
    found = await request.app[DB].run(lambda conn: leads.get(conn, lead_id))
    if found is None or not user.sees(found["site"]):
        raise Refused(404, "no such lead")
    outcome = leads.parse_outcome(await read_json(request))
    changed = await request.app[DB].run(lambda conn: leads.update(conn, lead_id, outcome))
    await request.app[AUDIT].record(
        "lead.update", user=user.name, address=request.remote, site=found["site"],
        lead=lead_id, **outcome,
    )  # fmt: skip
    return web.json_response(changed)


async def list_leads(request: web.Request) -> web.Response:
    user = user_of(request)
    sites = _site_scope(request, user, request.query.get("site"))
    return web.json_response(await request.app[DB].run(lambda conn: leads.listed(conn, sites)))


async def lead_stats(request: web.Request) -> web.Response:
    user = user_of(request)
    sites = _site_scope(request, user, request.query.get("site"))
    since, until = parse_span(
        request.query.get("since"), request.query.get("until"), 24 * 365, longest_days=3660
    )
    rows = await request.app[DB].run(lambda conn: leads.stats(conn, sites, since, until))
    totals = {
        k: sum(r[k] or 0 for r in rows) for k in ("leads", "persons_checked", "cases", "arrests")
    }
    return web.json_response({"since": since, "until": until, "rows": rows, "totals": totals})
