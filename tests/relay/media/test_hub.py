"""The fan-out hub: GOP cache, bounded subscribers, one source for all consumers."""

from __future__ import annotations

import asyncio
import tracemalloc
from fractions import Fraction

from ingest.packet import MediaPacket
from relay.config import parse_config
from relay.media.hub import Channel, Hub, HubSettings
from tests.conftest import node_yaml
from tests.helpers import GOP, packet, wait_until


def make_channel(settings: HubSettings | None = None) -> Channel:
    config = parse_config(
        node_yaml("  - {id: cam, name: Cam, site: village, main: 'rtsp://127.0.0.1:1/x'}\n")
    )
    return Hub(config, settings).channels[("cam", "main")]


async def test_new_subscriber_starts_with_the_current_gop() -> None:
    channel = make_channel()
    for i in range(GOP + 10):
        channel.publish(packet(i))
    sub = channel.subscribe()
    first = await sub.get()
    assert first.keyframe and first.pts == GOP * 3600
    assert [p.pts for p in sub.backlog] == [i * 3600 for i in range(GOP, GOP + 10)]
    sub.close()


async def test_gop_cache_is_capped_in_bytes() -> None:
    channel = make_channel(HubSettings(gop_max_bytes=100_000))
    for i in range(GOP):
        channel.publish(packet(i))
    assert channel.gop() == []  # too big to keep: a viewer waits for the next keyframe
    channel.publish(packet(GOP))
    assert len(channel.gop()) == 1


async def test_slow_subscriber_drops_to_next_keyframe_and_never_grows() -> None:
    """60 s of a 25 fps, 2 Mbit/s camera against a subscriber that never reads."""
    channel = make_channel(HubSettings(queue_packets=100))
    slow = channel.subscribe()
    fast = channel.subscribe()
    received: list[int] = []

    tracemalloc.start()
    try:
        baseline = None
        for i in range(60 * 25):
            channel.publish(packet(i))
            while fast.pending():
                received.append((await fast.get()).pts or 0)
            if i == 10 * 25:
                baseline = tracemalloc.get_traced_memory()[0]
        assert baseline is not None
        grown = tracemalloc.get_traced_memory()[0] - baseline
    finally:
        tracemalloc.stop()
    # Each packet is shared, so the slow one holds at most its 100 packets (1 MB).
    assert slow.pending() <= 100
    assert grown < 2_000_000, grown
    assert fast.dropped == 0 and len(received) == 60 * 25
    assert slow.dropped > 1000
    channel.publish(packet(60 * 25 * GOP))  # a keyframe, whatever state the slow one is in
    async with asyncio.timeout(2):
        first = await slow.get()
    assert first.keyframe, "a slow subscriber resumes at a keyframe, never mid-GOP"
    slow.close()
    fast.close()


async def test_one_source_for_every_consumer_and_on_demand_close() -> None:
    config = parse_config(
        node_yaml(
            "  - {id: cam, name: Cam, site: village, always_on: false, idle_timeout: 0.3,\n"
            "     main: 'synthetic://320x240?fps=25&keyframe_interval=1'}\n"
        )
    )
    hub = Hub(config)
    channel = hub.channels[("cam", "main")]
    hub.start()
    try:
        assert not channel.source.running, "on-demand: nothing opened before a viewer"
        subs = [channel.subscribe() for _ in range(3)]
        async with asyncio.timeout(5):
            firsts = await asyncio.gather(*(s.get() for s in subs))
        assert all(p is firsts[0] for p in firsts), "every consumer shares the same packet"
        for sub in subs:
            sub.close()
        assert channel.source.running, "kept open during the idle grace period"
        await wait_until(lambda: not channel.source.running, 5, "closed after idle_timeout")
        again = channel.subscribe()
        async with asyncio.timeout(5):
            await again.get()
        again.close()
    finally:
        await hub.close()


async def test_slow_audio_subscriber_catches_up_without_keyframes() -> None:
    channel = make_channel(HubSettings(queue_packets=10))
    audio = channel.subscribe(frozenset(("audio",)))
    for i in range(25):
        channel.publish(MediaPacket("audio", b"a", i * 160, Fraction(1, 8000), True, 0.0))
    assert audio.dropped == 20 and audio.pending() == 5
    async with asyncio.timeout(1):
        assert (await audio.get()).pts == 20 * 160
    audio.close()
