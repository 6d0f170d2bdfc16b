"""A stream's live viewers sent each frame in one call: relay/webrtc/fanout.py and
the compiled fan_out (relay/webrtc/_sendpath.c), against what a viewer receives."""

from __future__ import annotations

import asyncio
import os
import struct
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import pytest
from aiortc.rtp import RtpPacket
from hypothesis import given, settings
from hypothesis import strategies as st
from pylibsrtp import Policy, Session

from ingest.packet import MediaPacket
from relay.media.hub import FanOut, HubSettings
from relay.webrtc import srtp
from relay.webrtc.fanout import ViewerGroup
from relay.webrtc.srtp import FrameBuffer
from relay.webrtc.track import Retimer
from relay.webrtc.udp_batch import DatagramBatch

TAIL = struct.pack("!I", 0x1234_5678)  # the header after the timestamp: the SSRC alone
CLOCK = 90_000


class Collect(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.received.put_nowait(data)


@dataclass
class Pair:
    """What a group keeps of a viewer's nominated ICE pair."""

    remote_addr: tuple[str, int]


@dataclass
class Writer:
    """What a group tells a viewer's writer: here, who left and how often it synced."""

    left: list[Any] = field(default_factory=list)
    synced: int = 0
    reports: int = 0
    failing: bool = False  # its reports raise
    group: ViewerGroup | None = None
    member: Any = None

    def still_in(self, member: Any) -> bool:
        return member.batch._sock is member.sock

    def sync(self) -> None:
        self.synced += 1

    def report(self) -> None:
        self.reports += 1
        if self.failing:
            raise RuntimeError("no report")

    def leave_group(self) -> None:
        assert self.group is not None
        self.group.leave(self.member)
        self.left.append(self.member)


@dataclass
class Viewer:
    key: bytes
    frames: FrameBuffer
    inbox: Collect
    pair: Pair
    batch: DatagramBatch
    writer: Writer
    origin: int
    seq: int
    session: Session | None = None  # its SRTP receiver, which follows the roll-over

    async def packets(self, count: int) -> list[RtpPacket]:
        if self.session is None:
            self.session = Session(Policy(key=self.key, ssrc_type=Policy.SSRC_ANY_INBOUND))
        async with asyncio.timeout(5):
            got = [await self.inbox.received.get() for _ in range(count)]
        return [RtpPacket.parse(self.session.unprotect(d)) for d in got]


@pytest.fixture
async def viewers() -> AsyncIterator[list[Viewer]]:
    """Three viewers, each with its own SRTP key, socket, origin and sequence
    number, and a socket the node sends from."""
    loop = asyncio.get_running_loop()
    out, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
    )
    made, ends = [], [out]
    for i in range(3):
        inbox, collect = await loop.create_datagram_endpoint(Collect, local_addr=("127.0.0.1", 0))
        ends.append(inbox)
        key = os.urandom(30)
        frames = FrameBuffer(Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND)))
        batch = DatagramBatch(out)
        pair = Pair(inbox.get_extra_info("sockname"))
        made.append(Viewer(key, frames, collect, pair, batch, Writer(), 1000 * i, 65530 + i))
    yield made
    for viewer in made:
        viewer.batch.close()
    for end in ends:
        end.close()


def join(group: ViewerGroup, viewer: Viewer, retimer: Retimer) -> None:
    sender = viewer.frames.compiled
    sender.join(
        viewer.batch._sock,
        viewer.pair.remote_addr,
        0x80,
        96,
        TAIL,
        -1,
        viewer.origin,
        viewer.seq,
        retimer.clock,
        retimer.frame_ticks,
        retimer._offset,
        retimer._last or 0,
        retimer._last is not None,
    )
    viewer.writer.group = group
    viewer.writer.member = group.join(sender, viewer.writer, viewer.pair, viewer.batch)


def packet(i: int, size: int = 3000) -> MediaPacket:
    """An H.264 frame of one NAL unit: three RTP packets (FU-A) at 1200 bytes."""
    nal = bytes([0x41]) + bytes([i % 256]) * (size - 1)
    return MediaPacket("video", b"\0\0\0\1" + nal, i * 3600, Fraction(1, CLOCK), False, 0.0)


async def test_every_viewer_gets_each_frame_with_its_own_numbers_keys_and_time(
    viewers: list[Viewer],
) -> None:
    fanout = FanOut("cam/main", HubSettings())
    group = ViewerGroup.of(fanout, "video", CLOCK)
    assert ViewerGroup.of(fanout, "video", CLOCK) is group, "one group a stream and kind"
    for viewer in viewers:
        join(group, viewer, Retimer(CLOCK, CLOCK // 25))
    for i in range(5):
        fanout.publish(packet(i))
    for viewer in viewers:
        got = await viewer.packets(15)
        assert [p.sequence_number for p in got] == [(viewer.seq + n) & 0xFFFF for n in range(15)], (
            "in order, wrapping round"
        )
        assert [p.timestamp for p in got[::3]] == [viewer.origin + i * 3600 for i in range(5)]
        assert [p.marker for p in got] == [False, False, True] * 5
        assert {p.ssrc for p in got} == {0x12345678}
        sent = group.packet(viewer.writer.member, got[7].sequence_number)
        assert sent is not None
        assert sent[0] == got[7].payload and sent[1:3] == (False, got[7].timestamp)

    # One leaves: the others go on; the last to leave takes the group's tap along.
    viewers[1].writer.leave_group()
    fanout.publish(packet(5))
    for viewer in (viewers[0], viewers[2]):
        assert len(await viewer.packets(3)) == 3
    assert viewers[1].inbox.received.empty()
    viewers[0].writer.leave_group()
    viewers[2].writer.leave_group()
    assert fanout.taps == {}


async def test_a_group_sends_its_viewers_reports_with_its_frames(viewers: list[Viewer]) -> None:
    """A round of sender reports with the group's first frame, then with the first
    frame once REPORT_SECONDS have gone by: no timer of each viewer's own. One
    that fails leaves the others theirs, and the frames go on."""
    fanout = FanOut("cam/main", HubSettings())
    group = ViewerGroup.of(fanout, "video", CLOCK)
    for viewer in viewers:
        join(group, viewer, Retimer(CLOCK, CLOCK // 25))
    viewers[0].writer.failing = True
    for i in range(3):
        fanout.publish(packet(i))
    assert [v.writer.reports for v in viewers] == [1, 1, 1]
    assert group._report_at > time.monotonic(), "the next round a second on"
    viewers[0].writer.leave_group()
    group._report_at = time.monotonic()  # as if the second went by
    fanout.publish(packet(3))
    assert [v.writer.reports for v in viewers] == [1, 2, 2]
    assert group.reports == 2
    assert len(await viewers[1].packets(12)) == 12, "every frame sent"


async def test_a_viewer_whose_socket_is_gone_leaves_and_the_others_go_on(
    viewers: list[Viewer],
) -> None:
    """Its frame went the Python way (the transport still sends it); at the next
    audit the writer is asked and it leaves."""
    fanout = FanOut("cam/main", HubSettings())
    group = ViewerGroup.of(fanout, "video", CLOCK)
    for viewer in viewers:
        join(group, viewer, Retimer(CLOCK, CLOCK // 25))
    gone = viewers[0]
    gone.batch.close()
    for i in range(25):  # AUDIT_FRAMES
        fanout.publish(packet(i, size=1000))
    assert [p.sequence_number for p in await gone.packets(25)] == [
        (gone.seq + n) & 0xFFFF for n in range(25)
    ], "still sent, through the transport"
    assert gone.writer.left == [gone.writer.member]
    assert [v.writer.synced for v in viewers[1:]] == [1, 1]
    for viewer in viewers[1:]:
        assert len(await viewer.packets(25)) == 25


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(st.none(), st.integers(min_value=0, max_value=10 * 60 * CLOCK)),
        min_size=1,
        max_size=40,
    ),
    st.one_of(st.none(), st.integers(min_value=0, max_value=CLOCK * 100)),
)
def test_the_compiled_retimer_is_the_python_one(raws: list[int | None], start: int | None) -> None:
    """Joined from a Retimer's state, fan_out gives every frame the RTP time the
    Retimer would have (backwards, jumps, frames without a time)."""
    python, compiled = Retimer(CLOCK, CLOCK // 25), Retimer(CLOCK, CLOCK // 25)
    if start is not None:
        python.set(start)
        compiled.set(start)
    frames = FrameBuffer(Session(Policy(key=os.urandom(30), ssrc_type=Policy.SSRC_ANY_OUTBOUND)))
    sender = frames.compiled
    last = compiled._last
    state = (CLOCK, CLOCK // 25, compiled._offset, last or 0, last is not None)
    sender.join(None, ("127.0.0.1", 9), 0x80, 96, TAIL, -1, 0, 0, *state)
    for n, raw in enumerate(raws):
        expected = python(MediaPacket("video", b"", raw, Fraction(1, CLOCK), False, 0.0))
        assert srtp.fan_out([sender], [b"x"], raw, 0, n) == [sender], "no socket: queued"
        sender.datagrams()
        assert sender.state[2] == expected


async def test_a_nack_finds_only_what_the_viewers_group_sent(viewers: list[Viewer]) -> None:
    """A frame of no packets hides none sent before it; a viewer that left and
    joined a new group (its frames numbered from 0 again) finds nothing of the old
    one, rather than the new group's frame of that number."""
    viewer = viewers[0]
    fanout = FanOut("cam/main", HubSettings())
    group = ViewerGroup.of(fanout, "video", CLOCK)
    join(group, viewer, Retimer(CLOCK, CLOCK // 25))
    for i in range(3):
        fanout.publish(packet(i))
    fanout.publish(
        MediaPacket("video", b"\0\0\0\1\x09\x10", 3 * 3600, Fraction(1, CLOCK), False, 0)
    )
    sent = await viewer.packets(9)
    first = group.packet(viewer.writer.member, sent[0].sequence_number)
    assert first is not None and first[0] == sent[0].payload, "behind an empty frame"
    viewer.writer.leave_group()
    assert fanout.taps == {}
    viewer.seq = viewer.frames.compiled.state[0]  # handed back, as its writer takes it
    group = ViewerGroup.of(fanout, "video", CLOCK)
    join(group, viewer, Retimer(CLOCK, CLOCK // 25))
    fanout.publish(packet(9))
    assert group.packet(viewer.writer.member, sent[0].sequence_number) is None
    again = await viewer.packets(3)
    found = group.packet(viewer.writer.member, again[0].sequence_number)
    assert found is not None and found[0] == again[0].payload
