"""An alarm's state is one function of its steps, whatever order they arrive in."""

from __future__ import annotations

import itertools
import sqlite3
from dataclasses import replace

import pytest

from relay.bus.events import Event, new_event
from relay.bus.store import SCHEMA, EventStore


def connection() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.executescript(SCHEMA)
    return conn


def step(kind: str, alarm: Event, at: float, event_id: str = "") -> Event:
    made = new_event("node", kind, "east", camera="e1", ref=alarm.id)
    return replace(made, time=at, id=event_id or made.id)


def state_after(events: tuple[Event, ...]) -> str:
    conn = connection()
    store = EventStore(None)  # type: ignore[arg-type]  # only its SQL is used here
    for event in events:
        store._add_each(conn, [(event, None)], outbox=False)
    (row,) = conn.execute("SELECT state FROM events WHERE type = 'alarm'").fetchall()
    return str(row["state"])


ALARM = replace(new_event("village", "alarm", "east", camera="e1"), time=100.0)


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ((), "open"),
        ((("ack", 101.0),), "acked"),
        ((("ack", 101.0), ("assign", 102.0)), "assigned"),
        ((("assign", 101.0), ("ack", 102.0)), "acked"),
        ((("ack", 101.0), ("assign", 102.0), ("resolve", 103.0)), "resolved"),
        ((("resolve", 101.0), ("ack", 102.0), ("assign", 103.0)), "resolved"),  # resolved wins
    ],
)
def test_every_order_of_arrival_gives_the_same_state(
    steps: tuple[tuple[str, float], ...], expected: str
) -> None:
    events = (ALARM, *(step(kind, ALARM, at) for kind, at in steps))
    seen = {state_after(order) for order in itertools.permutations(events)}
    assert seen == {expected}


def test_steps_made_at_the_same_time_are_ordered_by_id() -> None:
    ack, assign = step("ack", ALARM, 101.0, "b" * 32), step("assign", ALARM, 101.0, "a" * 32)
    seen = {state_after(order) for order in itertools.permutations((ALARM, ack, assign))}
    assert seen == {"acked"}, "the same time: the greater id is the later step"
