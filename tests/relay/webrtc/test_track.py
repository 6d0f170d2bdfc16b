"""How a viewer's track hands the hub's packets on, and what answers share."""

from __future__ import annotations

import asyncio
import datetime
import importlib.util
import time
from fractions import Fraction
from typing import Any

import aioice.ice
import pytest
from aiortc import RTCPeerConnection
from aiortc.codecs import CODECS
from aiortc.rtcdtlstransport import RTCCertificate
from aiortc.sdp import SessionDescription

from ingest.packet import MediaPacket
from relay.media.hub import FanOut, HubSettings
from relay.webrtc import ice, patches
from relay.webrtc.codecs import rtp_payloads
from relay.webrtc.patches import NodeCertificate, common_codecs, register_h264_profiles
from relay.webrtc.track import PacketTrack
from tests.helpers import GOP, packet

VIEWERS = 10
KEYFRAME, FRAME = 200_000, 10_000  # bytes


async def test_a_joining_viewer_gets_its_keyframe_at_once_and_the_rest_paced() -> None:
    """Every viewer's keyframe goes at once; the rest of its cached GOP follows at
    its own rate, not in one burst."""
    channel = FanOut("cam", HubSettings())
    for i in range(GOP):  # a keyframe and 24 frames
        channel.publish(packet(i, KEYFRAME if i == 0 else FRAME))
    rate = 24 * FRAME / 0.5  # 480 KB/s: 0.42 s for the keyframe, then 0.5 s for the rest
    tracks = [
        PacketTrack("video", channel.subscribe(frozenset(("video",))), 90000, rate)
        for _ in range(VIEWERS)
    ]
    start = time.monotonic()

    async def watch(track: PacketTrack) -> list[float]:
        return [(await track.recv(), time.monotonic() - start)[1] for _ in range(GOP)]

    async with asyncio.timeout(10):
        times = await asyncio.gather(*(watch(t) for t in tracks))
    for track in tracks:
        track.stop()
    keyframes = [t[0] for t in times]
    finished = [t[-1] for t in times]
    assert max(keyframes) < 0.25, "every viewer's first picture at once"
    assert min(finished) > 0.6, "the rest paced, not in one burst"
    assert max(finished) < 3.0


async def test_live_packets_after_the_backlog_are_not_paced() -> None:
    channel = FanOut("cam", HubSettings())
    channel.publish(packet(0, FRAME))
    track = PacketTrack("video", channel.subscribe(frozenset(("video",))), 90000, 1000)
    async with asyncio.timeout(1):
        await track.recv()  # the cached keyframe: at once
        for i in range(1, 5):
            channel.publish(packet(i, FRAME))
            await track.recv()
    track.stop()


async def test_what_came_live_while_catching_up_goes_at_the_viewers_pace() -> None:
    """Frames that queued up behind the GOP follow it at the viewer's own rate, not
    in one burst."""
    channel = FanOut("cam", HubSettings())
    channel.publish(packet(0, KEYFRAME))
    track = PacketTrack("video", channel.subscribe(frozenset(("video",))), 90000, 20 * FRAME)
    for i in range(1, 21):
        channel.publish(packet(i, FRAME))
    start = time.monotonic()
    async with asyncio.timeout(5):
        for _ in range(21):
            await track.recv()
    track.stop()
    assert time.monotonic() - start > 0.75  # 0.5 s after the keyframe, then 20 at 20 a second


async def test_common_codecs_answer_as_aiortc_would(browser: Any) -> None:
    """The node's copy-free find_common_codecs picks exactly what aiortc's own does,
    for Chromium's offer and for aiortc's (the codec list as the node extends it)."""
    register_h264_profiles()
    page = await browser.new_page()
    chromium_offer = await page.evaluate(
        """async () => {
            const pc = new RTCPeerConnection();
            pc.addTransceiver("video", {direction: "recvonly"});
            pc.addTransceiver("audio", {direction: "recvonly"});
            return (await pc.createOffer()).sdp;
        }"""
    )
    client = RTCPeerConnection()
    client.addTransceiver("video", direction="recvonly")
    client.addTransceiver("audio", direction="recvonly")
    aiortc_offer = (await client.createOffer()).sdp
    await client.close()
    # aiortc's module as shipped, whatever the node has patched in the loaded one.
    spec = importlib.util.find_spec("aiortc.rtcpeerconnection")
    assert spec is not None and spec.loader is not None
    shipped = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(shipped)
    compared = 0
    for offer in (chromium_offer, aiortc_offer):
        for media in SessionDescription.parse(offer).media:
            expected = shipped.find_common_codecs(CODECS[media.kind], media.rtp.codecs)
            assert common_codecs(CODECS[media.kind], media.rtp.codecs) == expected
            compared += len(expected)
    assert compared > 10


async def test_a_queue_overflow_while_catching_up_ends_the_cached_part() -> None:
    """The viewer falls a whole queue behind while its GOP is paced out: the rest
    of the GOP is dropped, and what follows from the next keyframe is live: its
    own timestamps, not squeezed."""
    channel = FanOut("cam", HubSettings())
    for i in range(GOP):
        channel.publish(packet(i, FRAME))
    sub = channel.subscribe(frozenset(("video",)), limit=1)  # holds just the GOP
    track = PacketTrack("video", sub, 90000, 1e9)
    assert sub.backlog == [], "the track holds the GOP, and only while it sends it"
    async with asyncio.timeout(5):
        await track.recv()  # the cached keyframe, at once
        for i in range(GOP, 2 * GOP + 3):  # the queue overflows: up to the next keyframe
            channel.publish(packet(i, FRAME))
        live = [(await track.recv()).timestamp for _ in range(3)]
    track.stop()
    assert sub.dropped > 0
    assert live[1] - live[0] == live[2] - live[1] == 3600, live


def test_a_node_keeps_one_dtls_certificate_until_it_is_due(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = NodeCertificate.generateCertificate()
    assert NodeCertificate.generateCertificate() is first
    assert first.getFingerprints() == RTCCertificate.getFingerprints(first)
    monkeypatch.setattr(patches, "CERTIFICATE_RENEWAL", datetime.timedelta(days=31))
    renewed = NodeCertificate.generateCertificate()
    assert renewed is not first
    assert renewed.getFingerprints() != first.getFingerprints()


def test_interfaces_are_looked_up_once_for_many_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    lookups: list[tuple[bool, bool]] = []

    def lookup(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        lookups.append((use_ipv4, use_ipv6))
        return ["192.0.2.7"]

    patches.install()
    monkeypatch.setattr(patches, "_interface_addresses", lookup)
    looked_up = ice.IceSettings()
    with looked_up.applied():
        for _ in range(50):
            assert aioice.ice.get_host_addresses(True, False) == ["192.0.2.7"]
    assert lookups == [(True, False)]
    monkeypatch.setattr(ice, "HOST_ADDRESSES_TTL", -1.0)  # due again
    with looked_up.applied(["127.0.0.1"]):  # the request's own address joins them
        assert aioice.ice.get_host_addresses(True, False) == ["192.0.2.7", "127.0.0.1"]
    assert len(lookups) == 2
    with ice.IceSettings(["10.0.0.5"]).applied():  # configured: no lookup at all
        assert aioice.ice.get_host_addresses(True, True) == ["10.0.0.5"]
    assert len(lookups) == 2


def test_a_frame_is_cut_into_full_fragments_without_its_delimiter() -> None:
    """Access unit delimiters (and empty units) are left out; a slice too big for
    one packet is cut into FU-A fragments of full size and one shorter last, which
    put back together give the slice."""
    sps, pps = b"\x67" + bytes(20), b"\x68" + bytes(3)
    idr = b"\x65" + bytes(range(256)) * 20  # 5,121 bytes
    frame = b"".join(b"\x00\x00\x00\x01" + n for n in (b"\x09\xf0", sps, pps, idr))
    frame += b"\x00\x00\x00\x01"  # an empty unit at the end
    payloads = rtp_payloads(packet_of(frame))
    stap, *fragments = payloads
    assert stap[0] & 0x1F == 24 and b"\x09\xf0" not in stap  # SPS and PPS only
    assert [len(f) for f in fragments] == [1300] * 3 + [5121 - 1 - 3 * 1298 + 2]
    assert fragments[0][1] & 0x80 and fragments[-1][1] & 0x40  # start, end
    assert (
        bytes([fragments[0][0] & 0xE0 | fragments[0][1] & 0x1F])
        + b"".join(f[2:] for f in fragments)
        == idr
    )


def packet_of(data: bytes) -> MediaPacket:
    return MediaPacket("video", data, 0, Fraction(1, 90000), True, time.monotonic())


class GroupSink:
    """A writer as the track sees it, that always may join its stream's group:
    which frames the track hands it itself, and when it joined."""

    def __init__(self) -> None:
        self.written: list[int] = []  # their RTP times
        self.joined_after: int | None = None  # frames written before it joined

    def offer(self, frame: Any) -> bool:
        self.written.append(frame.timestamp)
        return True

    def join_group(self, fanout: Any, kind: str, retimer: Any, left: Any) -> bool:
        self.joined_after = len(self.written)
        return True


async def test_a_viewer_joins_its_group_only_with_nothing_queued() -> None:
    """Live, the writer is sent from its stream's group; a packet still queued then
    would go both from the track and from the group, under the same sequence
    numbers. So the track joins once its queue is empty, and parks it."""
    channel = FanOut("cam", HubSettings())
    channel.publish(packet(0, FRAME))
    sub = channel.subscribe(frozenset(("video",)))
    track = PacketTrack("video", sub, 90000, 1e9)
    sink = GroupSink()
    track.sink = sink
    async with asyncio.timeout(1):
        await track.recv()  # the cached keyframe
        for i in range(1, 4):  # queued behind it, before the track is live
            channel.publish(packet(i, FRAME))
        for _ in range(3):
            sink.offer(await track.recv())  # as the writer's task writes them
            assert sink.joined_after is None, "not with packets queued"
        waiting = asyncio.ensure_future(track.recv())
        await asyncio.sleep(0)
        assert sink.joined_after == 3 and sub.parked, "joined with the queue empty"
        channel.publish(packet(4, FRAME))
        await asyncio.sleep(0)
        assert not waiting.done() and sub.pending() == 0, "parked: the group sends it"
    waiting.cancel()
    track.stop()
