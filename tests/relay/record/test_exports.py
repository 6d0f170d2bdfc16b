"""Exports (real files, read back with PyAV), their refusals and audit, and leads."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from typing import Any

import aiohttp
import av

from relay.record import fmp4
from relay.web.recordings import RECORDINGS
from tests.conftest import ADMIN, Node, NodeFactory, users_yaml
from tests.relay.record.common import closed_segments

CONFIG = (
    "node: {id: test, name: Test node}\n"
    "sites:\n"
    "  - {id: station, name: Station}\n"
    "  - {id: east, name: East, parent: station}\n"
    "  - {id: west, name: West, parent: station}\n"
    "cameras:\n"
    "  - {id: cam1, name: One, site: east,"
    " main: 'synthetic://320x180?fps=15&keyframe_interval=1'}\n"
    "storage: {segment_seconds: 5, check_seconds: 1, min_free_gb: 0, min_free_percent: 0,"
    " max_gb: 0.0006, export_max_minutes: 0.25}\n"
) + users_yaml(("westop", "operator", "west"), ("eastop", "operator", "east"))


async def call(node: Node, method: str, path: str, body: Any = None, who: str = "") -> Any:
    headers = {"Authorization": f"Bearer {who}-token"} if who else ADMIN
    async with (
        aiohttp.ClientSession(headers=headers) as http,
        http.request(method, node.url + path, json=body) as r,
    ):
        data = await r.read()
        return r.status, (json.loads(data) if r.content_type == "application/json" else data)


async def test_export_is_one_mp4_with_its_hash_audited_and_kept_from_retention(
    start_node: NodeFactory,
) -> None:
    node = await start_node(CONFIG)
    service = node.app[RECORDINGS]
    await closed_segments(service, "cam1", 2)
    first = (await service.segments("cam1", 0, 2e9))[0]
    start, end = first.start + 2, first.start + 8  # across two files
    for body, status, reason in (
        ({"camera": "cam1", "start": end, "end": start}, 400, "the start is not before the end"),
        ({"camera": "cam1", "start": start, "end": start + 20}, 400, "at most 0.25 minutes"),
        (
            {"camera": "cam1", "start": start - 3600, "end": start - 3590},
            404,
            "nothing is recorded",
        ),
        ({"camera": "nope", "start": start, "end": end}, 404, "no such camera"),
    ):
        got = await call(node, "POST", "/api/exports", body)
        assert got[0] == status and reason in got[1].decode(), got
    got = await call(
        node, "POST", "/api/exports", {"camera": "cam1", "start": start, "end": end}, "westop"
    )
    assert got[0] == 404  # out of the user's sites
    status, export = await call(
        node,
        "POST",
        "/api/exports",
        {"camera": "cam1", "start": start, "end": end, "note": "e-bike"},
        "eastop",
    )
    assert status == 202, export
    async with asyncio.timeout(20):
        while export["state"] == "building":
            await asyncio.sleep(0.1)
            export = (await call(node, "GET", f"/api/exports/{export['id']}"))[1]
    assert export["state"] == "ready", export
    assert start - 1.0 <= export["start"] <= start  # from the keyframe before the start
    assert end - 0.2 < export["end"] <= end + 0.07
    status, data = await call(node, "GET", export["file"], who="eastop")
    assert status == 200
    assert hashlib.sha256(data).hexdigest() == export["sha256"]
    path = node.app[RECORDINGS].root / "exports" / f"{export['id']}.mp4"
    kinds = [kind for kind, _, _ in fmp4._boxes(data[:4096])][:2]
    assert kinds == [b"ftyp", b"moov"]  # moov first: it plays as it downloads

    def read() -> tuple[float, int]:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            frames = sum(1 for _ in container.decode(stream))
            assert stream.duration is not None and stream.time_base is not None
            return float(stream.duration * stream.time_base), frames

    duration, frames = await asyncio.to_thread(read)
    assert abs(duration - (export["end"] - export["start"])) <= 1 / 15 + 1e-3
    assert abs(frames - round(duration * 15)) <= 1
    manifest = (await call(node, "GET", f"/api/exports/{export['id']}/manifest"))[1]
    manifest = json.loads(manifest) if isinstance(manifest, bytes) else manifest
    assert manifest["sha256"] == export["sha256"] and manifest["exporter"] == "eastop"
    assert manifest["site"] == "east" and manifest["note"] == "e-bike"
    audit = (await call(node, "GET", "/api/audit?action=export.download"))[1]["entries"]
    assert audit[0]["user"] == "eastop" and audit[0]["detail"]["export"] == export["id"]
    # The quota keeps deleting the oldest footage, but never what was exported.
    locked = {s.path for s in await service.segments("cam1", export["start"], export["end"])}
    await asyncio.sleep(12)
    left = {s.path for s in await service.segments("cam1", 0, 2e9)}
    assert locked <= left
    newer_deleted = await service.segments("cam1", export["end"] + 5, export["end"] + 10)
    assert not newer_deleted, "footage older than what is kept was not deleted"


async def test_leads_are_counted_per_village_and_month(start_node: NodeFactory) -> None:
    node = await start_node(CONFIG)
    for who, site, checked, solved, arrests in (
        ("eastop", "east", 3, True, 1),
        ("eastop", "east", 2, False, 0),
        ("westop", "west", 1, True, 2),
    ):
        body = {"title": "stolen e-bike", "site": site, "persons_checked": checked,
                "case_solved": solved, "arrests": arrests, "exports": [], "alarms": []}  # fmt: skip
        status, _ = await call(node, "POST", "/api/leads", body, who)
        assert status == 201
    status, reason = await call(
        node, "POST", "/api/leads", {"title": "x", "site": "west"}, "eastop"
    )
    assert status == 404
    status, reason = await call(node, "POST", "/api/leads", {"site": "east"}, "eastop")
    assert status == 400 and b"title" in reason
    month = time.strftime("%Y-%m", time.gmtime())
    _, stats = await call(node, "GET", "/api/leads/stats?site=station")
    assert stats["rows"] == [
        {
            "site": "east",
            "month": month,
            "leads": 2,
            "persons_checked": 5,
            "cases": 1,
            "arrests": 1,
        },
        {
            "site": "west",
            "month": month,
            "leads": 1,
            "persons_checked": 1,
            "cases": 1,
            "arrests": 2,
        },
    ]
    assert stats["totals"] == {"leads": 3, "persons_checked": 6, "cases": 2, "arrests": 3}
    # an outcome reported later changes the figures
    _, listed = await call(node, "GET", "/api/leads?site=east", who="eastop")
    unsolved = next(lead for lead in listed if not lead["case_solved"])
    status, _ = await call(node, "PATCH", f"/api/leads/{unsolved['id']}", {"arrests": 2}, "westop")
    assert status == 404  # not their village
    status, changed = await call(
        node, "PATCH", f"/api/leads/{unsolved['id']}", {"case_solved": True, "arrests": 2}, "eastop"
    )
    assert status == 200 and changed["case_solved"] is True
    _, stats = await call(node, "GET", "/api/leads/stats?site=east")
    assert (stats["totals"]["cases"], stats["totals"]["arrests"]) == (2, 3)
    _, mine = await call(node, "GET", "/api/leads/stats", who="eastop")
    assert mine["totals"]["leads"] == 2  # only the user's sites
