"""What the kernel takes to send one viewer a frame over loopback: the floor under
the node's per-viewer cost (docs/performance.md, "The send path").

A frame of N equal datagrams (1100 bytes each, as a 720p or 360p camera's FU-A
fragments) goes to a receiving process that waits in epoll and reads all it gets,
as a viewer does, 25 frames a second apart: either in one sendmsg() with
UDP_SEGMENT (the node's way, relay/webrtc/udp_batch.py) or one sendto() per
datagram (aiortc's). The figure is the sender's CPU per frame (process_time),
less that of the same loop sending nothing, in microseconds; on loopback it
includes delivering each datagram to the receiver's socket and waking it. No
SRTP: this is the kernel's part alone.

    .venv/bin/python bench/udp_send.py [--segments 4,7] [--frames 250] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import selectors
import signal
import socket
import struct
import sys
import time

import common

UDP_SEGMENT = 103  # linux/udp.h
SIZE = 1100
GAP = 0.04  # between frames: 25 fps


def receiver() -> tuple[int, tuple[str, int]]:
    """A child process reading every datagram it is sent; its pid and address."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((common.HOST, 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    sys.stdout.flush()  # or the child holds a copy of what is unwritten
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        sock.setblocking(False)
        events = selectors.DefaultSelector()
        events.register(sock, selectors.EVENT_READ)
        while True:
            events.select()
            while True:
                try:
                    sock.recv(2048)
                except BlockingIOError:
                    break
    address: tuple[str, int] = sock.getsockname()
    sock.close()
    return pid, address


def cpu_per_frame(way: str, segments: int, frames: int, to: tuple[str, int]) -> float:
    """The sender's CPU per frame, in us, sending `way`."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    frame = os.urandom(SIZE * segments)
    size = [(socket.SOL_UDP, UDP_SEGMENT, struct.pack("H", SIZE))]
    start = time.process_time()
    for _ in range(frames):
        if way == "segmented":
            sock.sendmsg([frame], size, 0, to)
        elif way == "one by one":
            for at in range(0, len(frame), SIZE):
                sock.sendto(frame[at : at + SIZE], to)
        time.sleep(GAP)
    sock.close()
    return (time.process_time() - start) / frames * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", default="4,7", help="datagrams per frame, comma separated")
    parser.add_argument("--frames", type=int, default=250, help="frames per way and round")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(f"{common.command_line()}\n{common.machine_facts()}\n")
    rows = [("datagrams per frame", "round", "segmented us", "one by one us", "ratio")]
    for segments in [int(s) for s in args.segments.split(",")]:
        for n in range(1, args.rounds + 1):
            pid, to = receiver()
            try:
                idle = cpu_per_frame("none", segments, args.frames, to)
                gso = cpu_per_frame("segmented", segments, args.frames, to) - idle
                plain = cpu_per_frame("one by one", segments, args.frames, to) - idle
            finally:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            rows.append((str(segments), str(n), f"{gso:.1f}", f"{plain:.1f}", f"{gso / plain:.2f}"))
    print("\n".join(common.table(rows)))


if __name__ == "__main__":
    main()
