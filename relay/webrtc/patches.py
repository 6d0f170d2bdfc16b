"""Every patch to aiortc and aioice, installed once per process by `install()`.

Each says why, and was checked against the versions in CHECKED; pyproject.toml
pins their upper bounds, and tests/relay/webrtc/test_patches.py fails on any
other. (RtpWriter takes over a sender's private send loop, per sender, where it
is made: relay/webrtc/rtp_writer.py; relay/webrtc/srtp.py calls libsrtp through
pylibsrtp's private binding, and falls back to its public protect without it.)

- aiortc's codec table: Main and High profile H.264, to pass cameras through.
- find_common_codecs, the receiver's bitrate estimator, the DTLS certificate:
  spare an answer work it does not need (fifty viewers offering at once wait).
- aioice's StunProtocol: a socket's datagrams of one loop turn in one send; a
  datagram of RTP or RTCP straight on, not through the STUN parser, and a
  viewer's RTCP to its writer's reader (relay/webrtc/rtcp_in.py).
- aioice's candidate gathering: a passive ICE-TCP candidate beside each UDP host
  candidate when the app has `webrtc.tcp_port`.
- aioice's host addresses and its asyncio module: the app's ICE settings (host
  addresses, UDP ports, the one shared UDP port of relay/webrtc/udp_mux.py), read
  per answer from relay.webrtc.ice.CURRENT.
- RTCPeerConnection.close: also for a connection an odd offer left half made.
- aiortc's SRTP sessions: relay/webrtc/srtp.py's KeyedSession, which keeps an
  outbound master key (AES-GCM, AES-CM) for the compiled path to protect with.
"""

from __future__ import annotations

import asyncio
import datetime
import importlib.metadata
from typing import Any

import aioice.ice
import aiortc.rtcdtlstransport
import aiortc.rtcpeerconnection
import aiortc.rtcrtpreceiver
from aioice.candidate import Candidate, candidate_foundation, candidate_priority
from aiortc import rtp as aiortc_rtp
from aiortc.codecs import CODECS, is_rtx
from aiortc.rate import RemoteBitrateEstimator
from aiortc.rtcdtlstransport import (
    RTCCertificate,
    RTCDtlsFingerprint,
    SRTPProtectionProfile,
    generate_certificate,
)
from aiortc.rtcrtpparameters import RTCRtcpFeedback, RTCRtpCodecParameters
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from OpenSSL import SSL

from relay.webrtc import ice
from relay.webrtc.codecs import VIDEO_CLOCK
from relay.webrtc.srtp import KeyedSession
from relay.webrtc.udp_batch import batch_for
from relay.webrtc.udp_mux import MuxLoop

TCP_LOCAL_PREFERENCE = 1000  # below UDP host candidates (65535): TCP only where UDP fails
CHECKED = {
    "aiortc": ("1.16.",),
    "aioice": ("0.13.",),
    "pylibsrtp": ("1.0.",),
}  # version prefixes checked
CERTIFICATE_RENEWAL = datetime.timedelta(days=29)  # left when a node's is renewed
_interface_addresses = aioice.ice.get_host_addresses  # aioice's own lookup
_installed = False


def install() -> None:
    """Idempotent: every patch once per process; per-app settings travel in
    relay.webrtc.ice.CURRENT, never in the patches themselves."""
    global _installed  # noqa: PLW0603 - the process-wide once; the patches are process-wide
    if _installed:
        return
    _installed = True
    register_h264_profiles()
    answer_faster()
    batch_datagrams()
    media_first()
    install_ice()
    close_half_made()
    aiortc.rtcdtlstransport.Session = KeyedSession  # type: ignore[attr-defined]


def close_half_made() -> None:
    """aiortc's close() stops every transceiver's transports, and raises on a
    transceiver an offer never gave one (setRemoteDescription failed halfway),
    with the other transports, and their UDP sockets, still open. Such
    transceivers are stopped and dropped first; close() then frees the rest."""
    original = aiortc.rtcpeerconnection.RTCPeerConnection.close

    async def close(self: aiortc.rtcpeerconnection.RTCPeerConnection) -> None:
        transceivers = self._RTCPeerConnection__transceivers  # type: ignore[attr-defined]
        for transceiver in list(transceivers):
            if transceiver.receiver.transport is None or transceiver.sender.transport is None:
                await transceiver.stop()
                transceivers.remove(transceiver)
        await original(self)

    aiortc.rtcpeerconnection.RTCPeerConnection.close = close  # type: ignore[method-assign]


def install_ice() -> None:
    """Only the ICE settings hooks (a benchmark's baseline wants aiortc as it is, but
    its candidates on loopback). Idempotent."""
    aioice.ice.get_host_addresses = _host_addresses
    if not getattr(aioice.ice.Connection.get_component_candidates, "with_tcp", False):
        _gather_udp = aioice.ice.Connection.get_component_candidates

        async def with_tcp(
            self: aioice.ice.Connection,
            component: int,
            addresses: list[str],
            timeout: int = 5,  # noqa: ASYNC109 - aioice's signature
        ) -> list[Candidate]:
            candidates = await _gather_udp(self, component, addresses, timeout)
            return candidates + await _tcp_candidates(self, component, candidates)

        with_tcp.with_tcp = True  # type: ignore[attr-defined]
        aioice.ice.Connection.get_component_candidates = with_tcp  # type: ignore[method-assign]
    if not isinstance(aioice.ice.asyncio, _IceAsyncio):  # type: ignore[attr-defined]
        aioice.ice.asyncio = _IceAsyncio()  # type: ignore[assignment,attr-defined]


def unchecked_versions() -> dict[str, str]:
    """The installed versions of the patched libraries these patches were not
    checked against."""
    found = {name: importlib.metadata.version(name) for name in CHECKED}
    return {n: v for n, v in found.items() if not v.startswith(CHECKED[n])}


def _host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    current = ice.CURRENT.get()
    if current is None:  # outside an answer (a client's own offer): as aioice does
        return _interface_addresses(use_ipv4, use_ipv6)
    settings, extra = current
    return settings.addresses(use_ipv4, use_ipv6, _interface_addresses, extra)


async def _tcp_candidates(
    connection: aioice.ice.Connection, component: int, udp: list[Candidate]
) -> list[Candidate]:
    """A passive ICE-TCP host candidate beside each UDP host candidate, when the
    current app has a TCP port (relay/webrtc/ice_tcp.py)."""
    current = ice.CURRENT.get()
    server = current[0].tcp if current is not None else None
    if server is None:
        return []
    found = []
    for host in [c.host for c in udp if c.type == "host"]:
        protocol = aioice.ice.StunProtocol(connection)
        await server.candidate(protocol, host)
        protocol.local_candidate = Candidate(
            foundation=candidate_foundation("host", "tcp", host),
            component=component,
            transport="tcp",
            priority=candidate_priority(component, "host", local_pref=TCP_LOCAL_PREFERENCE),
            host=host,
            port=server.port,
            type="host",
            tcptype="passive",
        )
        connection._protocols.append(protocol)
        found.append(protocol.local_candidate)
    return found


class _IceAsyncio:
    """aioice binds each candidate to port 0 with the loop it gets from its own
    `asyncio` module: this stand-in hands it a loop whose datagram endpoints are
    bound within the current app's range. Everything else is the real asyncio."""

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    def get_running_loop(self) -> Any:
        current = ice.CURRENT.get()
        loop = asyncio.get_running_loop()
        if current is not None and current[0].mux is not None:
            return MuxLoop(loop, current[0].mux)
        if current is None or current[0].ports is None:
            return loop
        return ice.PortRangeLoop(loop, current[0].ports)


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


def media_first() -> None:
    """aioice parses every datagram it gets as STUN and hands on what fails, by an
    exception: a datagram whose first byte no STUN message has (128-191: RTP and
    RTCP, RFC 7983) goes on at once, to its connection's `rtcp_in`
    (relay/webrtc/rtcp_in.py) where a viewer's writer gave it one."""
    protocol = aioice.ice.StunProtocol
    original = protocol.datagram_received

    def datagram_received(self: aioice.ice.StunProtocol, data: bytes, addr: Any) -> None:
        if not data or not 127 < data[0] < 192:
            original(self, data, addr)
            return
        connection = self.receiver
        rtcp_in = connection.__dict__.get("rtcp_in")
        if rtcp_in is None or not rtcp_in(data):
            connection.data_received(data, self.local_candidate.component)

    protocol.datagram_received = datagram_received  # type: ignore[method-assign,assignment]


def batch_datagrams() -> None:
    """Send what aioice's sockets are given through a DatagramBatch each (ICE checks
    and consent, sent apart with send_stun, stay as they are)."""
    protocol = aioice.ice.StunProtocol
    lost = protocol.connection_lost

    async def send_data(self: aioice.ice.StunProtocol, data: bytes, addr: Any) -> None:
        batch_for(self).sendto(data, addr)

    def connection_lost(self: aioice.ice.StunProtocol, exc: Exception | None) -> None:
        batch = self.__dict__.get("batch")
        if batch is not None:
            batch.close()
        lost(self, exc)

    protocol.send_data = send_data  # type: ignore[method-assign]
    protocol.connection_lost = connection_lost  # type: ignore[method-assign]
