"""Whatever another node's message holds, this node either takes it as an event it
can store, fan out and show, or says it cannot use it: nothing else."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from relay.bus.events import Event, Unusable, new_event
from relay.bus.inbound import parse
from relay.bus.store import SCHEMA, EventStore
from tests.hostile import FAST, JSON_VALUES

VALID = {**new_event("village", "alarm", "east", camera="e1").as_json(), "data": {"reason": "x"}}
ANY_TEXT = st.text(max_size=20)  # lone surrogates included
VALUES = JSON_VALUES | ANY_TEXT | st.just(float("nan")) | st.just(float("inf"))
SHAPES = st.one_of(
    st.builds(lambda k, v: {**VALID, k: v}, st.sampled_from(sorted(VALID)), VALUES),
    st.builds(lambda k, v: {**VALID, "data": {k: v}}, ANY_TEXT, VALUES),
    st.builds(lambda k: {x: y for x, y in VALID.items() if x != k}, st.sampled_from(sorted(VALID))),
    st.dictionaries(ANY_TEXT, VALUES, max_size=6),
    VALUES,
)


def encoded(shape: Any) -> bytes:
    return json.dumps(shape).encode()  # escapes lone surrogates, as any sender would


def kept(event: Event) -> None:
    """Stored, encoded and judged as the bus does it: none of it may raise."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.executescript(SCHEMA)
    store = EventStore(None)  # type: ignore[arg-type]  # only its SQL is used here
    (stored,) = store._add_each(conn, [(event, None)], outbox=False)
    assert stored is not None
    json.dumps(stored.as_json(), ensure_ascii=False).encode()
    assert (event.site is None or event.site in frozenset({"east"})) in (True, False)


@FAST
@given(SHAPES)
def test_any_message_is_an_event_the_node_can_keep_or_unusable(shape: Any) -> None:
    try:
        event = parse(encoded(shape))
    except Unusable as refusal:
        assert str(refusal) and "\n" not in str(refusal)
        return
    kept(event)


@FAST
@given(st.binary(max_size=200))
def test_any_bytes_are_unusable_or_an_event(data: bytes) -> None:
    try:
        event = parse(data)
    except Unusable:
        return
    kept(event)


def test_a_list_where_a_string_belongs_is_unusable() -> None:
    for key in ("id", "site", "camera", "by", "ref", "origin", "type"):
        try:
            parse(encoded({**VALID, key: ["east"]}))
        except Unusable as refusal:
            assert key in str(refusal) or key == "type"
        else:
            raise AssertionError(f"a list as {key} was taken")


def test_a_deeply_nested_message_is_unusable() -> None:
    deep = b'{"data": ' * 100_000 + b"1" + b"}" * 100_000
    try:
        parse(deep)
    except Unusable:
        return
    raise AssertionError("taken")
