"""A viewer's frame protected in one buffer, laid out as its datagrams go out.

pylibsrtp's `Session.protect` takes bytes and returns bytes: per packet it
allocates a length cell, copies the packet into its buffer and copies the result
out (py-spy: more of a viewer's cost than libsrtp's own work). libsrtp 2, which
pylibsrtp wraps, has no call that protects more than one packet. So a
`FrameBuffer` keeps one buffer per viewer; a frame's packets are written into it
one after the other and each is protected in place by libsrtp, its tag landing
just before the next packet. The protected frame is then one contiguous run of
datagrams, sent from the buffer as it is (relay/webrtc/udp_batch.py): no Python
object per packet.

Three ways, the first that this machine has (`MODES`; tests run each):
- "compiled": relay/webrtc/_sendpath.c (built by setup.py when installed) writes,
  protects and later sends the whole frame in one call each. What viewers
  negotiate (AES-GCM for aiortc, AES-CM with HMAC-SHA1 for Chromium) it protects
  itself where the CPU has the instructions (relay/webrtc/_srtp_protect.c: libsrtp
  through OpenSSL 3 spends more on each call's set-up than on the cipher);
  anything else by calling the srtp_protect that pylibsrtp's own binding
  exports, by its address;
- "in-place": the same loop in Python, each packet protected through that binding;
- "python": each packet through `Session.protect`, into the same buffer.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from typing import Any

from pylibsrtp import Error, Policy, Session

try:  # the binding pylibsrtp itself uses, checked on pylibsrtp 1.0.0
    from pylibsrtp._binding import ffi, lib  # type: ignore[import-not-found]

    IN_PLACE = hasattr(lib, "srtp_protect")
except ImportError:  # pragma: no cover - another pylibsrtp
    ffi = lib = None
    IN_PLACE = False
FrameSender: Any = None
fan_out: Any = None  # one frame to every viewer of a group (relay/webrtc/fanout.py)
protects_here: Any = None
try:
    from relay.webrtc import _sendpath  # type: ignore[attr-defined]

    FrameSender, fan_out = _sendpath.FrameSender, _sendpath.fan_out
    protects_here = _sendpath.protects_here
except (ImportError, AttributeError):  # not built (no C compiler), or built from older code
    FrameSender = fan_out = protects_here = None
COMPILED = IN_PLACE and FrameSender is not None
PROFILES = {  # what the compiled path can protect itself: its master key and salt's length
    Policy.SRTP_PROFILE_AES128_CM_SHA1_80: 30,
    Policy.SRTP_PROFILE_AEAD_AES_128_GCM: 28,
    Policy.SRTP_PROFILE_AEAD_AES_256_GCM: 44,
}
# Those this CPU protects there, unless VILLAGEWATCH_SRTP_CIPHER=libsrtp (to compare
# them, or to step around it).
HERE = frozenset(
    p
    for p in PROFILES
    if COMPILED and protects_here(p) and os.environ.get("VILLAGEWATCH_SRTP_CIPHER") != "libsrtp"
)
MODES = ("compiled", "in-place", "python")
AVAILABLE = tuple(m for m, ok in zip(MODES, (COMPILED, IN_PLACE, True), strict=True) if ok)
# Every viewer's: the best this machine has, unless VILLAGEWATCH_SRTP names another
# (to compare them, or to step around one).
MODE = os.environ.get("VILLAGEWATCH_SRTP") or AVAILABLE[0]
if MODE not in AVAILABLE:
    raise ImportError(f"VILLAGEWATCH_SRTP={MODE}: this machine has {', '.join(AVAILABLE)}")

MAX_TRAILER = 16 + 4  # libsrtp's SRTP_MAX_TRAILER_LEN (an AEAD tag, an MKI)


class KeyedSession(Session):
    """A pylibsrtp Session that keeps an outbound policy's profile and master key
    and salt, for the compiled path to protect with; aiortc makes its sessions with
    it (relay/webrtc/patches.py)."""

    def __init__(self, policy: Policy | None = None) -> None:
        outbound = policy is not None and policy.ssrc_type == Policy.SSRC_ANY_OUTBOUND
        super().__init__(policy)
        self.profile = policy.srtp_profile if policy is not None else 0
        self.master: bytes | None = None
        if policy is not None and outbound:
            master = bytes(policy.key or b"")
            if len(master) == PROFILES.get(self.profile):  # libsrtp takes a longer key
                self.master = master


class FrameBuffer:
    """Protects one viewer's frames, each into one contiguous buffer."""

    def __init__(
        self, session: Session, *, mode: str | None = None, here: bool | None = None
    ) -> None:
        self.session = session
        mode = mode or MODE
        if mode not in MODES or (mode != "python" and not hasattr(session, "_srtp")):
            raise ValueError(f"no {mode} SRTP on this machine")
        self.mode = mode
        self.compiled: Any = None  # the FrameSender of "compiled", which sends too
        if mode == "compiled":
            protect = int(ffi.cast("uintptr_t", ffi.addressof(lib, "srtp_protect")))
            srtp = int(ffi.cast("uintptr_t", session._srtp[0]))
            master, profile = getattr(session, "master", None), getattr(session, "profile", 0)
            if master is not None and (profile in HERE if here is None else here):
                self.compiled = FrameSender(protect, srtp, session, master=master, profile=profile)
            else:
                self.compiled = FrameSender(protect, srtp, session)
        self._length: Any = ffi.new("int *") if mode == "in-place" else None
        self._cdata: Any = None
        self.view = memoryview(b"")
        self._heads: dict[int, struct.Struct] = {}  # by the length of a header's rest
        self.packets_protected = 0  # for tests
        self._grow(1 << 16)

    def _grow(self, size: int) -> None:
        if self.mode == "in-place":
            self._cdata = ffi.new("unsigned char[]", size)
            self.view = memoryview(ffi.buffer(self._cdata))
        elif self.mode == "python":
            self.view = memoryview(bytearray(size))

    def protect(
        self, first: int, payload_type: int, rest: bytes, payloads: list[bytes], seq: int
    ) -> int:
        """Writes each payload behind its header (`first` byte, the marker on the
        last packet with `payload_type`, sequence numbers from `seq`, then `rest`:
        timestamp, SSRC, extensions), protects each, and returns the frame's length."""
        self.packets_protected += len(payloads)
        if self.compiled is not None:
            try:
                length: int = self.compiled.protect(first, payload_type, rest, payloads, seq)
            except RuntimeError as exc:  # what libsrtp answered
                raise Error(str(exc)) from None
            return length
        head = self._heads.get(len(rest))
        if head is None:
            head = self._heads[len(rest)] = struct.Struct(f"!BBH{len(rest)}s")
        size, total = head.size, sum(map(len, payloads))
        if len(self.view) < total + len(payloads) * (size + MAX_TRAILER):
            self._grow(2 * (total + len(payloads) * (size + MAX_TRAILER)))
        if self.mode == "python":
            return self._protect_each(head, payloads, seq, (first, payload_type, rest))
        view, pack, cdata, cell = self.view, head.pack_into, self._cdata, self._length
        srtp, protect = self.session._srtp[0], lib.srtp_protect
        last, at = len(payloads) - 1, 0
        for i, payload in enumerate(payloads):
            pack(view, at, first, payload_type | (i == last) << 7, seq, rest)
            cell[0] = length = size + len(payload)
            view[at + size : at + length] = payload
            if protect(srtp, cdata + at, cell):
                raise Error("srtp_protect failed")
            at += cell[0]
            seq = (seq + 1) & 0xFFFF
        return at

    def _protect_each(
        self,
        head: struct.Struct,
        payloads: Sequence[bytes],
        seq: int,
        fields: tuple[int, int, bytes],
    ) -> int:
        """The same through `Session.protect`, a packet at a time."""
        first, payload_type, rest = fields
        view, last, at = self.view, len(payloads) - 1, 0
        for i, payload in enumerate(payloads):
            marked = payload_type | (i == last) << 7
            data = self.session.protect(head.pack(first, marked, seq, rest) + payload)
            view[at : at + len(data)] = data
            at += len(data)
            seq = (seq + 1) & 0xFFFF
        return at

    @property
    def cipher(self) -> str:
        """Who protects: "aes-gcm" or "aes-cm-hmac-sha1" (relay/webrtc/_srtp_protect.c),
        or "libsrtp"."""
        return str(self.compiled.cipher) if self.compiled is not None else "libsrtp"

    def protect_again(self, packet: bytes) -> bytes:
        """A packet sent before, protected under the index it went with (a
        retransmission without RTX)."""
        if self.compiled is not None and self.compiled.cipher != "libsrtp":
            try:
                data: bytes = self.compiled.protect_again(packet)
            except RuntimeError as exc:
                raise Error(str(exc)) from None
            return data
        return self.session.protect(packet)

    def frame(self, length: int) -> bytes:
        """The frame protected last, `length` bytes long, as it lies in the buffer."""
        if self.compiled is not None:
            data: bytes = self.compiled.frame()
            return data
        return bytes(self.view[:length])
