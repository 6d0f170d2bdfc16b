"""GET /api/events: the newest events the caller may see, however many others came
since, a page at a time."""

from __future__ import annotations

import asyncio

import aiohttp

from relay.bus.events import new_event
from relay.web.events import BUS
from tests.access_nodes import config_text
from tests.conftest import ADMIN, NodeFactory

WEST = {"Authorization": "Bearer outsider-token"}  # an operator of West village


async def test_a_west_viewer_sees_their_events_after_thousands_from_the_east(
    start_node: NodeFactory,
) -> None:
    node = await start_node(config_text())
    bus = node.app[BUS]
    west = [
        new_event("t", "alarm", "west", camera="w1", data={"reason": f"w{i}"}) for i in range(3)
    ]
    network = new_event("t", "lookout", None, data={"text": "everyone"})
    station = new_event("t", "lookout", "station", data={"text": "from above"})
    for event in (*west, network, station):
        await bus.publish(event)
    async with asyncio.timeout(120):
        await asyncio.gather(
            *(
                bus.publish(new_event("t", "lookout", "east", data={"text": f"e{i}"}))
                for i in range(2100)
            )
        )
    async with aiohttp.ClientSession(node.url) as http:
        async with http.get("/api/events", headers=WEST) as r:
            seen = await r.json()
        assert [e["id"] for e in seen] == [e.id for e in (station, network, *reversed(west))]
        async with http.get("/api/events?type=alarm&limit=2", headers=WEST) as r:
            assert [e["id"] for e in await r.json()] == [west[2].id, west[1].id]
        async with http.get(f"/api/events?type=alarm&before={seen[2]['seq']}", headers=WEST) as r:
            assert [e["id"] for e in await r.json()] == [west[1].id, west[0].id]


async def test_pages_with_before_cover_everything_once(start_node: NodeFactory) -> None:
    node = await start_node(config_text())
    bus = node.app[BUS]
    async with asyncio.timeout(60):
        await asyncio.gather(
            *(
                bus.publish(new_event("t", "lookout", "east", data={"text": f"e{i}"}))
                for i in range(1200)
            )
        )
    seqs: list[int] = []
    async with aiohttp.ClientSession(node.url) as http:
        query = "/api/events"
        for _ in range(5):  # three pages, then an empty one
            async with http.get(query, headers=ADMIN) as r:
                page = await r.json()
            if not page:
                break
            assert len(page) <= 500
            seqs += [e["seq"] for e in page]
            query = f"/api/events?before={page[-1]['seq']}"
        async with http.get("/api/events?before=x", headers=ADMIN) as r:
            assert (r.status, await r.text()) == (400, "before must be a seq, limit 1 to 500\n")
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == 1200
