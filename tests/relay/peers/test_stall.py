"""A village behind a delayed, stalling uplink (tests/relay/peers/proxy.py): the
station's pulls play on under delay, stay bounded through a stall, leave other
villages alone, and recover by themselves at a keyframe."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from ingest.packet import MediaPacket
from relay.media.hub import Channel, StreamName, Subscription
from relay.web.keys import HUB
from tests.helpers import free_port, wait_until
from tests.relay.peers.nodes import CAMERA, Cascade, station_yaml, village_yaml, wait_states
from tests.relay.peers.proxy import UplinkProxy

# Looped clips: nothing is encoded while the test runs. The main stream (about
# 3.5 Mbit/s, 25 fps) is the one stalled; the sub-stream (10 fps) is the station's tile.
MAIN = "synthetic://1280x720?fps=25&keyframe_interval=0.5&bitrate=6000&loop=1"
SUB = "synthetic://320x180?fps=10&keyframe_interval=1&bitrate=200&loop=2"
DELAY = 0.15  # s each way
SHORT_STALL = 1.5  # s: what the buffers and the village's queue (2 s) absorb
LONG_STALL = 8.0  # s: longer than the pull's 5 s no-data watchdog
TICKS = 90000  # the synthetic cameras' timestamps, per second


@dataclass
class Watched:
    """A subscription of the station's hub and what came out of it, when."""

    channel: Channel
    sub: Subscription
    packets: list[tuple[float, MediaPacket]] = field(default_factory=list)
    most_pending: int = 0

    async def collect(self) -> None:
        while True:
            packet = await self.sub.get()
            self.most_pending = max(self.most_pending, self.sub.pending())
            self.packets.append((time.monotonic(), packet))

    def between(self, start: float, end: float) -> list[MediaPacket]:
        return [p for t, p in self.packets if start <= t < end]


@pytest.fixture
async def net(tmp_path: Path) -> AsyncIterator[tuple[Cascade, UplinkProxy]]:
    cascade = Cascade(tmp_path)
    cascade.ports = {name: free_port() for name in ("dongcun", "xicun", "station")}
    proxy = UplinkProxy(cascade.ports["dongcun"], DELAY)
    await proxy.start()
    streams = f"main: '{CAMERA}', sub: '{CAMERA}'"
    dongcun = village_yaml("dongcun", [("gate", "dongcun")])
    cascade.texts["dongcun"] = dongcun.replace(streams, f"main: '{MAIN}', sub: '{SUB}'")
    cascade.texts["xicun"] = village_yaml("xicun", [("gate", "xicun")]).replace(CAMERA, SUB)
    villages = {"dongcun": proxy.port, "xicun": cascade.ports["xicun"]}
    cascade.texts["station"] = station_yaml(villages)
    try:
        for name in ("dongcun", "xicun", "station"):
            await cascade.start(name)
        yield cascade, proxy
    finally:
        for name in list(cascade.nodes)[::-1]:
            await cascade.stop(name)
        await proxy.close()


def _watch(net: Cascade, camera: str, stream: StreamName) -> Watched:
    channel = net.station.app[HUB].channel(camera, stream)
    assert channel is not None
    return Watched(channel, channel.subscribe(frozenset(("video",))))


@pytest.mark.slow
async def test_a_delayed_stalling_uplink_plays_on_and_recovers_at_a_keyframe(
    net: tuple[Cascade, UplinkProxy],
) -> None:
    cascade, proxy = net
    async with aiohttp.ClientSession() as http:
        online = {"dongcun.gate": "online", "xicun.gate": "online"}
        await wait_states(http, cascade.station, online, 40)
    tile, main = _watch(cascade, "dongcun.gate", "sub"), _watch(cascade, "dongcun.gate", "main")
    other = _watch(cascade, "xicun.gate", "sub")
    watched = (tile, main, other)
    tasks = [asyncio.create_task(w.collect()) for w in watched]
    try:
        await wait_until(lambda: all(len(w.packets) > 10 for w in watched), 30, "the pulls")
        start = time.monotonic()
        await asyncio.sleep(4)  # the window measured
        tile_fps = len(tile.between(start, start + 4)) / 4
        assert tile_fps > 7, f"the tile plays on under {DELAY} s each way: {tile_fps} fps of 10"
        live = min(_behind(main, start, start + 4))  # how far behind the camera, at best

        # A short stall: the same pull goes on, late for a moment, then live again.
        reconnects = main.channel.source.stats.reconnects
        resumed = await _stall(proxy, SHORT_STALL)
        await wait_until(lambda: _caught_up(main, resumed, live), 15, "live again")
        assert main.channel.source.stats.reconnects == reconnects, "the same pull went on"

        # A long one: the pull gives up on the dead connection and opens another by
        # itself, which starts at the village's cached keyframe.
        stalled = time.monotonic()
        resumed = await _stall(proxy, LONG_STALL)
        other_fps = len(other.between(stalled, resumed)) / LONG_STALL
        assert other_fps > 7, f"another village plays on through the stall: {other_fps} fps"
        await wait_until(lambda: _caught_up(main, resumed, live), 30, "the main stream again")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for w in watched:
            w.sub.close()
    assert all(w.most_pending <= w.sub.limit for w in watched), "bounded at the station"
    pts = [(p.pts or 0, p.keyframe) for _, p in main.packets]
    gap, first = max((b[0] - a[0], b) for a, b in itertools.pairwise(pts))
    print(f"main stream: {gap / TICKS:.2f} s of pictures skipped, then a keyframe: {first[1]}")
    assert gap > LONG_STALL / 2 * TICKS, "the pictures of the outage were skipped, not sent late"
    assert first[1], "the first picture after the skip is a keyframe"


async def _stall(proxy: UplinkProxy, seconds: float) -> float:
    """Stall the uplink for `seconds`; when it flowed again."""
    proxy.stall()
    await asyncio.sleep(seconds)  # the outage itself
    proxy.resume()
    return time.monotonic()


def _behind(watched: Watched, start: float, end: float) -> list[float]:
    """For each packet that came in the window: its arrival less its timestamp, in
    seconds (plus a constant: only differences count)."""
    return [t - (p.pts or 0) / TICKS for t, p in watched.packets if start <= t < end]


def _caught_up(watched: Watched, since: float, live: float) -> bool:
    """A packet came after `since` no more than 0.5 s later than the best before."""
    return any(b < live + 0.5 for b in _behind(watched, since, time.monotonic()))
