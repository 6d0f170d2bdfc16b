"""A viewer's frame protected in one buffer, laid out as its datagrams go out.

pylibsrtp's `Session.protect` takes bytes and returns bytes: per packet it
allocates a length cell, copies the packet into its buffer and copies the result
out (py-spy: more of a viewer's cost than libsrtp's own work). libsrtp 2, which
pylibsrtp wraps, has no call that protects more than one packet. So a
`FrameBuffer` keeps one buffer per viewer; a frame's packets are written into it
one after the other and each is protected in place by libsrtp through pylibsrtp's
own compiled binding, its tag landing just before the next packet. The protected
frame is then one contiguous run of datagrams, sent from the buffer as it is
(relay/webrtc/udp_batch.py): no Python object per packet.

Where pylibsrtp's binding is not as expected (`IN_PLACE` is False), each packet
goes through `Session.protect` instead, into the same buffer; tests run both.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

from pylibsrtp import Error, Session

try:  # the binding pylibsrtp itself uses, checked on pylibsrtp 1.0.0
    from pylibsrtp._binding import ffi, lib  # type: ignore[import-not-found]

    IN_PLACE = hasattr(lib, "srtp_protect")
except ImportError:  # pragma: no cover - another pylibsrtp
    ffi = lib = None
    IN_PLACE = False

MAX_TRAILER = 16 + 4  # libsrtp's SRTP_MAX_TRAILER_LEN (an AEAD tag, an MKI)


class FrameBuffer:
    """Protects one viewer's frames, each into one contiguous buffer."""

    def __init__(self, session: Session, *, in_place: bool | None = None) -> None:
        self.session = session
        wanted = IN_PLACE if in_place is None else in_place
        self.in_place = wanted and hasattr(session, "_srtp")
        self._length: Any = ffi.new("int *") if self.in_place else None
        self._cdata: Any = None
        self.view = memoryview(b"")
        self._heads: dict[int, struct.Struct] = {}  # by the length of a header's rest
        self.libsrtp_calls = 0  # packets protected, for tests
        self._grow(1 << 16)

    def _grow(self, size: int) -> None:
        if self.in_place:
            self._cdata = ffi.new("unsigned char[]", size)
            self.view = memoryview(ffi.buffer(self._cdata))
        else:
            self.view = memoryview(bytearray(size))

    def protect(
        self, first: int, payload_type: int, rest: bytes, payloads: Sequence[bytes], seq: int
    ) -> int:
        """Writes each payload behind its header (`first` byte, the marker on the
        last packet with `payload_type`, sequence numbers from `seq`, then `rest`:
        timestamp, SSRC, extensions), protects each, and returns the frame's length."""
        head = self._heads.get(len(rest))
        if head is None:
            head = self._heads[len(rest)] = struct.Struct(f"!BBH{len(rest)}s")
        size, total = head.size, sum(map(len, payloads))
        if len(self.view) < total + len(payloads) * (size + MAX_TRAILER):
            self._grow(2 * (total + len(payloads) * (size + MAX_TRAILER)))
        self.libsrtp_calls += len(payloads)
        if not self.in_place:
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
