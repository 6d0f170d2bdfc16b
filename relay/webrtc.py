"""WebRTC media for viewers: encoded packets from the hub, never decoded per viewer.

A viewer's tracks hand their RtpWriter (relay/rtpsend.py) the camera's own H.264
(or the channel's one shared transcode) frame by frame, as RTP payloads made once
per frame for every viewer. Timestamps are rewritten so the cached GOP a viewer
starts with plays at once instead of lagging behind live by its age, and so a
camera that reconnects with a new clock never makes RTP time run backwards.
"""

from __future__ import annotations

import asyncio
import datetime
import errno
import math
import random
import time
from typing import Any

import aioice.ice
import aiortc.rtcpeerconnection
import aiortc.rtcrtpreceiver
from aiortc import MediaStreamTrack, RTCIceServer, RTCRtpSender
from aiortc import rtp as aiortc_rtp
from aiortc.codecs import CODECS, is_rtx
from aiortc.codecs.h264 import PACKET_MAX, H264Encoder
from aiortc.mediastreams import MediaStreamError
from aiortc.rate import RemoteBitrateEstimator
from aiortc.rtcdtlstransport import (
    RTCCertificate,
    RTCDtlsFingerprint,
    SRTPProtectionProfile,
    generate_certificate,
)
from aiortc.rtcrtpparameters import RTCRtcpFeedback, RTCRtpCodecCapability, RTCRtpCodecParameters
from aiortc.sdp import H264Profile, parse_h264_profile_level_id
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from OpenSSL import SSL

from ingest import MediaPacket
from relay.config import WebRtcConfig
from relay.hub import Subscription, SubscriptionClosed
from relay.rtpsend import RtpFrame

VIDEO_CLOCK = 90000
MAX_JUMP_SECONDS = 5.0
NAL_AUD = 9  # access unit delimiter
HOST_ADDRESSES_TTL = 10.0  # s an interface lookup serves answers for
CERTIFICATE_RENEWAL = datetime.timedelta(days=29)  # left when a node's is renewed
_interface_addresses = aioice.ice.get_host_addresses  # aioice's own lookup
BACKLOG_RATE = 2_500_000  # bytes/s to a viewer catching up with live: 20 Mbit/s

# For each camera profile (FFmpeg's names), the answer profiles to pass it through
# under, best first: its own, then a profile whose decoders take it too (H.264
# Annex A). High falls back to Main: Debian's Chromium offers no High, only Main
# and High 4:4:4, and its one software decoder plays High sent as Main but no
# frame at all under High 4:4:4 (both tried in tests/relay/test_browser.py).
# Level 3.1, as browsers offer: a software decoder does not hold a stream to it.
COMPATIBLE_PROFILES = {
    "Constrained Baseline": ("42e01f", "42001f", "4d001f", "64001f"),
    "Baseline": ("42001f",),
    "Main": ("4d001f", "64001f"),
    "High": ("64001f", "4d001f"),
}


def register_h264_profiles() -> None:
    """Let aiortc negotiate Main and High profile H.264, not only Constrained Baseline.

    Real cameras send Main or High; to pass their packets through, the answer must
    name that profile. aiortc keeps its codec list in one module-level table.
    """
    video = CODECS["video"]
    present = {c.parameters.get("profile-level-id") for c in video if c.name == "H264"}
    payload_type = max(c.payloadType or 0 for c in video) + 1
    for plid in ("4d001f", "64001f"):
        if plid in present:
            continue
        video.append(
            RTCRtpCodecParameters(
                mimeType="video/H264",
                clockRate=VIDEO_CLOCK,
                payloadType=payload_type,
                rtcpFeedback=[
                    RTCRtcpFeedback(type="nack"),
                    RTCRtcpFeedback(type="nack", parameter="pli"),
                    RTCRtcpFeedback(type="goog-remb"),
                ],
                parameters={
                    "level-asymmetry-allowed": "1",
                    "packetization-mode": "1",
                    "profile-level-id": plid,
                },
            )
        )
        video.append(
            RTCRtpCodecParameters(
                mimeType="video/rtx",
                clockRate=VIDEO_CLOCK,
                payloadType=payload_type + 1,
                parameters={"apt": payload_type},
            )
        )
        payload_type += 2


def answer_profile(camera_profile: str | None, offered: set[H264Profile]) -> str | None:
    """The profile-level-id to answer for a camera's H.264, or None: transcode it."""
    for plid in COMPATIBLE_PROFILES.get(camera_profile or "Constrained Baseline", ()):
        if parse_h264_profile_level_id(plid)[0] in offered:
            return plid
    return None


def h264_preferences(plid: str) -> list[RTCRtpCodecCapability]:
    """The H.264 codecs (and their RTX) of one profile, to answer with."""
    wanted = parse_h264_profile_level_id(plid)[0]
    codecs = RTCRtpSender.getCapabilities("video").codecs
    chosen = [
        c
        for c in codecs
        if c.name == "H264"
        and parse_h264_profile_level_id(str(c.parameters.get("profile-level-id")))[0] == wanted
    ]
    return chosen + [c for c in codecs if c.name == "rtx"]


def audio_preferences(codec: str) -> list[RTCRtpCodecCapability]:
    mime = {"pcm_alaw": "audio/PCMA", "pcm_mulaw": "audio/PCMU"}[codec]
    return [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType == mime]


def ice_servers(config: WebRtcConfig) -> list[RTCIceServer]:
    return [
        RTCIceServer(urls=s.urls, username=s.username, credential=s.credential)
        for s in config.ice_servers
    ]


def use_host_addresses(addresses: list[str]) -> None:
    """Offer exactly these ICE host candidates (a node behind NAT names its reachable
    address here), or, with none, those of every interface but loopback, as aioice
    does, looked up at most every HOST_ADDRESSES_TTL s instead of for every answer
    (a millisecond each)."""
    if addresses:
        chosen = list(addresses)

        def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
            return chosen

    else:
        found: dict[tuple[bool, bool], tuple[float, list[str]]] = {}

        def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
            now = time.monotonic()
            at, addresses = found.get((use_ipv4, use_ipv6), (-math.inf, []))
            if now - at > HOST_ADDRESSES_TTL:
                addresses = _interface_addresses(use_ipv4, use_ipv6)
                found[use_ipv4, use_ipv6] = now, addresses
            return list(addresses)

    aioice.ice.get_host_addresses = host_addresses


class _EvenFragments(H264Encoder):
    """aiortc's H.264 packetization, but a NAL unit too big for one packet is cut
    into fragments of the largest size and a shorter last one (aiortc evens them
    out to within a byte), so a frame's packets can go to the kernel as one run of
    equal segments (relay/gso.py)."""

    @staticmethod
    def _packetize_fu_a(data: bytes) -> list[bytes]:
        return even_fu_a(data, PACKET_MAX - 2)


def even_fu_a(nal: bytes, size: int) -> list[bytes]:
    """FU-A payloads (RFC 6184 5.8) of one NAL unit, `size` bytes of it in each but
    the last."""
    indicator = nal[0] & 0xE0 | 28
    kind = nal[0] & 0x1F
    body = memoryview(nal)[1:]
    last = (len(body) - 1) // size
    return [
        bytes((indicator, kind | (0x80 if i == 0 else 0) | (0x40 if i == last else 0)))
        + body[i * size : (i + 1) * size]
        for i in range(last + 1)
    ]


def rtp_payloads(packet: MediaPacket) -> list[bytes]:
    """The frame split into H.264 RTP payloads (FU-A, STAP-A), once per frame.

    Access unit delimiters are left out: RTP's timestamp and marker bit delimit
    frames, and each would be a packet of its own to every viewer (many cameras
    start every frame with one)."""
    payloads = packet.derived.get("h264-rtp")
    if payloads is None:
        nal_units = _EvenFragments._split_bitstream(packet.data)
        payloads = _EvenFragments._packetize(n for n in nal_units if n and n[0] & 0x1F != NAL_AUD)
        packet.derived["h264-rtp"] = payloads
    return payloads  # type: ignore[return-value]


def common_codecs(
    local_codecs: list[RTCRtpCodecParameters], remote_codecs: list[RTCRtpCodecParameters]
) -> list[RTCRtpCodecParameters]:
    """aiortc's find_common_codecs, with the same result, less its deep copies: a
    third of the time a node took to answer an offer (py-spy)."""
    common: list[RTCRtpCodecParameters] = []
    common_base: dict[int, RTCRtpCodecParameters] = {}
    for c in remote_codecs:
        if is_rtx(c):  # only for a base codec already accepted
            apt = c.parameters.get("apt")
            if (
                isinstance(apt, int)
                and apt in common_base
                and c.clockRate == common_base[apt].clockRate
            ):
                common.append(_copy_codec(c, c.payloadType, list(c.rtcpFeedback)))
            continue
        for codec in local_codecs:
            if aiortc.rtcpeerconnection.is_codec_compatible(codec, c):
                payload_type = (
                    c.payloadType
                    if c.payloadType in aiortc_rtp.DYNAMIC_PAYLOAD_TYPES
                    else codec.payloadType
                )
                feedback = [x for x in codec.rtcpFeedback if x in c.rtcpFeedback]
                copied = _copy_codec(codec, payload_type, feedback)
                common.append(copied)
                assert copied.payloadType is not None
                common_base[copied.payloadType] = copied
                break
    return common


def _copy_codec(
    codec: RTCRtpCodecParameters, payload_type: int | None, feedback: list[RTCRtcpFeedback]
) -> RTCRtpCodecParameters:
    """A copy of `codec` with this payload type and (a list of its own) feedback."""
    return RTCRtpCodecParameters(
        mimeType=codec.mimeType,
        clockRate=codec.clockRate,
        channels=codec.channels,
        payloadType=payload_type,
        rtcpFeedback=feedback,
        parameters=dict(codec.parameters),
    )


class _IdleBitrateEstimator:
    """Stands in for the bitrate estimator aiortc gives every video receiver: a
    viewer's transceiver only sends, and the real one costs a thousand objects
    (half a millisecond) per answer before it is ever used."""

    def __init__(self) -> None:
        self._real: Any = None

    def add(self, *args: Any, **kwargs: Any) -> Any:
        if self._real is None:
            self._real = RemoteBitrateEstimator()
        return self._real.add(*args, **kwargs)


class NodeCertificate(RTCCertificate):
    """One DTLS certificate for all of a node's peer connections, as a browser keeps
    one for many: aiortc would make a key and a certificate for each, and compute
    its fingerprints four times and an SSL context for each transport. Renewed a
    day after it was made (aiortc's are valid for 30 days)."""

    _shared: NodeCertificate | None = None

    def __init__(self, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
        super().__init__(key, cert)
        self._fingerprints = super().getFingerprints()
        self._contexts: dict[tuple[bytes, ...], SSL.Context] = {}

    @classmethod
    def generateCertificate(cls) -> NodeCertificate:
        shared = NodeCertificate._shared
        renew = datetime.datetime.now(datetime.UTC) + CERTIFICATE_RENEWAL
        if shared is None or shared.expires < renew:
            key = ec.generate_private_key(ec.SECP256R1())
            shared = NodeCertificate._shared = cls(key, generate_certificate(key))
        return shared

    def getFingerprints(self) -> list[RTCDtlsFingerprint]:
        return list(self._fingerprints)

    def _create_ssl_context(self, srtp_profiles: list[SRTPProtectionProfile]) -> SSL.Context:
        # OpenSSL shares a context among connections; none of them resumes a session.
        key = tuple(p.openssl_profile for p in srtp_profiles)
        context = self._contexts.get(key)
        if context is None:
            context = self._contexts[key] = super()._create_ssl_context(srtp_profiles)
            context.set_session_cache_mode(SSL.SESS_CACHE_OFF)
        return context


def answer_faster() -> None:
    """Spare aiortc's set-up work an answer does not need (see common_codecs,
    _IdleBitrateEstimator and NodeCertificate): fifty viewers offering at once wait
    for all of it."""
    aiortc.rtcpeerconnection.find_common_codecs = common_codecs
    aiortc.rtcrtpreceiver.RemoteBitrateEstimator = _IdleBitrateEstimator  # type: ignore[attr-defined,assignment]
    aiortc.rtcpeerconnection.RTCCertificate = NodeCertificate  # type: ignore[attr-defined]


def ticks(packet: MediaPacket, clock: int) -> int | None:
    """The packet's time in `clock` units (integer maths: this runs per viewer)."""
    if packet.pts is None:
        return None
    base = packet.time_base
    return packet.pts * base.numerator * clock // base.denominator


def use_udp_ports(port_range: str | None) -> None:
    """Bind every ICE host candidate within FIRST-LAST, so a firewall opens one range.

    aioice binds each candidate to port 0 with the loop it gets from its own
    `asyncio` module; a stand-in module hands it a loop whose datagram endpoints
    are bound within the range. Everything else goes to the real asyncio.
    """
    if port_range is None:
        aioice.ice.asyncio = asyncio  # type: ignore[attr-defined]
        return
    first, last = (int(p) for p in port_range.split("-"))
    aioice.ice.asyncio = _PortRangeAsyncio(range(first, last + 1))  # type: ignore[assignment,attr-defined]


class _PortRangeAsyncio:
    def __init__(self, ports: range) -> None:
        self.ports = ports

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    def get_running_loop(self) -> Any:
        return _PortRangeLoop(asyncio.get_running_loop(), self.ports)


class _PortRangeLoop:
    def __init__(self, loop: asyncio.AbstractEventLoop, ports: range) -> None:
        self._loop = loop
        self._ports = ports

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loop, name)

    async def create_datagram_endpoint(
        self, factory: Any, local_addr: Any = None, **kwargs: Any
    ) -> Any:
        if local_addr is None or local_addr[1] != 0:
            return await self._loop.create_datagram_endpoint(factory, local_addr, **kwargs)
        start = random.randrange(len(self._ports))
        for i in range(len(self._ports)):
            port = self._ports[(start + i) % len(self._ports)]
            try:
                return await self._loop.create_datagram_endpoint(
                    factory, (local_addr[0], port), **kwargs
                )
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
        raise OSError(errno.EADDRINUSE, f"every UDP port of {self._ports} is in use")


class Retimer:
    """Maps a source's timestamps to a continuous, strictly rising RTP clock."""

    def __init__(self, clock: int, frame_ticks: int) -> None:
        self.clock = clock
        self.frame_ticks = frame_ticks
        self._offset = 0
        self._last: int | None = None

    def __call__(self, packet: MediaPacket) -> int:
        raw, last = ticks(packet, self.clock), self._last
        if last is None:
            out = raw or 0
        elif raw is None:
            out = last + self.frame_ticks
        else:
            out = raw + self._offset
            if out <= last or out - last > MAX_JUMP_SECONDS * self.clock:
                self._offset = last + self.frame_ticks - raw  # a new clock: carry on
                out = raw + self._offset
        self._last = out
        return out

    def set(self, value: int) -> int:
        self._last, self._offset = value, 0
        return value


class CatchUp:
    """One new viewer's catching up with live, paced.

    A GOP is up to a megabyte; sent in one burst, it overflows the viewer's socket
    buffer. So after its keyframe, which goes at once (the first picture), a viewer
    is sent at most `rate` bytes/s until it has caught up: the rest of the GOP,
    then what came live meanwhile, which would otherwise follow in one burst.
    """

    def __init__(self, rate: float = BACKLOG_RATE) -> None:
        self.rate = rate
        self._next: float | None = None  # loop time this viewer may send again

    async def wait(self, packet: MediaPacket) -> None:
        now = asyncio.get_running_loop().time()
        due = now if self._next is None else max(now, self._next)
        self._next = due + len(packet.data) / self.rate
        if due > now:
            await asyncio.sleep(due - now)


class PacketTrack(MediaStreamTrack):
    """Hands a viewer's RtpWriter the frames of one subscription, as RTP payloads.

    The cached GOP a video viewer starts with gets consecutive ticks ending at the
    newest cached packet's own time: the browser decodes it at once and shows the
    live picture, instead of playing the GOP out and lagging behind by its age.
    Until the viewer has caught up with live (its queue empty once), it is paced
    (CatchUp).
    """

    def __init__(
        self, kind: str, subscription: Subscription, clock: int, catch_up: float = BACKLOG_RATE
    ) -> None:
        super().__init__()
        self.kind = kind
        self._sub = subscription
        self._retime = Retimer(clock, clock // 25 if kind == "video" else clock // 50)
        backlog = subscription.take_backlog()
        self._squeeze_end = ticks(backlog[-1], clock) if backlog else None
        self._backlog = backlog if self._squeeze_end is not None else []  # until sent
        self._cached = 0  # of it sent
        self._catching_up = bool(self._backlog)
        self._pace = CatchUp(catch_up)

    async def recv(self) -> RtpFrame:  # type: ignore[override]
        try:
            packet = await self._sub.get()
        except SubscriptionClosed:
            self.stop()
            raise MediaStreamError from None
        backlog = self._backlog
        if backlog and packet is backlog[self._cached] and self._squeeze_end is not None:
            self._cached += 1
            ts = self._retime.set(self._squeeze_end - (len(backlog) - self._cached))
            if self._cached == len(backlog):
                self._backlog = []
        else:
            # Live; if the backlog is not all sent, the queue overflowed while
            # catching up and dropped the rest of it.
            self._backlog = []
            ts = self._retime(packet)
        if self._catching_up:
            self._catching_up = self._sub.pending() > 0
            await self._pace.wait(packet)
        payloads = rtp_payloads(packet) if self.kind == "video" else [packet.data]
        return RtpFrame(payloads, ts)

    def stop(self) -> None:
        super().stop()
        self._sub.close()
