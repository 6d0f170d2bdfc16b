"""The node's WebRTC viewing sessions: an offer in, an answer and a session out.

The HTTP side (WHEP) is relay/web/whep.py; this knows nothing of HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
import time
from collections.abc import Coroutine
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.rtcrtpparameters import RTCRtpCodecCapability
from aiortc.sdp import H264Profile, SessionDescription

from ingest.state import SourceState
from relay.access.accounts import User
from relay.access.audit import AuditLog
from relay.config import CameraConfig, Config, WebRtcConfig
from relay.media.changes import CameraChanges
from relay.media.hub import Channel, FanOut, Hub, Subscription
from relay.media.transcode import Transcoder, needs_transcode
from relay.refusal import Refused
from relay.webrtc import patches
from relay.webrtc.codecs import answer_profile, audio_preferences, h264_preferences
from relay.webrtc.ice import IceSettings, ice_servers
from relay.webrtc.offers import apply_offer, parse_offer
from relay.webrtc.places import Opening, Places
from relay.webrtc.rtp_writer import RtpCounts, RtpWriter
from relay.webrtc.session import WhepSession
from relay.webrtc.track import PacketTrack

logger = logging.getLogger(__name__)

MAX_OFFER_BYTES = 64 * 1024
RETRY_OFFLINE = 5
AUDIO_PASSTHROUGH = ("pcm_alaw", "pcm_mulaw")


class WhepService:
    """The node's WebRTC viewing sessions and the shared transcoders they use."""

    def __init__(self, config: Config, hub: Hub, audit: AuditLog) -> None:
        self.config = config
        self.hub = hub
        self.audit = audit
        self.sessions: dict[str, WhepSession] = {}
        self.transcoders: dict[str, Transcoder] = {}
        self.rtp: dict[str, RtpCounts] = {}  # per camera, for the metrics
        self._dropped: dict[str, int] = {}  # per camera, by viewers that ended
        self.places = Places(config.webrtc, self.sessions, self._evict)
        self._tasks: set[asyncio.Task[Any]] = set()
        self.ice = IceSettings.of(config.webrtc)
        patches.install()

    def viewers(self, camera_id: str) -> int:
        """Sessions of the camera, those still being opened included."""
        return self.places.viewers(camera_id)

    def viewer_dropped(self) -> dict[str, int]:
        """Per camera: packets dropped for slow viewers, those that ended included."""
        found = dict(self._dropped)
        for session in self.sessions.values():
            lost = sum(sub.dropped for sub in session.subscriptions)
            found[session.camera_id] = found.get(session.camera_id, 0) + lost
        return found

    def reserve(
        self, camera: CameraConfig, user: User
    ) -> contextlib.AbstractContextManager[Opening]:
        """A place for a new viewer of `camera`, held until `open` makes the session
        (or it fails); Refused when the limits allow none."""
        return self.places.reserve(camera.id, user)

    def _evict(self, victim: WhepSession, user: User) -> None:
        del self.sessions[victim.id]
        self._spawn(self._finish(victim, f"place given to a higher role ({user.role})"))

    async def open(
        self,
        channel: Channel,
        offer: str,
        peer: str,
        user: User,
        *,
        local: str | None = None,
        place: Opening | None = None,
    ) -> tuple[WhepSession, str]:
        """`local`: the address the offer came in on, offered as a host candidate
        too (a browser on the node's own machine, a loopback-only network);
        `place`: what `reserve` held for it, given up as the session takes it."""
        parsed, offered = parse_offer(offer)
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
            servers = ice_servers(self.config, self.config.node.id)
            pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))
            session = WhepSession(
                secrets.token_urlsafe(16),
                channel.camera.id,
                channel.stream,
                peer,
                user.name,
                user.credential,
                pc,
                subs,
                rank=user.rank,
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
        if place is not None:
            self.places.opening.discard(place)
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
            counts = self.rtp.setdefault(channel.camera.id, RtpCounts())
            _send(pc, PacketTrack("video", video, 90000), h264_preferences(plid), counts)
            audio_codec = channel.source.info.audio_codec if channel.source.info else None
            if audio_codec in AUDIO_PASSTHROUGH and any(m.kind == "audio" for m in parsed.media):
                assert audio_codec is not None
                audio = channel.subscribe(frozenset(("audio",)))
                session.subscriptions.append(audio)
                track = PacketTrack("audio", audio, 8000)
                _send(pc, track, audio_preferences(audio_codec), counts)
            elif audio_codec:
                logger.info(
                    "camera %s: its %s audio is left out: browsers take G.711 or Opus,"
                    " and audio is not transcoded",
                    channel.name,
                    audio_codec,
                )
            await apply_offer(pc, offer)
        except BaseException:
            await pc.close()  # its sockets and transports with it: nothing is left
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
            if pc.connectionState == "connected":
                session.connected = True
            elif pc.connectionState in ("failed", "closed"):
                self.end_later(session.id)

        def _deadline() -> None:
            if session.id in self.sessions and pc.connectionState != "connected":
                logger.info(
                    "viewer %s: camera %s: never connected", session.id[:8], session.camera_id
                )
                self.end_later(session.id, "never connected")

        asyncio.get_running_loop().call_later(self.config.webrtc.connect_timeout, _deadline)

    def end_later(self, session_id: str, reason: str | None = None) -> None:
        if session_id in self.sessions:
            self._spawn(self.end(session_id, reason))

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def end(self, session_id: str, reason: str | None = None) -> bool:
        session = self.sessions.pop(session_id, None)
        if session is None:
            return False
        await self._finish(session, reason)
        return True

    async def _finish(self, session: WhepSession, reason: str | None) -> None:
        """Close a session taken out of `sessions`, and audit its end."""
        lost = sum(sub.dropped for sub in session.subscriptions)
        self._dropped[session.camera_id] = self._dropped.get(session.camera_id, 0) + lost
        await session.close()
        await self.audit.record(
            "view.end",
            user=session.user,
            address=session.peer,
            camera=session.camera_id,
            session=session.id[:8],
            seconds=round(time.time() - session.started),
            **({"reason": reason} if reason else {}),
        )
        logger.info(
            "viewer %s: camera %s: ended after %.0f s%s",
            session.id[:8],
            session.camera_id,
            time.time() - session.started,
            f" ({reason})" if reason else "",
        )

    async def end_credentials(self, credentials: frozenset[str]) -> None:
        """End, all at once, the sessions opened with these credentials (a login
        ended or expired, a token revoked, a user removed or changed)."""
        chosen = [s.id for s in self.sessions.values() if s.credential in credentials]
        ended = await asyncio.gather(
            *(self.end(i, "access ended") for i in chosen), return_exceptions=True
        )
        for failed in ended:
            if isinstance(failed, Exception):  # the others end all the same
                logger.error("a session did not end cleanly", exc_info=failed)

    async def apply(self, config: Config, changes: CameraChanges) -> None:
        """Take a reloaded config: its limits and ICE settings apply to the next
        viewer; the viewers of removed and restarted cameras (their channels are
        closed) end (those of removed users end with their credentials)."""
        self.config = config
        self.places.limits = config.webrtc
        # The running settings keep what they hold open (a shared port, where there
        # is one: that waits for a restart); only the addresses and range change.
        fresh = IceSettings.of(
            WebRtcConfig(
                udp_ports=config.webrtc.udp_ports, host_addresses=config.webrtc.host_addresses
            )
        )
        self.ice = dataclasses.replace(
            self.ice, host_addresses=fresh.host_addresses, ports=fresh.ports
        )
        for name in [n for n in self.transcoders if n.split("/")[0] in changes.ended]:
            await self.transcoders.pop(name).close()
        for cam_id in changes.removed:
            self.rtp.pop(cam_id, None)
            self._dropped.pop(cam_id, None)
        for session in list(self.sessions.values()):
            if session.camera_id in changes.ended:
                logger.info(
                    "viewer %s: camera %s changed, session ended", session.id[:8], session.camera_id
                )
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
        self.ice.close()


def _send(
    pc: RTCPeerConnection,
    track: PacketTrack,
    codecs: list[RTCRtpCodecCapability],
    counts: RtpCounts,
) -> None:
    """A send-only transceiver for the track, answering with these codecs, its RTP
    written by an RtpWriter that adds to the camera's `counts`."""
    transceiver = pc.addTransceiver(track, "sendonly")
    transceiver.setCodecPreferences(codecs)
    RtpWriter.install(transceiver.sender, counts)
