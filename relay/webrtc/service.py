"""The node's WebRTC viewing sessions: an offer in, an answer and a session out.

The HTTP side (WHEP) is relay/web/whep.py; this knows nothing of HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from dataclasses import dataclass, field

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.exceptions import InvalidStateError, OperationError
from aiortc.rtcrtpparameters import RTCRtpCodecCapability
from aiortc.sdp import H264Profile, SessionDescription, parse_h264_profile_level_id

from ingest.state import SourceState
from relay.access.accounts import User
from relay.access.audit import AuditLog
from relay.config import CameraConfig, Config
from relay.media.hub import Channel, FanOut, Hub, Subscription
from relay.media.transcode import Transcoder, needs_transcode
from relay.refusal import Refused
from relay.webrtc import patches
from relay.webrtc.codecs import answer_profile, audio_preferences, h264_preferences
from relay.webrtc.ice import IceSettings, ice_servers
from relay.webrtc.rtp_writer import RtpWriter
from relay.webrtc.track import PacketTrack

logger = logging.getLogger(__name__)

MAX_OFFER_BYTES = 64 * 1024
RETRY_OFFLINE = 5
RETRY_FULL = 10
AUDIO_PASSTHROUGH = ("pcm_alaw", "pcm_mulaw")


@dataclass(eq=False)
class WhepSession:
    id: str
    camera_id: str
    stream: str
    peer: str
    user: str
    credential: str  # the session or token hash the viewer came with
    pc: RTCPeerConnection
    subscriptions: list[Subscription] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    _closed: asyncio.Future[None] | None = None

    async def close(self) -> None:
        """Idempotent; concurrent callers wait for the same close."""
        if self._closed is None:
            self._closed = asyncio.get_running_loop().create_future()
            try:
                for sub in self.subscriptions:
                    sub.close()
                await self.pc.close()
            finally:
                self._closed.set_result(None)
        await asyncio.shield(self._closed)


class WhepService:
    """The node's WebRTC viewing sessions and the shared transcoders they use."""

    def __init__(self, config: Config, hub: Hub, audit: AuditLog) -> None:
        self.config = config
        self.hub = hub
        self.audit = audit
        self.sessions: dict[str, WhepSession] = {}
        self.transcoders: dict[str, Transcoder] = {}
        self._tasks: set[asyncio.Task[bool]] = set()
        self.ice = IceSettings.of(config.webrtc)
        patches.install()

    def viewers(self, camera_id: str) -> int:
        return sum(s.camera_id == camera_id for s in self.sessions.values())

    def check_limits(self, camera: CameraConfig) -> None:
        limits = self.config.webrtc
        if len(self.sessions) >= limits.max_viewers:
            raise Refused(503, "this node serves its maximum of viewers", RETRY_FULL)
        if self.viewers(camera.id) >= limits.max_viewers_per_camera:
            raise Refused(503, "this camera has its maximum of viewers", RETRY_FULL)

    async def open(
        self, channel: Channel, offer: str, peer: str, user: User, local: str | None = None
    ) -> tuple[WhepSession, str]:
        """`local`: the address the offer came in on, offered as a host candidate
        too (a browser on the node's own machine, a loopback-only network)."""
        parsed, offered = _parse_offer(offer)
        state, error = channel.reported_state()
        if state in (SourceState.OFFLINE, SourceState.STALLED):
            reason = f"camera is {state}" + (f": {error}" if error else "")
            raise Refused(409, reason, RETRY_OFFLINE)
        video = channel.subscribe(frozenset(("video",)))
        subs = [video]
        try:
            try:
                async with asyncio.timeout(channel.camera.connect_timeout + 1):
                    await channel.wait_online()
            except TimeoutError:
                raise Refused(409, "camera is not sending", RETRY_OFFLINE) from None
            feed, plid = self._video_feed(channel, offered)
            if feed is not channel:
                video.close()
                video = feed.subscribe(frozenset(("video",)))
                subs = [video]
            pc = RTCPeerConnection(RTCConfiguration(iceServers=ice_servers(self.config.webrtc)))
            session = WhepSession(
                secrets.token_urlsafe(16),
                channel.camera.id,
                channel.stream,
                peer,
                user.name,
                user.credential,
                pc,
                subs,
            )
            with self.ice.applied([local] if local else []):
                answer = await self._negotiate(
                    session, offer=offer, video=video, plid=plid, parsed=parsed, channel=channel
                )
        except BaseException:
            for sub in subs:
                sub.close()
            raise
        self.sessions[session.id] = session
        self._watch(session)
        await self.audit.record(
            "view.start",
            user=user.name,
            address=peer,
            camera=channel.camera.id,
            site=channel.camera.site,
            session=session.id[:8],
            stream=channel.stream,
        )
        logger.info(
            "viewer %s: camera %s/%s from %s",
            session.id[:8],
            session.camera_id,
            session.stream,
            peer,
        )
        return session, answer

    def _video_feed(self, channel: Channel, offered: set[H264Profile]) -> tuple[FanOut, str]:
        """The camera's own packets under a profile the viewer offered, or else the
        channel's shared transcode to Constrained Baseline."""
        info = channel.source.info
        assert info is not None  # known once the camera sends
        plid = None if needs_transcode(channel) else answer_profile(info.profile, offered)
        if plid is not None:
            return channel, plid
        plid = answer_profile("Constrained Baseline", offered)
        assert plid is not None  # every H.264 decoder takes Constrained Baseline
        return self._transcoder(channel), plid

    async def _negotiate(
        self,
        session: WhepSession,
        *,
        offer: str,
        video: Subscription,
        plid: str,
        parsed: SessionDescription,
        channel: Channel,
    ) -> str:
        pc = session.pc
        try:
            # Transceivers made before the offer is applied keep their codec choice.
            _send(pc, PacketTrack("video", video, 90000), h264_preferences(plid))
            audio_codec = channel.source.info.audio_codec if channel.source.info else None
            if audio_codec in AUDIO_PASSTHROUGH and any(m.kind == "audio" for m in parsed.media):
                assert audio_codec is not None
                audio = channel.subscribe(frozenset(("audio",)))
                session.subscriptions.append(audio)
                _send(pc, PacketTrack("audio", audio, 8000), audio_preferences(audio_codec))
            elif audio_codec:
                logger.info(
                    "camera %s: its %s audio is left out: browsers take G.711 or Opus,"
                    " and audio is not transcoded",
                    channel.name,
                    audio_codec,
                )
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
        except (ValueError, OperationError, InvalidStateError) as exc:
            await pc.close()
            raise Refused(400, f"cannot answer this offer: {exc}") from None
        except BaseException:
            await pc.close()
            raise
        return pc.localDescription.sdp

    def _transcoder(self, channel: Channel) -> Transcoder:
        transcoder = self.transcoders.get(channel.name)
        if transcoder is None:
            transcoder = self.transcoders[channel.name] = Transcoder(channel)
        return transcoder

    def _watch(self, session: WhepSession) -> None:
        pc = session.pc

        @pc.on("connectionstatechange")
        def _changed() -> None:
            if pc.connectionState in ("failed", "closed"):
                self.end_later(session.id)

        def _deadline() -> None:
            if session.id in self.sessions and pc.connectionState != "connected":
                logger.info("viewer %s: never connected", session.id[:8])
                self.end_later(session.id)

        asyncio.get_running_loop().call_later(self.config.webrtc.connect_timeout, _deadline)

    def end_later(self, session_id: str) -> None:
        if session_id in self.sessions:
            task = asyncio.create_task(self.end(session_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def end(self, session_id: str) -> bool:
        session = self.sessions.pop(session_id, None)
        if session is None:
            return False
        await session.close()
        await self.audit.record(
            "view.end",
            user=session.user,
            address=session.peer,
            camera=session.camera_id,
            session=session.id[:8],
            seconds=round(time.time() - session.started),
        )
        logger.info("viewer %s: ended after %.0f s", session_id[:8], time.time() - session.started)
        return True

    async def end_credential(self, credential: str) -> None:
        """End the sessions opened with a revoked token or ended login."""
        for session in list(self.sessions.values()):
            if session.credential == credential:
                await self.end(session.id)

    async def end_users_not_in(self, names: set[str]) -> None:
        """After a config reload: the sessions of removed users end."""
        for session in list(self.sessions.values()):
            if session.user not in names:
                await self.end(session.id)

    async def end_all(self) -> None:
        async with asyncio.TaskGroup() as group:
            for session_id in list(self.sessions):
                group.create_task(self.end(session_id))

    async def close(self) -> None:
        await self.end_all()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for transcoder in self.transcoders.values():
            await transcoder.close()


def _send(pc: RTCPeerConnection, track: PacketTrack, codecs: list[RTCRtpCodecCapability]) -> None:
    """A send-only transceiver for the track, answering with these codecs, its RTP
    written by an RtpWriter."""
    transceiver = pc.addTransceiver(track, "sendonly")
    transceiver.setCodecPreferences(codecs)
    RtpWriter.install(transceiver.sender)


def _parse_offer(offer: str) -> tuple[SessionDescription, set[H264Profile]]:
    """The offer and the H.264 profiles it takes, or a 400 saying what is wrong."""
    try:
        parsed = SessionDescription.parse(offer)
    except (ValueError, IndexError, KeyError, AssertionError) as exc:
        raise Refused(400, f"unparsable SDP offer ({type(exc).__name__})") from None
    if not any(m.kind == "video" for m in parsed.media):
        raise Refused(400, "the offer has no video")
    offered = _offered_h264_profiles(parsed)
    if not offered:
        raise Refused(400, "the offer has no H.264 video (packetization-mode 1)")
    return parsed, offered


def _offered_h264_profiles(parsed: SessionDescription) -> set[H264Profile]:
    profiles: set[H264Profile] = set()
    for media in parsed.media:
        for codec in media.rtp.codecs if media.kind == "video" else []:
            if codec.name != "H264" or str(codec.parameters.get("packetization-mode")) != "1":
                continue
            with contextlib.suppress(ValueError):
                plid = str(codec.parameters.get("profile-level-id", "42e01f"))
                profiles.add(parse_h264_profile_level_id(plid)[0])
    return profiles
