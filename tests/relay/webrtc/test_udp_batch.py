"""Datagrams a socket is given in one loop turn go to the kernel in runs, unchanged."""

from __future__ import annotations

import asyncio
import os
import struct
from collections.abc import AsyncIterator

import pytest
from aioice.turn import TurnTransport
from pylibsrtp import Policy, Session

from relay.webrtc.srtp import FrameBuffer
from relay.webrtc.udp_batch import DatagramBatch, frame_runs


class Collect(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.received.put_nowait(data)


@pytest.fixture
async def link() -> AsyncIterator[tuple[DatagramBatch, Collect, object]]:
    """A batch on one UDP endpoint, and what another one receives, at its address."""
    loop = asyncio.get_running_loop()
    inbox, collect = await loop.create_datagram_endpoint(Collect, local_addr=("127.0.0.1", 0))
    out, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
    )
    batch = DatagramBatch(out)
    yield batch, collect, inbox.get_extra_info("sockname")
    batch.close()
    out.close()
    inbox.close()


async def send_and_receive(
    link: tuple[DatagramBatch, Collect, object], sizes: list[int]
) -> tuple[list[bytes], list[bytes]]:
    batch, collect, address = link
    sent = [os.urandom(n) for n in sizes]
    for data in sent:
        batch.sendto(data, address)
    assert batch.calls == 0, "nothing goes before the turn ends"
    async with asyncio.timeout(5):
        return sent, [await collect.received.get() for _ in sent]


async def test_a_turns_datagrams_go_in_runs_and_arrive_as_sent(
    link: tuple[DatagramBatch, Collect, object],
) -> None:
    # A frame (five full packets and a shorter last one), a packet of another
    # size, then two full ones: three runs.
    sent, received = await send_and_receive(link, [1300] * 5 + [700, 300, 1300, 1300])
    assert received == sent
    assert link[0].calls == 3


async def test_without_a_socket_of_its_own_every_datagram_still_goes(
    link: tuple[DatagramBatch, Collect, object],
) -> None:
    """After the kernel refused a run (or for a TURN transport, which has no socket),
    the datagrams go one by one through the transport, in order."""
    link[0].close()
    sent, received = await send_and_receive(link, [1300] * 4)
    assert received == sent
    assert link[0].calls == 4


class TurnClient:
    """Stands in for aioice's TURN client protocol (there is no TURN server here):
    what a TurnTransport hands it to send, in order."""

    def __init__(self, transport: asyncio.DatagramTransport, expected: int) -> None:
        self.transport = transport
        self.sent: list[bytes] = []
        self.all_sent = asyncio.Event()
        self.expected = expected

    async def send_data(self, data: bytes, addr: object) -> None:
        self.sent.append(data)
        if len(self.sent) == self.expected:
            self.all_sent.set()


async def test_a_turn_transport_gets_every_datagram_one_by_one(
    link: tuple[DatagramBatch, Collect, object],
) -> None:
    """aioice's TURN transport has no socket (nor is_closing): the batch sends
    through it, datagram by datagram, in order."""
    batch, _, address = link
    sent = [os.urandom(1300) for _ in range(3)] + [os.urandom(200)]
    client = TurnClient(batch._transport, len(sent))
    turn = DatagramBatch(TurnTransport(client))  # type: ignore[arg-type]
    for data in sent:
        turn.sendto(data, address)
    async with asyncio.timeout(5):
        await client.all_sent.wait()  # TurnTransport sends from tasks of its own
    assert client.sent == sent
    assert turn.calls == len(sent)


@pytest.mark.parametrize("segments", [True, False], ids=["segmented", "one-by-one"])
async def test_a_frame_goes_from_its_buffer_in_a_call_per_run(
    link: tuple[DatagramBatch, Collect, object], segments: bool
) -> None:
    """A viewer's protected frame (relay/webrtc/srtp.py) is sent from its buffer, a
    call per run of equal datagrams; where the socket cannot segment, one by one."""
    batch, collect, address = link
    if not segments:
        batch.close()
    # Four runs: a shorter datagram ends one, and a run is at most 65,000 bytes.
    sizes = [1300] * 5 + [700, 300] + [1300] * 70
    sent = [os.urandom(n) for n in sizes]
    runs = frame_runs(sizes)
    assert [-((start - end) // size) for start, end, size in runs] == [6, 1, 50, 20]
    batch.send_frame(memoryview(b"".join(sent)), runs, address)
    async with asyncio.timeout(5):
        received = [await collect.received.get() for _ in sent]
    assert received == sent
    assert batch.calls == (len(runs) if segments else len(sent))


@pytest.mark.parametrize("way", ["segmented", "one-by-one", "queued"])
async def test_a_compiled_frame_goes_as_the_python_one_does(
    link: tuple[DatagramBatch, Collect, object], way: str
) -> None:
    """The compiled send path (relay/webrtc/_sendpath.c) sends the frame it
    protected from its buffer, a call per run; where the socket cannot segment, or
    datagrams queued in this turn must go first, its datagrams go after them, one
    by one, in order."""
    batch, collect, address = link
    if way == "one-by-one":
        batch.close()
    frames = FrameBuffer(Session(Policy(key=os.urandom(30), ssrc_type=Policy.SSRC_ANY_OUTBOUND)))
    assert frames.compiled is not None, "the compiled send path was not built (setup.py)"
    payloads = [os.urandom(1200)] * 5 + [os.urandom(500), os.urandom(200)] + [os.urandom(1200)] * 60
    length = frames.protect(0x80, 96, struct.pack("!II", 1, 2), payloads, 1)
    written = frames.frame(length)
    first = [os.urandom(100)] if way == "queued" else []
    for data in first:
        batch.sendto(data, address)
    batch.send_protected(frames.compiled, address)
    async with asyncio.timeout(5):
        received = [await collect.received.get() for _ in range(len(first) + len(payloads))]
    assert received[: len(first)] == first
    assert b"".join(received[len(first) :]) == written
    assert [len(d) for d in received[len(first) :]] == [len(p) + 12 + 10 for p in payloads]
    runs = 4  # 6 (a shorter one ends it), 1, 50 (65,000 bytes at most), 10
    calls = {
        "segmented": runs,
        "one-by-one": len(payloads),
        "queued": 1 + runs,
    }  # at the turn's end
    assert batch.calls + frames.compiled.calls == calls[way]
