"""Feeds shared per scope: one frame for every feed that keeps up, every event once
and in order for a feed that is behind, nothing across scopes, bounded memory."""

from __future__ import annotations

import asyncio
import json

from relay.access.accounts import User
from relay.bus.feeds import EventFeed, ScopeLog


def user(name: str, *sites: str) -> User:
    return User(name, "viewer", frozenset(sites), "token", name)


def event(seq: int) -> str:
    return json.dumps({"id": f"e{seq}", "seq": seq})


async def take(feed: EventFeed, after: int = 0) -> tuple[bytes, int] | None:
    async with asyncio.timeout(1):
        return await feed.take(after)


def seqs(frame: bytes) -> list[int]:
    return [e["seq"] for e in json.loads(frame)]


async def test_feeds_that_keep_up_send_the_same_frame_object() -> None:
    log = ScopeLog(user("a", "east"))
    feeds = [log.subscribe(user(f"u{i}", "east")) for i in range(3)]
    for seq in (1, 2, 3):
        log.append(seq, event(seq))
    taken = [await take(f) for f in feeds]
    assert taken[0] is not None and seqs(taken[0][0]) == [1, 2, 3] and taken[0][1] == 3
    assert all(t is not None and t[0] is taken[0][0] for t in taken), "built once, shared"
    log.append(4, event(4))
    again = [await take(f) for f in feeds]
    assert all(t is not None and seqs(t[0]) == [4] for t in again)


async def test_a_feed_behind_gets_every_event_once_in_order() -> None:
    log = ScopeLog(user("a", "east"), limit=50)
    quick, slow = log.subscribe(user("q", "east")), log.subscribe(user("s", "east"))
    got: dict[EventFeed, list[int]] = {quick: [], slow: []}
    for seq in range(1, 131):
        log.append(seq, event(seq))
        if seq % 2 == 0:  # quick takes every other event, slow every 40th
            taken = await take(quick)
            assert taken is not None
            got[quick] += seqs(taken[0])
        if seq % 40 == 0:
            taken = await take(slow)
            assert taken is not None
            got[slow] += seqs(taken[0])
    taken = await take(slow)
    assert taken is not None
    got[slow] += seqs(taken[0])
    assert got[quick] == list(range(1, 131)) and got[slow] == list(range(1, 131))


async def test_a_feed_too_far_behind_must_resume_and_memory_stays_bounded() -> None:
    log = ScopeLog(user("a", "east"), limit=10)
    behind = log.subscribe(user("b", "east"))
    for seq in range(1, 1001):
        log.append(seq, event(seq))
    assert await take(behind) is None and behind.overflowed
    assert log.end == 1000 and len(log) < 2 * 10
    fresh = log.subscribe(user("c", "east"))  # a resumed feed starts at the end
    log.append(1001, event(1001))
    taken = await take(fresh)
    assert taken is not None and seqs(taken[0]) == [1001]


async def test_the_backlog_overlap_is_skipped() -> None:
    log = ScopeLog(user("a", "east"))
    feed = log.subscribe(user("b", "east"))  # subscribed before the backlog was read
    for seq in (7, 8, 9):
        log.append(seq, event(seq))
    taken = await take(feed, after=8)  # the backlog sent up to 8 already
    assert taken is not None and seqs(taken[0]) == [9] and taken[1] == 9


async def test_a_waiting_feed_wakes_when_its_log_grows() -> None:
    log = ScopeLog(user("a", "east"))
    feed = log.subscribe(user("b", "east"))
    waiting = asyncio.create_task(take(feed))
    await asyncio.sleep(0)
    assert not waiting.done()
    log.append(1, event(1))
    log.wake()
    taken = await waiting
    assert taken is not None and seqs(taken[0]) == [1]
