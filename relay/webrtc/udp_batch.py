"""A viewer's datagrams sent a frame at a time: UDP generic segmentation offload.

aiortc sends every RTP packet with a sendto() of its own, and the kernel's send is
most of what a viewer costs a node (py-spy: on loopback it also delivers the
packet). A frame's packets are all handed over in one step of the sender's task,
so what a socket is given in one loop turn is kept and sent at the turn's end:
each run of same-sized datagrams to one address, the last of it maybe shorter,
in a single sendmsg() with UDP_SEGMENT (Linux 4.18+). The kernel takes the run
through its stack once and splits it into the same datagrams. A frame's packets
are of one size but the last (`even_fu_a` in relay/webrtc/codecs.py), so a frame goes out
in one or two calls instead of one per packet.

Where that cannot be done (no plain socket, as with TURN; a device that refuses
segmentation; the socket's buffer full), the datagrams go through the asyncio
transport one by one, in the same order, as before.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import struct
from typing import Any

import aioice.ice

logger = logging.getLogger(__name__)

UDP_SEGMENT = 103  # linux/udp.h; the socket module does not name it
MAX_SEGMENTS = 64  # UDP_MAX_SEGMENTS
MAX_BYTES = 65000  # a UDP datagram's limit, less its IP and UDP headers
# What the kernel answers where a socket's route cannot segment (other errors are
# the datagrams', and the transport reports them as it sends them one by one).
NO_SEGMENTATION = {errno.EIO, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOPROTOOPT}


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
        start = 0
        while start < len(pending):
            end = _run_end(pending, start)
            if end - start == 1 or not self._send_run(pending[start:end]):
                for data, addr in pending[start:end]:
                    try:
                        self._transport.sendto(data, addr)
                    except Exception:  # a loop callback: nothing above to catch it
                        logger.debug("a datagram to %s could not be sent", addr, exc_info=True)
                    self.calls += 1
            start = end

    def _send_run(self, run: list[tuple[bytes, Any]]) -> bool:
        """Sends the run in one call; False if it must go one by one."""
        sock, transport = self._sock, self._transport
        if sock is None or transport.is_closing() or transport.get_write_buffer_size():  # type: ignore[attr-defined]
            return False  # what the transport buffered goes first
        size = struct.pack("=H", len(run[0][0]))
        try:
            sock.sendmsg(
                [b"".join(data for data, _ in run)],
                [(socket.SOL_UDP, UDP_SEGMENT, size)],
                0,
                run[0][1],
            )
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


def _run_end(pending: list[tuple[bytes, Any]], start: int) -> int:
    """The end of the run from `start`: datagrams to one address, all of the first
    one's size but the last, which may be shorter."""
    size, addr = len(pending[start][0]), pending[start][1]
    end, total = start + 1, size
    while (
        end < len(pending)
        and end - start < MAX_SEGMENTS
        and len(pending[end - 1][0]) == size
        and len(pending[end][0]) <= size
        and pending[end][1] == addr
        and total + len(pending[end][0]) <= MAX_BYTES
    ):
        total += len(pending[end][0])
        end += 1
    return end


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
