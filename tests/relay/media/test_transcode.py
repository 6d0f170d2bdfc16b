"""The transcoder on the stream's one shared decoder: a camera analysed and watched
through the transcoder is decoded once; the decoder runs while either needs it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import aiohttp
import pytest

from camsim import CameraSimulator, MountSpec
from relay.media.hub import Channel
from relay.web.analysis import ANALYSIS
from relay.web.whep import WHEP
from relay.webrtc.client import WhepClient
from tests.conftest import ADMIN, ADMIN_TOKEN, Node, NodeFactory, node_yaml
from tests.helpers import wait_until
from tests.relay.analysis.test_motion import Findings
from tests.relay.web.test_metrics import scrape, value


@pytest.fixture(scope="module")
def sim() -> Iterator[CameraSimulator]:
    with CameraSimulator([MountSpec("gate", codec="h265", scene="still")]) as simulator:
        yield simulator


def camera_yaml(sim: CameraSimulator, extra: str = "") -> str:
    """Not recorded: these tests count the channel's video subscriptions, and a
    recorder would add one."""
    return (
        f"  - {{id: gate, name: Gate, site: village, main: '{sim.url('gate')}',"
        f" record: {{mode: 'off'}}{extra}}}\n"
    )


def worker_threads() -> list[str]:
    """The decoder and encoder threads of the node (a transcoder of its own would
    add a second decoding thread)."""
    names = (t.name for t in threading.enumerate())
    return sorted(n for n in names if n.startswith(("pictures-", "encode-", "transcode-")))


async def decoding(node: Node) -> tuple[float, float, float]:
    """From /metrics, for gate's stream: the decoder gauge, frames decoded and
    packets received (all video: the mount has no audio)."""
    async with aiohttp.ClientSession(node.url) as http:
        samples = await scrape(http, ADMIN)
    labels = {"camera": "gate", "stream": "main"}
    running = value(samples, "villagewatch_stream_decoding", **labels)
    frames = samples.get(
        ("villagewatch_stream_decoded_frames_total", frozenset(labels.items())), 0.0
    )
    return running, frames, value(samples, "villagewatch_stream_packets_total", **labels)


async def watch_transcoded(node: Node, http: aiohttp.ClientSession) -> WhepClient:
    client = WhepClient(f"{node.url}/whep/gate", token=ADMIN_TOKEN)
    await client.connect(http)
    assert "profile-level-id=42e01f" in client.pc.remoteDescription.sdp, "H.264 for an H.265 camera"
    async with asyncio.timeout(15):
        await client.first_frame()
        await wait_until(lambda: client.watch.frames >= 30, 15, "30 transcoded frames")
    assert client.watch.sizes == {(640, 360)}
    return client


def video_subscriptions(channel: Channel) -> int:
    return sum(s.kinds == frozenset({"video"}) for s in channel.subscribers)


async def test_analysed_and_transcoded_stream_is_decoded_once(
    sim: CameraSimulator, start_node: NodeFactory
) -> None:
    sim.scene("gate", "halt")
    node = await start_node(node_yaml(camera_yaml(sim, ", motion: {fps: 5, cooldown: 2}")))
    findings = Findings(node)
    channel = node.hub.channel("gate")
    assert channel is not None and channel.pictures is not None
    pictures = channel.pictures
    await asyncio.wait_for(channel.wait_online(), 10)
    await wait_until(lambda: pictures.decoded > 30, 15, "the decoder runs for motion")
    async with aiohttp.ClientSession() as http:
        client = await watch_transcoded(node, http)
        try:
            transcoder = node.app[WHEP].transcoders["gate/main"]
            assert transcoder.running and transcoder.encoded >= 30
            assert worker_threads() == ["encode-gate/main", "pictures-gate/main"]
            assert pictures.starts == 1, "the transcoder joined the running decoder"
            assert video_subscriptions(channel) == 1, "one decoder takes the camera's packets"
            running, frames, packets = await decoding(node)
            await wait_until(lambda: pictures.decoded >= frames + 20, 10, "20 more frames")
            _, frames_after, packets_after = await decoding(node)
            assert running == 1.0
            # Every frame the camera sent decoded (a few may wait in the queue).
            assert frames_after - frames >= packets_after - packets - 5
            seen = client.watch.frames
            sim.scene("gate", "move")
            try:
                found = await findings.first("motion.start", "gate", within=10)
            finally:
                sim.scene("gate", "halt")
            assert found.image is not None and found.image.startswith(b"\xff\xd8")
            await wait_until(lambda: client.watch.frames >= seen + 15, 10, "it plays on")
        finally:
            await client.close(http)
    await wait_until(lambda: not transcoder.running, 5, "the transcoder stops")
    await wait_until(lambda: worker_threads() == ["pictures-gate/main"], 5, "encoder ends")
    assert pictures.running, "motion still needs pictures"
    for analysed in node.app[ANALYSIS].cameras:
        analysed.stop()
    assert not pictures.running
    await wait_until(lambda: worker_threads() == [], 5, "the decoder thread ends")
    assert (await decoding(node))[0] == 0.0
    assert video_subscriptions(channel) == 0


async def test_transcoder_alone_starts_and_stops_the_decoder(
    sim: CameraSimulator, start_node: NodeFactory
) -> None:
    node = await start_node(node_yaml(camera_yaml(sim)))
    channel = node.hub.channel("gate")
    assert channel is not None
    await asyncio.wait_for(channel.wait_online(), 10)
    assert channel.pictures is None and (await decoding(node))[0] == 0.0, "nobody needs pictures"
    async with aiohttp.ClientSession() as http:
        client = await watch_transcoded(node, http)
        try:
            assert channel.pictures is not None and channel.pictures.running
            assert (await decoding(node))[0] == 1.0
            assert worker_threads() == ["encode-gate/main", "pictures-gate/main"]
        finally:
            await client.close(http)
    await wait_until(lambda: worker_threads() == [], 5, "decoder and encoder end")
    assert not channel.pictures.running and (await decoding(node))[0] == 0.0
    assert video_subscriptions(channel) == 0
