"""Saved station layouts over HTTP: personal and shared, in scope, owners delete,
and every wrong or hostile input a clear 4xx with a one-line reason."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.config import LAYOUTS
from relay.web.layouts import MAX_PER_USER, tiles
from tests.conftest import ADMIN, Node, NodeFactory, users_yaml
from tests.hostile import FAST, JSON_VALUES, ThreadedNode, assert_clean

CONFIG = (
    "node: {id: t, name: T}\n"
    "sites:\n"
    "  - {id: station, name: Station}\n"
    "  - {id: east, name: East, parent: station}\n"
    "  - {id: west, name: West, parent: station}\n"
    "cameras:\n"
    "  - {id: e1, name: E1, site: east, main: 'synthetic://160x96?fps=2', always_on: false}\n"
    "  - {id: e2, name: E2, site: east, main: 'synthetic://160x96?fps=2', always_on: false}\n"
    "  - {id: w1, name: W1, site: west, main: 'synthetic://160x96?fps=2', always_on: false}\n"
    + users_yaml(
        ("officer", "officer", "station"),
        ("east_op", "operator", "east"),
        ("west_op", "operator", "west"),
        ("watcher", "viewer", "east"),
    )
)


def as_user(name: str) -> dict[str, str]:
    return ADMIN if name == "admin" else {"Authorization": f"Bearer {name}-token"}


class Client:
    def __init__(self, http: aiohttp.ClientSession) -> None:
        self.http = http

    async def call(self, user: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        kwargs: dict[str, Any] = {"headers": as_user(user)}
        if body is not None:
            kwargs["json"] = body
        async with self.http.request(method, path, **kwargs) as r:
            text = await r.text()
            return r.status, json.loads(text) if r.content_type == "application/json" else text

    async def names(self, user: str) -> list[tuple[str, bool]]:
        status, found = await self.call(user, "GET", "/api/layouts")
        assert status == 200
        return [(layout["name"], layout["mine"]) for layout in found]


@pytest.fixture
async def client(start_node: NodeFactory) -> Any:
    node: Node = await start_node(CONFIG)
    async with aiohttp.ClientSession(node.url) as http:
        yield Client(http)


def test_tile_counts_match_the_layouts() -> None:
    assert {name: tiles(name) for name in LAYOUTS} == {
        "1": 1,
        "2x2": 4,
        "3x3": 9,
        "4x4": 16,
        "5x5": 25,
        "1+5": 6,
        "1+7": 8,
        "1+12": 13,
    }


async def test_save_list_share_and_delete(client: Client) -> None:
    night = {"name": "夜班 night", "layout": "2x2", "cameras": ["e1", None, "w1"]}
    status, saved = await client.call("officer", "POST", "/api/layouts", night)
    assert status == 201, saved
    assert (saved["cameras"], saved["shared"], saved["mine"]) == (["e1", None, "w1"], False, True)
    both = {"name": "both", "layout": "1+5", "cameras": ["w1", "e1"], "shared": True}
    east = {"name": "east", "layout": "1", "cameras": ["e1"], "shared": True}
    assert (await client.call("officer", "POST", "/api/layouts", both))[0] == 201
    status, east_saved = await client.call("officer", "POST", "/api/layouts", east)
    assert status == 201

    # Personal ones only for their owner; shared ones for whoever sees all their cameras.
    assert await client.names("officer") == [("both", True), ("east", True), ("夜班 night", True)]
    assert await client.names("east_op") == [("east", False)]
    assert await client.names("west_op") == []
    assert await client.names("admin") == [("both", False), ("east", False)]

    # The same name again replaces the owner's layout.
    night["layout"], night["cameras"] = "3x3", ["e2"]
    status, replaced = await client.call("officer", "POST", "/api/layouts", night)
    assert status == 200 and replaced["id"] == saved["id"] and replaced["cameras"] == ["e2"]

    # Only the owner or an admin deletes; another's personal layout does not exist for you.
    path = f"/api/layouts/{east_saved['id']}"
    assert await client.call("east_op", "DELETE", path) == (
        403,
        "only its owner or an admin may delete this layout\n",
    )
    assert await client.call("east_op", "DELETE", f"/api/layouts/{saved['id']}") == (
        404,
        "no such layout\n",
    )
    assert (await client.call("officer", "DELETE", path))[0] == 200
    assert (await client.call("officer", "DELETE", path))[0] == 404
    assert (await client.call("admin", "DELETE", f"/api/layouts/{saved['id']}"))[0] == 200
    assert await client.names("officer") == [("both", True)]

    # Viewers keep their own layouts but do not share them.
    mine = {"name": "mine", "layout": "1", "cameras": ["e1"]}
    assert (await client.call("watcher", "POST", "/api/layouts", mine))[0] == 201
    assert await client.call("watcher", "POST", "/api/layouts", {**mine, "shared": True}) == (
        403,
        "role viewer cannot share layouts\n",
    )


CAMERAS_4 = "cameras must be a list of at most 4 camera ids (null: empty tile)\n"
NAME = "name must be text of 1 to 64 characters\n"
LAYOUT = f"layout must be one of {', '.join(LAYOUTS)}\n"
GOOD = {"name": "n", "layout": "2x2", "cameras": ["e1"]}
WRONG_BODIES: list[tuple[dict[str, Any], str]] = [
    ({**GOOD, "colour": "red"}, "unknown key 'colour' (keys: name, layout, cameras, shared)\n"),
    ({**GOOD, "<x>": 1}, "unknown key '<x>' (keys: name, layout, cameras, shared)\n"),
    (
        {**GOOD, "\x00": 1},
        "unknown key (too long or unprintable) (keys: name, layout, cameras, shared)\n",
    ),
    ({"layout": "2x2", "cameras": ["e1"]}, NAME),
    ({**GOOD, "name": ""}, NAME),
    ({**GOOD, "name": "   "}, NAME),
    ({**GOOD, "name": 7}, NAME),
    ({**GOOD, "name": ["n"]}, NAME),
    ({**GOOD, "name": "x" * 65}, NAME),
    ({**GOOD, "name": "a\nb"}, "name must not contain control characters\n"),
    ({**GOOD, "name": "a\u202eb"}, "name must not contain control characters\n"),
    ({**GOOD, "layout": "6x6"}, LAYOUT),
    ({**GOOD, "layout": "3X3"}, LAYOUT),
    ({**GOOD, "layout": 4}, LAYOUT),
    ({**GOOD, "layout": None}, LAYOUT),
    ({**GOOD, "cameras": "e1"}, CAMERAS_4),
    ({**GOOD, "cameras": {"0": "e1"}}, CAMERAS_4),
    ({**GOOD, "cameras": ["e1", "e2", None, None, None]}, CAMERAS_4),
    ({**GOOD, "cameras": [1]}, "cameras[0] must be a camera id or null\n"),
    ({**GOOD, "cameras": [None, True]}, "cameras[1] must be a camera id or null\n"),
    ({**GOOD, "cameras": ["../e1"]}, "cameras[0] must be a camera id or null\n"),
    ({**GOOD, "cameras": ["nope"]}, "unknown camera 'nope'\n"),
    ({**GOOD, "cameras": ["w1"]}, "unknown camera 'w1'\n"),  # out of scope: as if unknown
    ({**GOOD, "cameras": ["e1", "e1"]}, "camera 'e1' is in the layout twice\n"),
    ({**GOOD, "cameras": [None, None]}, "a layout needs at least one camera\n"),
    ({**GOOD, "cameras": []}, "a layout needs at least one camera\n"),
    ({**GOOD, "shared": "yes"}, "shared must be true or false\n"),
    ({**GOOD, "shared": 1}, "shared must be true or false\n"),
]


async def test_wrong_bodies_get_a_clear_400(client: Client) -> None:
    for body, reason in WRONG_BODIES:
        assert await client.call("east_op", "POST", "/api/layouts", body) == (400, reason), body
    assert await client.names("east_op") == []


async def test_hostile_requests_get_a_clear_4xx(client: Client) -> None:
    http = client.http
    headers = {**as_user("east_op"), "Content-Type": "application/json"}
    raw_bodies = [
        (b"{", 400, "body is not valid JSON\n"),
        (b"[" * 5000 + b"]" * 5000, 400, "body is not valid JSON\n"),
        (b'{"name": "\\ud800", "layout": "1", "cameras": ["e1"]}', 400, None),
        (b"\xff\xfe", 400, "body is not valid JSON\n"),
        (b"[]", 400, "body must be a JSON object\n"),
        (b'{"name": "' + b"x" * 20000 + b'"}', 413, "body too large\n"),
    ]
    for raw, status, reason in raw_bodies:
        async with http.post("/api/layouts", data=raw, headers=headers) as r:
            text = await r.text()
            assert r.status == status and (reason is None or text == reason), (raw[:40], text)
            assert text.endswith("\n") and text.count("\n") == 1
    plain = {**headers, "Content-Type": "text/plain"}
    async with http.post("/api/layouts", data=json.dumps(GOOD), headers=plain) as r:
        assert (r.status, await r.text()) == (415, "send Content-Type: application/json\n")
    for layout_id in ("abc", "-1", "1e3", "9" * 40, "\u0661", "0x1"):
        assert await client.call("east_op", "DELETE", f"/api/layouts/{layout_id}") == (
            404,
            "no such layout\n",
        ), layout_id


async def test_a_user_keeps_at_most_a_hundred_layouts(client: Client) -> None:
    for i in range(MAX_PER_USER):
        body = {"name": f"l{i}", "layout": "1", "cameras": ["e1"]}
        assert (await client.call("east_op", "POST", "/api/layouts", body))[0] == 201
    one_more = {"name": "one more", "layout": "1", "cameras": ["e1"]}
    assert await client.call("east_op", "POST", "/api/layouts", one_more) == (
        409,
        f"you have {MAX_PER_USER} layouts: delete one first\n",
    )
    # Replacing one of them is still fine.
    again = {"name": "l0", "layout": "2x2", "cameras": ["e2"]}
    assert (await client.call("east_op", "POST", "/api/layouts", again))[0] == 200


@pytest.fixture(scope="module")
def threaded_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedNode]:
    data_dir: Path = tmp_path_factory.mktemp("layouts")
    with ThreadedNode(CONFIG, data_dir) as node:
        yield node


FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "name": JSON_VALUES,
        "layout": st.sampled_from(LAYOUTS) | JSON_VALUES,
        "cameras": st.lists(st.sampled_from(["e1", "e2", "w1", "x"]) | JSON_VALUES, max_size=30),
        "shared": JSON_VALUES,
    },
)


@FAST
@given(body=FIELDS | JSON_VALUES)
def test_any_json_is_saved_or_refused_clearly(threaded_node: ThreadedNode, body: object) -> None:
    status, text = threaded_node.request(
        "POST", "/api/layouts", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    assert_clean(status, text)
    assert status in (200, 201, 400), (status, text)
