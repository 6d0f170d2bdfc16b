"""What SRTP costs a viewer's packet: the node's own protect against libsrtp's.

Frames of 1100-byte payloads are protected by the compiled path (relay/webrtc/srtp.py)
for many viewers in turn, as fan_out does, each viewer with its own session: once
with SRTP protected by relay/webrtc/_srtp_protect.c and once by libsrtp (through
OpenSSL), for each profile viewers negotiate. With many viewers their state is no
longer in the CPU's caches, as in a node. The figure is process CPU per packet, in
microseconds, one Python call per viewer and frame included.

    .venv/bin/python bench/srtp_protect.py [--viewers 1,50] [--packets 4] [--frames 400]
"""

from __future__ import annotations

import os
import time
from argparse import Namespace

import common
from pylibsrtp import Policy

from relay.webrtc import srtp
from relay.webrtc.srtp import FrameBuffer, KeyedSession

PROFILES = {  # as Chromium and aiortc name them, and the master's length
    "AES_CM_128_HMAC_SHA1_80": (Policy.SRTP_PROFILE_AES128_CM_SHA1_80, 30),
    "AEAD_AES_128_GCM": (Policy.SRTP_PROFILE_AEAD_AES_128_GCM, 28),
    "AEAD_AES_256_GCM": (Policy.SRTP_PROFILE_AEAD_AES_256_GCM, 44),
}
OUTBOUND = Policy.SSRC_ANY_OUTBOUND
SIZE = 1100  # a payload, as a camera's FU-A fragments
TAIL = bytes(8) + bytes.fromhex("bede0001 10300000")  # timestamp, SSRC, abs-send-time


def us_per_packet(profile: int, length: int, here: bool, viewers: int, args: Namespace) -> float:
    """Process CPU per packet, protecting `viewers` sessions' frames in turn."""
    packets: int = args.packets
    frames: int = args.frames
    buffers = []
    for _ in range(viewers):
        policy = Policy(key=os.urandom(length), ssrc_type=OUTBOUND, srtp_profile=profile)
        buffers.append(FrameBuffer(KeyedSession(policy), mode="compiled", here=here))
    payloads = [os.urandom(SIZE) for _ in range(packets)]
    seq = 0
    start = time.process_time()
    for _ in range(frames):
        for frame in buffers:
            frame.protect(0x90, 96, TAIL, payloads, seq)
        seq = (seq + packets) & 0xFFFF
    return (time.process_time() - start) / (frames * viewers * packets) * 1e6


def main() -> None:
    parser = common.argument_parser(__doc__, "--viewers", "1,50", int, "viewers in turn")
    parser.add_argument("--packets", type=int, default=4, help="packets per frame (default 4)")
    parser.add_argument("--frames", type=int, default=400, help="frames per viewer (default 400)")
    args = parser.parse_args()
    if not srtp.COMPILED:
        parser.error("no compiled send path here: nothing to compare")
    print(f"{common.command_line()}\n{common.machine_facts()}\n")
    rows = [("profile", "viewers", "here us/packet", "libsrtp us/packet", "ratio")]
    for name, (profile, length) in PROFILES.items():
        if profile not in srtp.HERE:
            print(f"{name}: this CPU has not what it needs: libsrtp protects it")
            continue
        for viewers in args.viewers:
            here = us_per_packet(profile, length, True, viewers, args)
            libsrtp = us_per_packet(profile, length, False, viewers, args)
            rows.append(
                (name, str(viewers), f"{here:.2f}", f"{libsrtp:.2f}", f"{here / libsrtp:.2f}")
            )
    print("\n".join(common.table(rows, left={0})))


if __name__ == "__main__":
    main()
