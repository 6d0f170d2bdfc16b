"""The login limits hold against guesses made at once, from many addresses, and
between good logins."""

from __future__ import annotations

import asyncio
from collections import Counter

import aiohttp

from relay.access.logins import NAME_QUEUE
from tests.conftest import PASSWORD, NodeFactory, node_yaml, users_yaml

CAMERAS = "  - {id: gate, name: Gate, site: village, main: 'synthetic://160x120?fps=5'}\n"


def limits(per_address: int, per_user: int) -> str:
    return (
        f"auth: {{login_failures_per_address: {per_address},"
        f" login_failures_per_user: {per_user}}}\n"
    )


async def try_login(url: str, name: str, password: str, address: str = "127.0.0.1") -> int:
    connector = aiohttp.TCPConnector(local_addr=(address, 0))
    body = {"name": name, "password": password}
    async with (
        aiohttp.ClientSession(url, connector=connector) as http,
        http.post("/api/login", json=body) as r,
    ):
        return r.status


async def test_guesses_made_at_once_are_counted_before_any_is_judged(
    start_node: NodeFactory,
) -> None:
    node = await start_node(node_yaml(CAMERAS, limits(per_address=10, per_user=1000)))
    async with asyncio.timeout(60):
        statuses = await asyncio.gather(
            *(try_login(node.url, "admin", f"guess-{i}") for i in range(40))
        )
    assert Counter(statuses) == {401: 10, 429: 30}, "ten judged, the others refused"


async def test_a_good_login_between_guesses_resets_nothing_for_the_guesser(
    start_node: NodeFactory,
) -> None:
    """45 guesses at admin's password, with a good login as another user after
    every 9: the address's count goes on, only the good name's is cleared."""
    text = node_yaml(CAMERAS, limits(per_address=10, per_user=1000))
    text = text.replace(users_yaml(), users_yaml(("watcher", "viewer", "village")))
    node = await start_node(text)
    statuses: list[int] = []
    async with asyncio.timeout(60):
        for i in range(45):
            statuses.append(await try_login(node.url, "admin", f"guess-{i}"))
            if i % 9 == 8:
                await try_login(node.url, "watcher", PASSWORD)
    assert statuses[:9] == [401] * 9
    assert Counter(statuses) == {401: 10, 429: 35}, "the address waits after ten failures"


async def test_guesses_at_one_name_from_many_addresses_wait_their_turn(
    start_node: NodeFactory,
) -> None:
    """Past its limit, a name is tried one attempt at a time (a few may wait their
    turn; more are refused), however many addresses guess at once."""
    node = await start_node(node_yaml(CAMERAS, limits(per_address=10, per_user=5)))
    addresses = [f"127.0.0.{i}" for i in range(2, 42)]
    async with asyncio.timeout(60):
        statuses = await asyncio.gather(
            *(try_login(node.url, "admin", f"guess-{a}", a) for a in addresses)
        )
    judged = statuses.count(401)
    assert 5 <= judged <= 5 + 1 + NAME_QUEUE, Counter(statuses)
    assert statuses.count(429) == 40 - judged
    # The real user, from their own address, still gets in once the guesses stop.
    assert await try_login(node.url, "admin", PASSWORD, "127.0.0.99") == 200
