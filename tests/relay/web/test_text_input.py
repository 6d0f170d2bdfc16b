"""Text in request bodies: checked where it comes in, and one bad request never
fails another's write (they share group-commit transactions)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from relay.bus.events import Event
from relay.web.events import BUS
from relay.web.keys import AUDIT
from tests.conftest import ADMIN, PASSWORD, NodeFactory, users_yaml
from tests.offers import offer_sdp

CONFIG = (
    "node: {id: v1, name: V1}\n"
    "sites: [{id: east, name: East}]\n"
    "webrtc: {host_addresses: [127.0.0.1], pending_per_credential_camera: 8}\n"
    "cameras:\n"
    "  - {id: e1, name: E1, site: east, main: 'synthetic://160x120?fps=10'}\n"
    + users_yaml(
        ("officer", "officer", "east"), ("op1", "operator", "east"), ("op2", "operator", "east")
    )
)
BAD_TEXT = ["\ud800", "x\udfffy", "\udc00\ud800"]  # lone surrogates: valid JSON, not text


def bearer(name: str) -> dict[str, str]:
    return ADMIN if name == "admin" else {"Authorization": f"Bearer {name}-token"}


async def test_a_lone_surrogate_flood_fails_no_other_users_write(start_node: NodeFactory) -> None:
    node = await start_node(CONFIG)
    channel = node.hub.channel("e1")
    assert channel is not None
    await channel.wait_online()
    offer = await offer_sdp()

    async with aiohttp.ClientSession(node.url) as http:

        async def status_of(path: str, body: Any, who: str | None = None) -> tuple[int, str]:
            headers = bearer(who) if who else {}
            async with http.post(path, json=body, headers=headers) as r:
                return r.status, await r.text()

        async def view() -> tuple[int, int]:
            sdp = {**ADMIN, "Content-Type": "application/sdp"}
            async with http.post("/whep/e1", data=offer, headers=sdp) as r:
                opened, location = r.status, r.headers.get("Location", "")
            async with http.delete(location, headers=ADMIN) as r:
                return opened, r.status

        flood = [
            status_of("/api/login", {"name": BAD_TEXT[i % 3] + str(i), "password": "x"})
            for i in range(240)
        ] + [
            status_of("/api/events", {"type": "alarm", "camera": "e1", "reason": text}, "op1")
            for text in BAD_TEXT * 10
        ]
        good = [
            status_of("/api/events", {"type": "alarm", "camera": "e1", "reason": f"r{i}"}, who)
            for i in range(30)
            for who in ("op1", "op2")
        ]
        views = [view() for _ in range(8)]
        async with asyncio.timeout(120):
            answers = asyncio.gather(*flood, *good)
            seen = asyncio.gather(*views)
            results, view_answers = await asyncio.gather(answers, seen)
    bad_answers = results[: len(flood)]
    good_answers = results[len(flood) :]
    assert {status for status, _ in bad_answers} == {400}, bad_answers[:3]
    assert all(text.count("\n") == 1 for _, text in bad_answers)
    assert [status for status, _ in good_answers] == [201] * len(good), good_answers[:3]
    assert view_answers == [(201, 200)] * len(views)

    stored = await node.app[BUS].store.query({"type": "alarm"})
    raised = {json.loads(text)["id"] for _, text in good_answers}
    assert {s.event.id for s in stored} == raised
    audit = node.app[AUDIT]
    assert len(await audit.query(action="alarm.raise")) == len(good)
    assert len(await audit.query(action="view.start")) == len(views)
    assert len(await audit.query(action="view.end")) == len(views)


FIELDS: list[tuple[str, str, dict[str, Any], str, str]] = [
    # (who, path, a good body, the text field, what it is)
    ("anyone", "/api/login", {"name": "admin", "password": PASSWORD}, "name", "line"),
    ("anyone", "/api/login", {"name": "admin", "password": PASSWORD}, "password", "secret"),
    ("admin-cookie", "/api/tokens", {"name": "t"}, "name", "line"),
    (
        "admin-cookie",
        "/api/layouts",
        {"name": "n", "layout": "2x2", "cameras": ["e1"]},
        "name",
        "line",
    ),
    ("op1", "/api/events", {"type": "alarm", "camera": "e1", "reason": "r"}, "reason", "line"),
    ("officer", "/api/events", {"type": "lookout", "text": "t"}, "text", "prose"),
]
LINE_BAD = ["a\x00b", "a\nb", "a\x1bb", "a\x85b", "a\u2028b", "a\u202eb", "a\u2066b"]
PROSE_BAD = ["a\x00b", "a\x07b", "a\x1b[2Jb", "a\u202eb"]
PROSE_GOOD = ["line one\nline two", "a\tb", "a\r\nb", "中文 😀 \u200fעברית"]


@pytest.mark.parametrize("field", FIELDS, ids=[f"{f[1]}:{f[3]}" for f in FIELDS])
async def test_every_text_field_refuses_what_is_not_text(
    start_node: NodeFactory, field: tuple[str, str, dict[str, Any], str, str]
) -> None:
    who, path, good, key, kind = field
    node = await start_node(CONFIG)
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(node.url, cookie_jar=jar) as http:
        headers: dict[str, str] = {}
        if who == "admin-cookie":
            login = {"name": "admin", "password": PASSWORD}
            async with http.post("/api/login", json=login) as r:
                assert r.status == 200
            headers = {"Origin": node.url}
        elif who != "anyone":
            headers = bearer(who)
        bad = BAD_TEXT + (PROSE_BAD if kind == "prose" else LINE_BAD if kind == "line" else [])
        for value in bad:
            async with http.post(path, json={**good, key: value}, headers=headers) as r:
                text = await r.text()
                assert r.status == 400, (value, r.status, text)
                assert text.count("\n") == 1 and value not in text, text
        for value in PROSE_GOOD if kind == "prose" else []:
            async with http.post(path, json={**good, key: value}, headers=headers) as r:
                assert r.status == 201, (value, await r.text())
    stored: list[Event] = [s.event for s in await node.app[BUS].store.query({})]
    assert [e.data["text"] for e in reversed(stored)] == (
        [v.strip() for v in PROSE_GOOD] if kind == "prose" else []
    )
