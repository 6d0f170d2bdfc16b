"""A viewer's datagrams sent a frame at a time: UDP generic segmentation offload.

aiortc sends every RTP packet with a sendto() of its own, and the kernel's send is
a large part of what a viewer costs a node (py-spy: on loopback it also delivers
the packet). Each run of same-sized datagrams to one address, the last of it
maybe shorter, goes in a single sendmsg() with UDP_SEGMENT (Linux 4.18+): the
kernel takes the run through its stack once and splits it into the same
datagrams. A frame's packets are of one size but the last (`even_fu_a` in
relay/webrtc/codecs.py), so a frame goes out in one or two calls instead of one
per packet.

A writer's protected frame goes at once from its buffer (`send_frame`); other
datagrams a socket is given in one loop turn (DTLS, RTCP) are kept and sent at
the turn's end, and a frame that finds some of them waiting is queued behind.
Where segmentation cannot be done (no plain socket, as with TURN; a device that
refuses it; the socket's buffer full), the datagrams go through the asyncio
transport one by one, in the same order, as before.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import struct
from collections.abc import Sequence
from typing import Any

import aioice.ice

logger = logging.getLogger(__name__)

UDP_SEGMENT = 103  # linux/udp.h; the socket module does not name it
MAX_SEGMENTS = 64  # UDP_MAX_SEGMENTS
MAX_BYTES = 65000  # a UDP datagram's limit, less its IP and UDP headers
# What the kernel answers where a socket's route cannot segment (other errors are
# the datagrams', and the transport reports them as it sends them one by one).
NO_SEGMENTATION = {errno.EIO, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOPROTOOPT}
Run = tuple[int, int, int]  # a run of a frame's datagrams: its start, end and segment size


class DatagramBatch:
    """The datagrams one socket is given in a loop turn, sent at its end."""

    def __init__(self, transport: asyncio.DatagramTransport) -> None:
        self._transport = transport
        self._sock = _own_socket(transport)
        self._pending: list[tuple[bytes, Any]] = []
        self.calls = 0  # send system calls made, for tests and benchmarks

    def sendto(self, data: bytes, addr: Any) -> None:
        if not self._pending:
            asyncio.get_running_loop().call_soon(self.flush)
        self._pending.append((data, addr))

    def close(self) -> None:
        """Lets go of the socket (the transport's own stays as it is)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        sizes = [len(data) for data, _ in pending]
        start = 0
        while start < len(pending):
            addr, same = pending[start][1], start + 1
            while same < len(pending) and pending[same][1] == addr:
                same += 1
            end = run_end(sizes, start, same)
            if end - start == 1 or not self._send_run(pending[start:end]):
                for data, to in pending[start:end]:
                    self._send_one(data, to)
            start = end

    def send_frame(self, frame: memoryview, runs: Sequence[Run], addr: Any) -> None:
        """A protected frame's datagrams, run by run, straight from the writer's
        buffer (relay/webrtc/srtp.py) if nothing is queued before them; else, or
        from a run the kernel refused, copied into the queue."""
        first = 0
        if not self._pending and self._may_segment():
            while first < len(runs):
                start, end, size = runs[first]
                if not self._segments(frame[start:end], size, addr):
                    break
                first += 1
        for start, end, size in runs[first:]:
            for at in range(start, end, size):
                self.sendto(bytes(frame[at : min(at + size, end)]), addr)

    def send_protected(self, sender: Any, addr: Any) -> None:
        """The frame a compiled sender (relay/webrtc/srtp.py) protected last, sent
        from its buffer by it, as send_frame does; what it could not send, queued."""
        if not self._pending and self._may_segment():
            assert self._sock is not None
            if sender.send(self._sock.fileno(), addr):  # it counts its calls
                return
        self.send_left(sender, addr)

    def send_left(self, sender: Any, addr: Any) -> None:
        """What a compiled sender protected and did not send (or was not to send),
        queued; if its route could not segment, this socket is let go of: one by
        one from now."""
        if sender.error in NO_SEGMENTATION:
            self.close()
        for data in sender.datagrams():
            self.sendto(data, addr)

    def _send_one(self, data: bytes, addr: Any) -> None:
        try:
            self._transport.sendto(data, addr)
        except Exception:  # a loop callback: nothing above to catch it
            logger.debug("a datagram to %s could not be sent", addr, exc_info=True)
        self.calls += 1

    def _may_segment(self) -> bool:
        transport = self._transport
        return (
            self._sock is not None
            and not transport.is_closing()
            and not transport.get_write_buffer_size()  # type: ignore[attr-defined]
        )  # else what the transport buffered goes first

    def _send_run(self, run: list[tuple[bytes, Any]]) -> bool:
        """Sends the run in one call; False if it must go one by one."""
        if not self._may_segment():
            return False
        return self._segments(b"".join(data for data, _ in run), len(run[0][0]), run[0][1])

    def _segments(self, data: bytes | memoryview, size: int, addr: Any) -> bool:
        """`data` as datagrams of `size` bytes (the last maybe shorter) in one
        call; False if it must go another way."""
        sock = self._sock
        assert sock is not None
        try:
            if len(data) <= size:
                sock.sendto(data, addr)
            else:
                segment = [(socket.SOL_UDP, UDP_SEGMENT, struct.pack("=H", size))]
                sock.sendmsg([data], segment, 0, addr)
        except BlockingIOError:
            return False  # the transport waits for room
        except OSError as exc:
            if exc.errno in NO_SEGMENTATION:
                self.close()  # this socket's route cannot segment: one by one from now
            return False  # the transport sends them, and reports what fails
        self.calls += 1
        return True


def _own_socket(transport: asyncio.BaseTransport) -> socket.socket | None:
    """A socket of our own on the transport's: the one it shows (asyncio's and
    uvloop's alike) has no sendmsg. None for a transport without one (aioice's
    TURN transport, which is no asyncio transport: it has no is_closing either)."""
    shown = transport.get_extra_info("socket")
    if shown is None or not hasattr(shown, "dup"):
        return None
    if transport.is_closing():
        return None  # connection_lost, which closes ours, may have come already
    sock: socket.socket = shown.dup()
    sock.setblocking(False)  # as the transport's is: they share the file status
    return sock


def run_end(sizes: Sequence[int], start: int, stop: int) -> int:
    """The end of the run from `start` (before `stop`): datagrams all of the first
    one's size but the last, which may be shorter."""
    size = sizes[start]
    end, total = start + 1, size
    while (
        end < stop
        and end - start < MAX_SEGMENTS
        and sizes[end - 1] == size
        and sizes[end] <= size
        and total + sizes[end] <= MAX_BYTES
    ):
        total += sizes[end]
        end += 1
    return end


def frame_runs(sizes: Sequence[int]) -> list[Run]:
    """The runs of a frame's datagrams of these sizes, laid out one after another."""
    runs, start, at = [], 0, 0
    while start < len(sizes):
        end = run_end(sizes, start, len(sizes))
        length = sum(sizes[start:end])
        runs.append((at, at + length, sizes[start]))
        start, at = end, at + length
    return runs


def batch_for(protocol: aioice.ice.StunProtocol) -> DatagramBatch:
    """The batch of an ICE candidate's socket, made at its first datagram; on the
    one shared port (relay/webrtc/udp_mux.py), the socket's batch for all."""
    shared: DatagramBatch | None = getattr(protocol.transport, "shared_batch", None)
    if shared is not None:
        return shared
    batch: DatagramBatch | None = protocol.__dict__.get("batch")
    if batch is None:
        batch = protocol.__dict__["batch"] = DatagramBatch(protocol.transport)
    return batch
