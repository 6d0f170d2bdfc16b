"""The shared decoder: pictures at the asked rate, only while watched."""

from __future__ import annotations

import asyncio
import threading

from camsim import CameraSimulator, MountSpec
from relay.media.hub import Channel
from relay.media.picture import snapshot
from relay.media.pictures import Picture, pictures_of
from tests.conftest import NodeFactory, node_yaml
from tests.helpers import wait_until


def decoder_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("pictures-")]


async def unrecorded_online(start_node: NodeFactory, sim: CameraSimulator, mount: str) -> Channel:
    """A node with the camsim mount as camera `mount`, online. Not recorded: the
    recorder's video subscription would outlive the watches the tests count."""
    cameras = (
        f"  - {{id: {mount}, name: {mount}, site: village, main: '{sim.url(mount)}',"
        " record: {mode: 'off'}}\n"
    )
    node = await start_node(node_yaml(cameras))
    channel = node.hub.channel(mount)
    assert channel is not None
    await asyncio.wait_for(channel.wait_online(), 10)
    return channel


async def test_pictures_at_the_asked_rate_and_no_decoder_after_the_last_watch(
    start_node: NodeFactory,
) -> None:
    with CameraSimulator([MountSpec("cam", fps=15)]) as sim:
        channel = await unrecorded_online(start_node, sim, "cam")
        source = pictures_of(channel)
        slow: list[Picture] = []
        fast: list[Picture] = []
        slow_watch = source.watch(2, slow.append)
        fast_watch = source.watch(5, fast.append)
        await wait_until(lambda: len(fast) >= 5, 10, "the first pictures")
        fast.clear()
        slow.clear()
        decoded = source.decoded
        await asyncio.sleep(4)
        assert 16 <= len(fast) <= 24 and 6 <= len(slow) <= 10, (len(fast), len(slow))
        assert source.decoded - decoded >= 50, "every frame is decoded (P-frames need it)"
        assert fast[-1].luma.shape == (100, 178)
        jpeg = await snapshot(channel)
        assert jpeg is not None and jpeg.startswith(b"\xff\xd8")
        assert decoder_threads() == ["pictures-cam/main"]
        slow_watch.close()
        assert source.running
        fast_watch.close()
        assert not source.running
        await wait_until(lambda: not decoder_threads(), 5, "the decoder thread ends")
        assert not any(s.kinds == frozenset({"video"}) for s in channel.subscribers)


async def test_frames_nothing_refers_to_are_decoded_only_when_wanted(
    start_node: NodeFactory,
) -> None:
    """B-frames (non-reference here) are left undecoded while no watcher is due, and
    all decoded while a tap (the transcoder) takes every frame."""
    with CameraSimulator([MountSpec("bf", profile="high", bframes=True, fps=15)]) as sim:
        channel = await unrecorded_online(start_node, sim, "bf")
        source = pictures_of(channel)
        pictures: list[Picture] = []
        watch = source.watch(2, pictures.append)
        await wait_until(lambda: len(pictures) >= 2, 10, "the first pictures")

        async def decoded_of_next_45_packets() -> tuple[int, int]:
            packets, decoded = channel.source.stats.packets, source.decoded
            await wait_until(lambda: channel.source.stats.packets >= packets + 45, 15)
            return source.decoded - decoded, channel.source.stats.packets - packets

        decoded, sent = await decoded_of_next_45_packets()
        assert decoded <= 0.85 * sent, (decoded, sent)
        frames: list[object] = []
        tap = source.tap(frames.append)
        await wait_until(lambda: len(frames) >= 5, 10, "frames for the tap")
        decoded, sent = await decoded_of_next_45_packets()
        assert decoded >= sent - 5, (decoded, sent)  # a few may still wait in the queue
        assert len(pictures) >= 4, "the watch is served as before"
        tap.close()
        assert source.running
        watch.close()
        assert not source.running
