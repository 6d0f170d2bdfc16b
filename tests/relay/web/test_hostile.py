"""Brute force and hostile input against the running node: slowed, logged, never a 500."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.web.keys import AUDIT
from tests.conftest import PASSWORD, NodeFactory, node_yaml
from tests.hostile import FAST, JSON_VALUES, ODD_TEXT, ThreadedNode, assert_clean

CAMERAS = "  - {id: gate, name: Gate, site: village, main: 'synthetic://160x120?fps=5'}\n"


async def test_a_thousand_wrong_logins_are_slowed_and_logged(start_node: NodeFactory) -> None:
    node = await start_node(node_yaml(CAMERAS))
    statuses: list[int] = []
    started = time.monotonic()
    async with aiohttp.ClientSession(node.url) as http:
        for i in range(1000):
            wrong = {"name": "admin", "password": f"guess-{i}"}
            async with http.post("/api/login", json=wrong) as r:
                statuses.append(r.status)
                if r.status == 429:
                    assert int(r.headers["Retry-After"]) > 0
    assert statuses[:10] == [401] * 10, "ten tries, then this address must wait"
    assert set(statuses[10:]) == {429}
    assert time.monotonic() - started < 60
    failed = await node.app[AUDIT].query(action="login.failed")
    assert len(failed) == 1000 and all(e["address"] == "127.0.0.1" for e in failed)

    # The real user, from another address, still gets in (slowed down, not locked out).
    other = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(node.url, connector=other) as http:
        right = {"name": "admin", "password": PASSWORD}
        async with http.post("/api/login", json=right) as r:
            assert r.status == 200
    assert await node.app[AUDIT].query(action="login", user="admin")


@pytest.fixture(scope="module")
def threaded_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedNode]:
    with ThreadedNode(node_yaml(CAMERAS), tmp_path_factory.mktemp("hostile")) as node:
        yield node


@FAST
@given(body=JSON_VALUES | st.dictionaries(st.sampled_from(["name", "password"]), JSON_VALUES))
def test_login_takes_any_json(threaded_node: ThreadedNode, body: object) -> None:
    status, text = threaded_node.request(
        "POST", "/api/login", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    assert_clean(status, text)
    assert status in (400, 401, 429)


@FAST
@given(raw=st.binary(max_size=2000), kind=st.sampled_from(["application/json", "text/plain", ""]))
def test_token_creation_takes_any_bytes(threaded_node: ThreadedNode, raw: bytes, kind: str) -> None:
    status, text = threaded_node.request("POST", "/api/tokens", raw, {"Content-Type": kind})
    assert_clean(status, text)


@FAST
@given(
    segment=st.text(
        alphabet=st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]),
        min_size=1,
        max_size=80,
    )
)
def test_ids_in_paths_take_anything(threaded_node: ThreadedNode, segment: str) -> None:
    quoted = urllib.parse.quote(segment, safe="")
    for method, path in (
        ("GET", f"/api/cameras/{quoted}"),
        ("GET", f"/view/{quoted}"),
        ("POST", f"/whep/{quoted}"),
        ("DELETE", f"/whep/sessions/{quoted}"),
        ("DELETE", f"/api/tokens/{quoted}"),
        ("GET", f"/api/audit?user={quoted}&since={quoted}"),
        ("GET", f"/static/{quoted}"),
    ):
        status, text = threaded_node.request(method, path)
        assert status < 500 and "Traceback" not in text, (method, path, status, text)
        assert text.strip() or status in (200, 204), (method, path, status)


@FAST
@given(offer=ODD_TEXT | st.binary(max_size=3000).map(lambda b: b.decode("latin-1")))
def test_whep_takes_any_offer(threaded_node: ThreadedNode, offer: str) -> None:
    status, text = threaded_node.request(
        "POST", "/whep/gate", offer.encode(), {"Content-Type": "application/sdp"}
    )
    assert_clean(status, text)
    assert status in (400, 409)


def test_oversized_bodies_are_refused(threaded_node: ThreadedNode) -> None:
    huge = b"{" + b" " * (2 * 1024 * 1024) + b"}"
    for path, kind in (("/api/login", "application/json"), ("/whep/gate", "application/sdp")):
        status, text = threaded_node.request("POST", path, huge, {"Content-Type": kind})
        assert status == 413, (path, status)
        assert_clean(status, text)
