"""What each WHEP viewer costs a node: villagewatch against aiortc's own idiom.

One simulated camera (camsim: GStreamer x264, 1280x720 (--size) at 25 fps, a keyframe every
4 s) is served to 1, 10 and 50 WHEP viewers by each system in turn, each system a
server process of its own on 127.0.0.1:

  villagewatch  `python -m relay run` with the camera in its YAML config
  one-port      the same, with `webrtc.udp_port`: every viewer's media on one socket
  python-send   villagewatch with its send path in Python (VILLAGEWATCH_SRTP=in-place),
                not in relay/webrtc/_sendpath.c: what the compiled path saves
  libsrtp       villagewatch with every packet protected by libsrtp
                (VILLAGEWATCH_SRTP_CIPHER=libsrtp), not relay/webrtc/_srtp_protect.c
  baseline      aiortc's documented idiom, in this file (`_baseline` sub-command):
                MediaPlayer(url, decode=False, options={"rtsp_transport": "tcp"}),
                MediaRelay().subscribe(player.video, buffered=False) per viewer,
                H.264 preferred, behind a minimal WHEP endpoint (POST offer -> 201)

Viewers are `relay.webrtc.client.WhepClient`s, up to 10 per viewer process (25
with --light; `_viewers` sub-command), reporting JSON lines on stdout. Each system
first runs with the camera ingested and no viewer (its idle CPU); then, per viewer
count, the viewers join together, each timing its first frame from its offer (its POST)
and when it had caught up with live ("live after": its last frame that came more
than LATE s later, against its RTP time, than its least late one); once every
viewer has a first frame (or timed out) and --settle s more, the server
process's CPU is measured over a steady window, with the frames every viewer got
in it.
Each viewer has made its offer and opened its keep-alive HTTP connection to the
server before all are told to connect, as a wall page has (it was loaded from
the node); otherwise ten viewers in one process would time each other's set-up.

    .venv/bin/python bench/whep_viewers.py [--viewers 1,10,50] [--seconds 10]
        [--systems villagewatch,one-port,baseline] [--settle 10] [--ramp 0]
        [--size 1280x720] [--decode | --light] [--apart] [--py-spy DIR]

The camera's bitrate is x264enc's default target (2048 kbit/s; MountSpec has no
bitrate setting); what actually arrives (about 1.4 Mbit/s for this test pattern) is
measured and printed. villagewatch wants a login on every route: its config gets a
user with a Bearer token, which the viewers send (the baseline ignores it).

By default the viewers do not decode pictures: aiortc has no switch for a receiver
that skips decoding, so each viewer process swaps aiortc's H.264 decoder for one
that counts the frames aiortc's jitter buffer reassembled, starting, as a decoder
must, at the first IDR with its SPS and PPS. Everything else on the receive path
(ICE, DTLS, SRTP, RTCP, NACK, depacketization) runs as usual. `--decode` decodes
every frame for real (at 720p that costs the viewers more CPU than this machine has
to spare for 50 of them).

Even without decoding, aiortc's receive path (SRTP, parsing, jitter buffer, NACK,
depacketization, all in Python per packet) takes the whole machine at 100 viewers
of a 720p camera, whose viewers then lose frames at their own end. `--light`
viewers connect as the others do (WHEP, ICE, DTLS; aioice keeps answering consent
checks), then take each video packet before aiortc's DTLS transport gets it and
read only its RTP header, which SRTP leaves in the clear (LightViewer): sequence
numbers for loss, the marker bit for frames, RTP time for "live after". They send
no RTCP (no NACK, receiver report or PLI), which a node's session does not need,
and cannot tell a keyframe (the payload stays encrypted), so their first frame is
the first whole one. A light viewer costs its process about 10 us per packet (100
viewers: 16 % of a core for the lot), so a process takes 25: at 100 viewers, 10
per process joined no faster and cost more; far more would queue every join
(ICE and DTLS in Python) of a process behind each other in one event loop.

On loopback the kernel delivers each datagram to its viewer's socket, and wakes the
viewer, inside the sender's sendmsg(), and charges that work to the server: the
viewers' receive path counts as the node's. `--apart` (root, 2 cores or more) runs
the whole benchmark in a network namespace of its own (its own loopback, nothing of
the machine's changed) whose loopback steers received packets to the other cores
(RPS), with each server on core 0 and the viewers on the others (the camera on any:
pinned, x264 would cut its frames into fewer slices, so fewer packets): a server
then pays for its sends and not for its viewers' receiving, as with viewers on
other machines.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import secrets
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import aiohttp
import aiortc.rtcdtlstransport
import av
import common
import psutil
from aiohttp import web
from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.codecs import is_rtx
from aiortc.contrib.media import MediaPlayer, MediaRelay
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.sdp import SessionDescription
from pylibsrtp import Policy

from camsim import SERVER_SCRIPT, CameraSimulator, MountSpec
from ingest.tasks import cancel_and_wait
from relay.access.passwords import hash_token
from relay.webrtc import patches
from relay.webrtc.client import WhepClient, WhepClientError
from relay.webrtc.ice import IceSettings

SYSTEMS = ("villagewatch", "one-port", "python-send", "libsrtp", "baseline")
OURS = ("villagewatch", "one-port", "python-send", "libsrtp")  # villagewatch, configured otherwise
SIZE, FPS, KEYFRAME_INTERVAL = "1280x720", 25, 4.0
VIEWERS_PER_PROCESS = 10
LIGHT_VIEWERS_PER_PROCESS = 25  # --light: see the module's docstring
MAX_VIEWERS = 500
CAMERA_ID = "cam"
CONNECT_TIMEOUT = 20.0  # offer to first frame, per viewer
READY_TIMEOUT = 30.0  # server up and the camera sending
ANSWER_TIMEOUT = 30.0  # a viewer process answering a command
PING_INTERVAL = 0.1  # s, between the pings of a server while viewers join
SATURATED = 0.95  # of every core: the figures measured then are suspect
LATE = 0.2  # s later than a viewer's steadiest frame: not yet caught up with live
CATCH_UP = 10.0  # s after the last first frame: every viewer is live again
JOIN_SPY_SECONDS = 4  # recorded from the offers on, with --py-spy
SETTLE = 2.0  # after the server is up, and after a run's viewers have left
NAL_IDR, NAL_SPS, NAL_PPS = 5, 7, 8
# villagewatch wants a login on every route: the bench is a config user with a
# Bearer token (the baseline ignores it); the viewer processes get it in their env.
TOKEN = secrets.token_urlsafe(24)
TOKEN_VARIABLE = "WHEP_BENCH_TOKEN"
SRTP_VARIABLE = "WHEP_BENCH_SRTP"  # --srtp, to the viewer processes
APART_VARIABLE = "WHEP_BENCH_APART"  # set inside --apart's namespaces
SERVER_CORE = 0  # --apart: the servers' core
SRTP_OFFERS = {  # what the viewers' DTLS offers, by --srtp
    "aiortc": "AES-GCM first, as aiortc offers",
    "chromium": "AES_CM_128_HMAC_SHA1_80 only, as Chromium negotiates",
}
AUTHORIZATION = common.bearer(TOKEN)
Marks = list[dict[str, Any]]  # one "mark" answer per viewer process: counts at one moment


# --- the baseline server (a sub-command: its own process) --------------------


class Baseline:
    """aiortc's documented idiom behind WHEP: one player, one relay proxy per viewer."""

    def __init__(self, camera_url: str) -> None:
        patches.install_ice()
        IceSettings([common.HOST]).use_here()
        self.player = MediaPlayer(camera_url, decode=False, options={"rtsp_transport": "tcp"})
        assert self.player.video is not None
        self.video: MediaStreamTrack = self.player.video
        self.relay = MediaRelay()
        self.sessions: dict[str, tuple[RTCPeerConnection, MediaStreamTrack]] = {}
        self.frames = 0
        self.bytes = 0

    async def drain(self) -> None:
        """Keeps the camera ingested with no viewer, as a node's always-on camera is,
        and counts what arrives (the camera's real bitrate)."""
        track = self.relay.subscribe(self.video)
        with contextlib.suppress(MediaStreamError):
            while True:
                packet = await track.recv()
                self.frames += 1
                self.bytes += packet.size if isinstance(packet, av.Packet) else 0

    async def close(self, session_id: str) -> bool:
        session = self.sessions.pop(session_id, None)
        if session is None:
            return False
        pc, track = session
        await pc.close()
        track.stop()  # unregisters the proxy from the relay
        return True

    async def offer(self, request: web.Request) -> web.Response:
        sdp = await request.text()
        session_id = secrets.token_urlsafe(12)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        track = self.relay.subscribe(self.video, buffered=False)
        self.sessions[session_id] = (pc, track)

        @pc.on("connectionstatechange")
        async def changed() -> None:
            if pc.connectionState in ("failed", "closed"):
                await self.close(session_id)

        codecs = RTCRtpSender.getCapabilities("video").codecs
        pc.addTransceiver(track, direction="sendonly").setCodecPreferences(
            [c for c in codecs if c.name == "H264"] + [c for c in codecs if c.name == "rtx"]
        )
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        return web.Response(
            status=201,
            text=pc.localDescription.sdp,
            content_type="application/sdp",
            headers={"Location": f"/whep/sessions/{session_id}"},
        )

    async def delete(self, request: web.Request) -> web.Response:
        found = await self.close(request.match_info["session_id"])
        return web.Response(status=200 if found else 404)

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"sessions": len(self.sessions), "frames": self.frames, "bytes": self.bytes}
        )

    async def serve(self, port: int) -> None:
        app = web.Application()
        app.router.add_post(f"/whep/{CAMERA_ID}", self.offer)
        app.router.add_delete("/whep/sessions/{session_id}", self.delete)
        app.router.add_get("/stats", self.stats)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        drainer = asyncio.create_task(self.drain())
        try:
            await web.TCPSite(runner, common.HOST, port).start()
            await stop.wait()
        finally:
            for session_id in list(self.sessions):
                await self.close(session_id)
            await cancel_and_wait(drainer)
            self.video.stop()
            await runner.cleanup()


# --- the viewers (a sub-command: up to per_process() in one process) -------------


def nal_types(data: bytes) -> set[int]:
    """The NAL unit types of an Annex-B access unit."""
    types, at = set(), data.find(b"\x00\x00\x01")
    while at != -1 and at + 3 < len(data):
        types.add(data[at + 3] & 0x1F)
        at = data.find(b"\x00\x00\x01", at + 3)
    return types


class CountingDecoder:
    """Stands in for aiortc's H264Decoder: hands on each reassembled frame, undecoded,
    from the first IDR preceded by (or carrying) its SPS and PPS, as a decoder would."""

    def __init__(self) -> None:
        self.parameter_sets: set[int] = set()
        self.started = False

    def decode(self, encoded_frame: Any) -> list[Any]:
        if not self.started:
            types = nal_types(encoded_frame.data)
            self.parameter_sets |= types & {NAL_SPS, NAL_PPS}
            if NAL_IDR not in types or len(self.parameter_sets) < 2:
                return []
            self.started = True
        return [encoded_frame]


def count_without_decoding() -> None:
    import aiortc.rtcrtpreceiver
    from aiortc.codecs import get_decoder as original

    def get_decoder(codec: Any) -> Any:
        if codec.mimeType.lower() == "video/h264":
            return CountingDecoder()
        return original(codec)

    aiortc.rtcrtpreceiver.get_decoder = get_decoder  # type: ignore[attr-defined]


class Arrivals:
    """When a viewer's frames came, against their RTP time: how late each was."""

    def __init__(self, client: WhepClient) -> None:
        self.client = client
        self.lags: list[tuple[float, float]] = []  # (arrival, arrival - RTP time), s
        self._first: int | None = None
        client.on_frame = self.add

    def add(self, frame: Any) -> None:
        stamp = getattr(frame, "timestamp", None)
        if stamp is None:
            stamp = frame.pts  # a decoded frame
        self.at(stamp, time.monotonic())

    def at(self, stamp: int, now: float) -> None:
        """A frame of RTP time `stamp` came at `now`."""
        if self._first is None:
            self._first = stamp
        ticks = (stamp - self._first) % 2**32  # RTP time wraps
        self.lags.append((now, now - ticks / 90000))

    def live_after(self) -> float | None:
        """Seconds from the offer to the last frame that came more than LATE s later
        than the viewer's steadiest frame (the least late): when it had caught up
        with live. Cached frames are timed as the newest cached one was taken, so
        this is how long the catching up took, not the age of the GOP."""
        if not self.lags:
            return None
        steady = min(lag for _, lag in self.lags)
        late = [at for at, lag in self.lags if lag > steady + LATE]
        last = max(late) if late else self.lags[0][0]
        return last - self.client.watch.offer_sent


class Viewer:
    """A WhepClient and what the bench reads of it: every packet through aiortc's
    receive path (the frames its jitter buffer reassembles, see CountingDecoder)."""

    def __init__(self, client: WhepClient) -> None:
        self.client = client
        self.arrivals = Arrivals(client)

    async def first_frame(self) -> None:
        await self.client.first_frame()

    def rtp_counts(self) -> tuple[int, int]:
        """Packets received and lost (before any retransmission) of the video.

        Read from the receiver's own per-SSRC statistics, the figures its
        RTCInboundRtpStreamStats carry: aiortc's getStats() gives every SSRC of a
        receiver the same report id, so once a retransmission arrives the RTX stream's
        entry replaces the media stream's.
        """
        received = lost = 0
        for receiver in self.client.pc.getReceivers():
            rtx: dict[int, int] = getattr(receiver, "_RTCRtpReceiver__rtx_ssrc", {})
            streams: dict[int, Any] = getattr(receiver, "_RTCRtpReceiver__remote_streams", {})
            for ssrc, stream in streams.items():
                if ssrc not in rtx:
                    received += stream.packets_received
                    lost += stream.packets_lost
        return received, lost


class LightViewer(Viewer):
    """A viewer that reads only the RTP header of its video, which SRTP leaves in the clear.

    aiortc still makes the connection (ICE, DTLS, and aioice answering the server's
    consent checks), but every datagram of the connection that looks like SRTP is
    taken where aioice hands it over (Connection.data_received) instead of queued
    for the DTLS transport, which would decrypt it and parse, route, reassemble and
    count it in Python. DTLS records and SRTCP (the server's sender reports) still
    go aiortc's way. So no RTCP goes back: no receiver report (the node needs none,
    its sessions live on ICE consent), no NACK (so nothing is retransmitted; an RTX
    packet would be ignored), no PLI.

    Lost packets are the sequence numbers (16-bit, unwrapped) skipped over and not
    come since; a repeated one is not counted again. A frame is the packets up to
    a marker bit, and counts if none of them was missing (one that comes late does
    not mend it). The first frame is the first such frame: its payload is
    encrypted, so whether it is a keyframe is unknown.
    """

    def __init__(self, client: WhepClient) -> None:
        super().__init__(client)
        self.received = 0  # video packets, each sequence number once
        self._highest: int | None = None  # the newest sequence number, unwrapped
        self._missing: set[int] = set()  # skipped over, not come since (unwrapped)
        self._whole = True  # no packet of the frame under way missing so far
        self._frame_starts = True  # the newest packet ended a frame
        self._first = asyncio.Event()
        self._rtx = rtx_payload_types(client.pc.localDescription.sdp)  # answers keep them
        transport = client.pc.getTransceivers()[0].receiver.transport
        connection = transport.transport._connection
        self._pass_on = connection.data_received
        # aioice's protocols look the method up per datagram: this is the DTLS
        # transport's one way in, before its queue.
        connection.data_received = self._datagram  # type: ignore[method-assign]

    async def first_frame(self) -> None:
        await self._first.wait()

    def rtp_counts(self) -> tuple[int, int]:
        return self.received, len(self._missing)

    def _datagram(self, data: bytes, component: int) -> None:
        # RTP and RTCP share a first byte of 128-191; RTCP packet types are 192-208.
        if len(data) < RTP_HEADER.size or not 127 < data[0] < 192 or 191 < data[1] < 209:
            self._pass_on(data, component)
        elif data[1] & 0x7F not in self._rtx:
            sequence, stamp = RTP_HEADER.unpack_from(data)
            self._packet(sequence, stamp, data[1] > 127)

    def _packet(self, sequence: int, stamp: int, marker: bool) -> None:
        highest = self._highest
        if highest is None:
            highest, step = sequence - 1, 1
        else:
            step = (sequence - highest) & 0xFFFF
            if not 0 < step < 0x8000:  # late or repeated
                self._behind(highest - (-step & 0xFFFF))
                return
            if step > 1:
                self._missing.update(range(highest + 1, highest + step))
        self._highest = highest + step
        self.received += 1
        self._whole = step == 1 and (self._frame_starts or self._whole)
        self._frame_starts = marker
        if marker and self._whole:
            now = time.monotonic()
            watch = self.client.watch
            if watch.first_frame is None:
                watch.first_frame = now - watch.offer_sent
                self._first.set()
            watch.frames += 1
            self.arrivals.at(stamp, now)

    def _behind(self, sequence: int) -> None:
        if sequence in self._missing:
            self._missing.discard(sequence)
            self.received += 1


RTP_HEADER = struct.Struct("!2xHI")  # sequence number, timestamp


def rtx_payload_types(sdp: str) -> set[int]:
    """The RTX payload types of a description's first media section."""
    codecs = SessionDescription.parse(sdp).media[0].rtp.codecs
    return {c.payloadType for c in codecs if is_rtx(c) and c.payloadType is not None}


async def viewers(url: str, delays: Sequence[float], mode: str) -> None:
    patches.install()
    if os.environ.get(SRTP_VARIABLE) == "chromium":  # the DTLS server, it chooses
        profiles = aiortc.rtcdtlstransport.SRTP_PROFILES
        cm = Policy.SRTP_PROFILE_AES128_CM_SHA1_80
        profiles[:] = [p for p in profiles if p.libsrtp_profile == cm]
    IceSettings([common.HOST]).use_here()
    if mode == "count":
        count_without_decoding()
    async with aiohttp.ClientSession() as http:
        # Offers are made (ICE candidates gathered) and each viewer's HTTP
        # connection opened before the viewers are told to connect: what is timed
        # from the POST on is the server's work, not the client's own set-up, of
        # which ten viewers in one process would otherwise wait for each other's.
        clients = [WhepClient(url, token=os.environ.get(TOKEN_VARIABLE)) for _ in delays]
        await asyncio.gather(*(c.prepare() for c in clients))
        kind = LightViewer if mode == "light" else Viewer
        views = [kind(c) for c in clients]
        await asyncio.gather(*(_open_connection(http, url) for _ in clients))
        common.say({"event": "loaded"})
        if await common.read_command() == "connect":
            await _join(http, views, delays)
    common.say({"event": "closed"})


async def _open_connection(http: aiohttp.ClientSession, url: str) -> None:
    """One keep-alive connection to the server, left in the session's pool."""
    async with http.options(url) as response:
        await response.read()


async def _join(
    http: aiohttp.ClientSession,
    views: list[Viewer],
    delays: Sequence[float],
) -> None:
    clients = [v.client for v in views]
    # Seconds from each offer to its answer and to ICE + DTLS connected.
    answered: dict[WhepClient, float] = {}
    connected: dict[WhepClient, float] = {}

    def watch_state(client: WhepClient) -> None:
        @client.pc.on("connectionstatechange")
        def changed() -> None:
            if client.pc.connectionState == "connected" and client not in connected:
                connected[client] = time.monotonic() - client.watch.offer_sent

    async def join(view: Viewer, delay: float, http: aiohttp.ClientSession) -> str | None:
        await asyncio.sleep(delay)
        client = view.client
        watch_state(client)
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await client.connect(http)
                answered[client] = time.monotonic() - client.watch.offer_sent
                await view.first_frame()
        except TimeoutError:
            return "no first frame" if client.session_url else "no answer"
        except (WhepClientError, aiohttp.ClientError, ValueError) as exc:
            return f"{type(exc).__name__}: {exc}"
        return None

    try:
        errors = await asyncio.gather(
            *(join(v, d, http) for v, d in zip(views, delays, strict=True))
        )
        common.say(
            {
                "event": "connected",
                "ttff": [c.watch.first_frame for c in clients],
                "answered": [answered.get(c) for c in clients],
                "ice_dtls": [connected.get(c) for c in clients],
                "errors": [e for e in errors if e],
            }
        )
        while await common.read_command() == "mark":
            now = time.monotonic()
            counts = [v.rtp_counts() for v in views]
            common.say(
                {
                    "event": "mark",
                    "time": now,
                    "frames": [c.watch.frames for c in clients],
                    "received": [r for r, _ in counts],
                    "lost": [lost for _, lost in counts],
                    "live_after": [v.arrivals.live_after() for v in views],
                }
            )
    finally:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(15):
                await asyncio.gather(*(c.close(http) for c in clients), return_exceptions=True)


# --- the orchestrator ----------------------------------------------------------


class Server:
    """One system's server process: started, watched, asked for its state, stopped."""

    def __init__(self, system: str, camera_url: str, workdir: Path) -> None:
        self.system = system
        self.port = common.free_port()
        self.base = f"http://{common.HOST}:{self.port}"
        self.whep_url = f"{self.base}/whep/{CAMERA_ID}"
        self.log = workdir / f"{system}.log"
        if system in OURS:
            config = workdir / "villagewatch.yaml"
            config.write_text(
                json.dumps(  # JSON is YAML
                    {
                        "node": {"id": "bench", "name": "bench", "data_dir": str(workdir)},
                        "sites": [{"id": "site", "name": "site"}],
                        "users": [
                            {
                                "name": "bench",
                                "role": "admin",
                                "sites": ["site"],
                                "token_hash": hash_token(TOKEN),
                            }
                        ],
                        "cameras": [
                            {"id": CAMERA_ID, "name": CAMERA_ID, "site": "site", "main": camera_url}
                        ],
                        "webrtc": {
                            "host_addresses": [common.HOST],
                            **({"udp_port": common.free_port()} if system == "one-port" else {}),
                            "max_viewers": 1000,
                            "max_viewers_per_camera": 1000,
                            # every viewer of the benchmark comes with one token
                            "pending_per_credential": 1000,
                            "pending_per_credential_camera": 1000,
                        },
                    }
                )
            )
            self.args = common.relay_run(config, self.port)
        else:
            self.args = [sys.executable, __file__, "_baseline", camera_url, str(self.port)]
        self.proc: asyncio.subprocess.Process | None = None
        self.ps: psutil.Process | None = None

    async def start(self, http: aiohttp.ClientSession) -> None:
        with self.log.open("wb") as log:
            env = {**os.environ}
            if self.system == "python-send":
                env["VILLAGEWATCH_SRTP"] = "in-place"
            elif self.system == "libsrtp":
                env["VILLAGEWATCH_SRTP_CIPHER"] = "libsrtp"
            pinned = ["taskset", "-c", str(SERVER_CORE)] if os.environ.get(APART_VARIABLE) else []
            self.proc = await asyncio.create_subprocess_exec(
                *pinned,
                *self.args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
            )
        self.ps = psutil.Process(self.proc.pid)
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.returncode is not None:
                break
            with contextlib.suppress(aiohttp.ClientError, OSError):
                state = await self.state(http)
                if state["frames_seen"]:
                    return
            await asyncio.sleep(0.25)
        tail = common.log_tail(self.log, 30)
        raise RuntimeError(f"{self.system} did not come up; its log:\n{tail}")

    async def state(self, http: aiohttp.ClientSession) -> dict[str, Any]:
        """sessions, frames_seen, and what the server knows of the camera."""
        if self.system in OURS:
            async with http.get(
                f"{self.base}/api/cameras/{CAMERA_ID}", headers=AUTHORIZATION
            ) as response:
                response.raise_for_status()
                camera = await response.json()
            main = camera["streams"]["main"]
            stats = main["stats"]
            return {
                "sessions": main["viewers"],
                "frames_seen": camera["state"] == "online" and stats["fps"] > 0,
                "bytes": stats["bytes"],
                "info": main["info"],
            }
        async with http.get(f"{self.base}/stats") as response:
            stats = await response.json()
        return {"sessions": stats["sessions"], "frames_seen": stats["frames"] > FPS, **stats}

    async def wait_sessions(self, http: aiohttp.ClientSession, count: int) -> bool:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if (await self.state(http))["sessions"] == count:
                return True
            await asyncio.sleep(0.25)
        return False

    async def ping_while(self, http: aiohttp.ClientSession, pings: list[float]) -> None:
        """Until cancelled: how long the server takes to answer a trivial GET, every
        PING_INTERVAL (its event loop's lag, plus this script's own), into pings."""
        path = "/api/health" if self.system in OURS else "/stats"
        while True:
            start = time.perf_counter()
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with http.get(self.base + path) as response:
                    await response.read()
                pings.append(time.perf_counter() - start)
            await asyncio.sleep(PING_INTERVAL)

    def transcoding(self) -> bool:
        """villagewatch logs when it starts a (shared) transcoder."""
        return "transcoding to H.264" in self.log.read_text(errors="replace")

    async def stop(self) -> None:
        if self.proc is not None:
            await common.stop_process(self.proc, 15)


class ViewerProcess(common.Child):
    """One `_viewers` child: its clients' first frames, frame counts and CPU."""

    async def stop(self, within: float = 5.0) -> None:
        """Asks it to close its clients, then stop_process without SIGTERM."""
        if self.proc.returncode is None:
            self.send("close")
            with contextlib.suppress(TimeoutError, RuntimeError):
                await self.expect("closed", 20)
            await common.stop_process(self.proc, within, terminate=False)


async def start_viewers(
    url: str, delays: Sequence[float], mode: str, srtp: str, stderr: Path
) -> ViewerProcess:
    """A `_viewers` child with len(delays) clients of `mode` (see VIEWER_MODES) and
    `srtp` (SRTP_OFFERS); its stderr into `stderr`."""
    args = [sys.executable, __file__, "_viewers", url, ",".join(f"{d:.3f}" for d in delays)]
    args.append(mode)
    env = {**os.environ, TOKEN_VARIABLE: TOKEN, SRTP_VARIABLE: srtp}
    return await ViewerProcess.start(args, "viewer process", stderr, env=env)


@dataclass
class Result:
    system: str
    viewers: int
    node_cpu: float  # % of one core
    node_system: float  # % of one core, in the kernel (system time)
    idle_cpu: float
    ttff: list[float] = field(default_factory=list)  # s, of the viewers that got a frame
    live_after: list[float] = field(default_factory=list)  # s from the offer: caught up
    # (first frame, answer, connected) per viewer that got a frame, in s from its offer
    phases: list[tuple[float, float, float]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    frames: int = 0
    expected_frames: float = 0.0
    missing_frames: float = 0.0  # sum over viewers of max(0, expected - got)
    rtp_received: int = 0  # in the window
    rtp_lost: int = 0
    join_received: int = 0  # from the offer to the window
    join_lost: int = 0
    rtp_rate: float = 0.0  # packets/s the viewers got in the window, all together
    transcode: str = "-"
    viewers_cpu: float = 0.0
    camsim_cpu: float = 0.0
    others_cpu: float = 0.0
    machine_cpu: float = 0.0
    camera: str = ""  # what the server saw of the camera, for the notes
    windows: int = 1  # measured, of which this is the quietest
    pings: list[float] = field(default_factory=list)  # s, HTTP round trips while joining

    @property
    def connected(self) -> int:
        return len(self.ttff)


@dataclass
class Window:
    """CPU seconds and wall time of one measured window."""

    wall: float
    node: float
    node_system: float  # of which in the kernel
    viewers: float
    camsim: float
    me: float
    machine: float

    def pct(self, seconds: float) -> float:
        return common.percent(seconds, self.wall)

    @property
    def others(self) -> float:
        return self.pct(
            common.others(self.machine, [self.node, self.viewers, self.camsim, self.me])
        )


def camsim_process() -> psutil.Process | None:
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if str(SERVER_SCRIPT) in child.cmdline():
                return child
    return None


async def measure_window(
    node: psutil.Process | None,
    viewer_procs: Sequence[psutil.Process],
    seconds: float,
    during: Callable[[], None] | None = None,
) -> Window:
    camsim, me = camsim_process(), psutil.Process()

    def sample() -> tuple[float, ...]:
        return (
            time.perf_counter(),
            common.cpu_seconds(node),
            common.cpu_seconds(node, system_only=True),
            sum(common.cpu_seconds(p) for p in viewer_procs),
            common.cpu_seconds(camsim),
            common.cpu_seconds(me),
            common.machine_cpu(),
        )

    before = sample()
    if during is not None:
        during()
    await asyncio.sleep(seconds)
    after = sample()
    return Window(*(b - a for a, b in zip(before, after, strict=True)))


def villagewatch_camera(state: dict[str, Any], wall: float, bytes0: int) -> str:
    info = state.get("info") or {}
    kbps = (state["bytes"] - bytes0) * 8 / wall / 1000
    return (
        f"{info.get('codec')} {info.get('profile')} {info.get('width')}x{info.get('height')}"
        f" {info.get('fps')} fps, b-frames {info.get('has_b_frames')}, {kbps:.0f} kbit/s"
    )


async def measure_idle(
    server: Server, http: aiohttp.ClientSession, args: argparse.Namespace
) -> Result:
    """The quietest of up to 1 + --retries windows (see quiet_enough)."""
    tries: list[tuple[Window, dict[str, Any], dict[str, Any]]] = []
    for _ in range(1 + args.retries):
        before = await server.state(http)
        window = await measure_window(server.ps, [], args.seconds)
        tries.append((window, before, await server.state(http)))
        if quiet_enough(window, args):
            break
    window, before, after = min(tries, key=lambda t: t[0].others)
    if server.system in OURS:
        camera = villagewatch_camera(after, window.wall, before["bytes"])
    else:
        frames = after["frames"] - before["frames"]
        kbps = (after["bytes"] - before["bytes"]) * 8 / window.wall / 1000
        camera = f"{frames / window.wall:.1f} fps, {kbps:.0f} kbit/s"
    return Result(
        system=server.system,
        viewers=0,
        node_cpu=window.pct(window.node),
        node_system=window.pct(window.node_system),
        idle_cpu=window.pct(window.node),
        camsim_cpu=window.pct(window.camsim),
        viewers_cpu=window.pct(window.me),
        others_cpu=window.others,
        machine_cpu=window.pct(window.machine),
        camera=camera,
        windows=len(tries),
    )


def quiet_enough(window: Window, args: argparse.Namespace) -> bool:
    """Other people's processes share this machine: a window in which they used more
    than --max-others % of a core is taken again, up to --retries times."""
    return bool(window.others <= args.max_others)


async def mark(procs: Sequence[ViewerProcess]) -> Marks:
    for proc in procs:
        proc.send("mark")
    return [await proc.expect("mark", ANSWER_TIMEOUT) for proc in procs]


class PySpy:
    """`py-spy record` of a server process over one window (or the first
    JOIN_SPY_SECONDS of the viewers joining), if --py-spy asks for it."""

    def __init__(
        self, args: argparse.Namespace, server: Server, name: str, seconds: float | None = None
    ) -> None:
        self.out = Path(args.py_spy) / f"{name}.txt" if args.py_spy else None
        self.pid = server.proc.pid if server.proc is not None else None
        self.seconds = args.seconds if seconds is None else seconds
        self.proc: psutil.Popen | None = None

    def start(self) -> None:
        if self.out is None or self.pid is None:
            return
        self.proc = common.py_spy_record(self.pid, self.out, math.ceil(self.seconds))

    def stop(self) -> None:
        if self.proc is not None:
            common.wait_or_kill(self.proc, self.seconds + 10)
            self.proc = None


async def windows(
    server: Server, procs: Sequence[ViewerProcess], args: argparse.Namespace, name: str
) -> list[tuple[Window, Marks, Marks]]:
    """Up to 1 + --retries windows (see quiet_enough), each between two marks."""
    tries: list[tuple[Window, Marks, Marks]] = []
    for _ in range(1 + args.retries):
        first = await mark(procs)
        spy = PySpy(args, server, f"{name}-{len(tries) + 1}")
        window = await measure_window(server.ps, [p.ps for p in procs], args.seconds, spy.start)
        tries.append((window, first, await mark(procs)))
        spy.stop()
        if quiet_enough(window, args):
            break
    return tries


async def measure_viewers(
    server: Server,
    *,
    http: aiohttp.ClientSession,
    count: int,
    idle: Result,
    args: argparse.Namespace,
    workdir: Path,
) -> Result:
    procs: list[ViewerProcess] = []
    index = 0
    for n in common.split_evenly(count, per_process(args)):
        delays = [(index + i) * args.ramp / count for i in range(n)]
        stderr = workdir / f"viewers-{server.system}-{count}-{len(procs)}.log"
        mode = viewer_mode(args)
        procs.append(await start_viewers(server.whep_url, delays, mode, args.srtp, stderr))
        index += n
    try:
        for proc in procs:
            await proc.expect("loaded", ANSWER_TIMEOUT)
        pings: list[float] = []
        pinger = asyncio.create_task(server.ping_while(http, pings))
        spy = PySpy(args, server, f"{server.system}-{count}-join", seconds=JOIN_SPY_SECONDS)
        spy.start()
        for proc in procs:
            proc.send("connect")
        try:
            connected = [
                await proc.expect("connected", CONNECT_TIMEOUT + args.ramp + 10) for proc in procs
            ]
        finally:
            await cancel_and_wait(pinger)
            spy.stop()
        await asyncio.sleep(args.settle)
        tries = await windows(server, procs, args, f"{server.system}-{count}")
        state = await server.state(http)
    finally:
        await asyncio.gather(*(p.stop() for p in procs))
    joined = tries[0][1]  # the first mark: everything from the offers to the first window
    window, first, last = min(tries, key=lambda t: t[0].others)

    result = Result(
        system=server.system,
        viewers=count,
        node_cpu=window.pct(window.node),
        node_system=window.pct(window.node_system),
        idle_cpu=idle.node_cpu,
        viewers_cpu=window.pct(window.viewers + window.me),
        camsim_cpu=window.pct(window.camsim),
        others_cpu=window.others,
        machine_cpu=window.pct(window.machine),
        windows=len(tries),
        pings=pings,
    )
    for hello, j, a, b in zip(connected, joined, first, last, strict=True):
        result.ttff += [t for t in hello["ttff"] if t is not None]
        result.phases += [
            (t, answer or 0.0, ice or 0.0)
            for t, answer, ice in zip(
                hello["ttff"], hello["answered"], hello["ice_dtls"], strict=True
            )
            if t is not None
        ]
        result.errors += hello["errors"]
        span = b["time"] - a["time"]
        for f0, f1 in zip(a["frames"], b["frames"], strict=True):
            result.frames += f1 - f0
            result.expected_frames += FPS * span
            result.missing_frames += max(0.0, FPS * span - (f1 - f0))
        result.rtp_received += sum(b["received"]) - sum(a["received"])
        result.rtp_lost += sum(b["lost"]) - sum(a["lost"])
        result.rtp_rate += (sum(b["received"]) - sum(a["received"])) / span
        result.join_received += sum(j["received"])
        result.live_after += [t for t in j["live_after"] if t is not None]
        result.join_lost += sum(j["lost"])
    if server.system in OURS:
        info = state.get("info") or {}
        passthrough = (
            info.get("codec") == "h264"
            and not info.get("has_b_frames")
            and not server.transcoding()
        )
        result.transcode = "none: passthrough" if passthrough else "shared transcoder"
    else:
        result.transcode = "none: decode=False"
    return result


async def run_system(
    system: str, camera_url: str, args: argparse.Namespace, workdir: Path
) -> list[Result]:
    server = Server(system, camera_url, workdir)
    results: list[Result] = []
    async with aiohttp.ClientSession() as http:
        try:
            await server.start(http)
            await asyncio.sleep(SETTLE)
            # The node's own consumers of the stream (its recorder) count as its
            # viewers too: what is left after each row is measured against them.
            own = (await server.state(http))["sessions"]
            idle = await measure_idle(server, http, args)
            results.append(idle)
            report(idle)
            for count in args.viewers:
                result = await measure_viewers(
                    server, http=http, count=count, idle=idle, args=args, workdir=workdir
                )
                result.camera = idle.camera
                results.append(result)
                report(result)
                if not await server.wait_sessions(http, own):
                    print(f"  {system}: sessions left over after {count} viewers", file=sys.stderr)
                await asyncio.sleep(SETTLE)
        finally:
            await server.stop()
    return results


def report(result: Result) -> None:
    print(
        f"  done: {' '.join(row(result)[:8])} ({result.windows} windows)",
        file=sys.stderr,
        flush=True,
    )


HEADER = (
    "system",
    "viewers",
    "node CPU %",
    "of which sys %",
    "CPU per viewer %",
    "RTP pkt/s per viewer",
    "node us per pkt",
    "TTFF p50 ms",
    "TTFF p95 ms",
    "live after p50 / p95 ms",
    "p95 viewer: answer / connected ms",
    "joining: server ping p95 / max ms",
    "frames lost %",
    "RTP lost % join / window",
    "all connected",
    "server transcode",
    "viewers CPU %",
    "camsim %",
    "others %",
    "machine %",
)


def loss(lost: int, received: int) -> str:
    return f"{100 * lost / (lost + received):.2f}" if lost + received else "-"


def row(r: Result) -> tuple[str, ...]:
    if r.viewers == 0:
        per, p50, p95, lost, rtp, connected = "-", "-", "-", "-", "-", "(idle)"
        rate = cost = parts = ping = live = "-"
    else:
        per = f"{(r.node_cpu - r.idle_cpu) / r.viewers:.2f}"
        rate = f"{r.rtp_rate / r.viewers:.0f}"
        cost = f"{(r.node_cpu - r.idle_cpu) * 1e4 / r.rtp_rate:.0f}" if r.rtp_rate else "-"
        p50 = f"{common.percentile(r.ttff, 50) * 1000:.0f}" if r.ttff else "-"
        p95 = f"{common.percentile(r.ttff, 95) * 1000:.0f}" if r.ttff else "-"
        live = "-"
        if r.live_after:
            live = "{:.0f} / {:.0f}".format(
                *(common.percentile(r.live_after, p) * 1000 for p in (50, 95))
            )
        parts = "-"
        if r.phases:
            _, answer, ice = common.percentile(r.phases, 95)
            parts = f"{answer * 1000:.0f} / {ice * 1000:.0f}"
        ping = "-"
        if r.pings:
            ping = f"{common.percentile(r.pings, 95) * 1000:.0f} / {max(r.pings) * 1000:.0f}"
        lost = f"{100 * r.missing_frames / r.expected_frames:.1f}" if r.expected_frames else "-"
        rtp = f"{loss(r.join_lost, r.join_received)} / {loss(r.rtp_lost, r.rtp_received)}"
        connected = "yes" if r.connected == r.viewers else f"no ({r.connected}/{r.viewers})"
    return (
        r.system,
        str(r.viewers),
        f"{r.node_cpu:.1f}",
        f"{r.node_system:.1f}",
        per,
        rate,
        cost,
        p50,
        p95,
        live,
        parts,
        ping,
        lost,
        rtp,
        connected,
        r.transcode,
        f"{r.viewers_cpu:.0f}",
        f"{r.camsim_cpu:.0f}",
        common.others_cell(r.others_cpu),
        f"{r.machine_cpu:.0f}",
    )


async def orchestrate(args: argparse.Namespace) -> list[Result]:
    width, height = args.size
    mount = MountSpec(
        name=CAMERA_ID, width=width, height=height, fps=FPS, keyframe_interval=KEYFRAME_INTERVAL
    )
    results: list[Result] = []
    with (
        tempfile.TemporaryDirectory(prefix="whep-bench-") as tmp,
        CameraSimulator([mount]) as sim,
    ):
        if os.environ.get(APART_VARIABLE):  # the viewers, made from here, off the servers' core
            os.sched_setaffinity(0, viewer_cores())
        for system in args.systems:
            results += await run_system(system, sim.url(CAMERA_ID), args, Path(tmp))
    return results


VIEWER_MODES = {  # what the viewers do with the video, for the header
    "count": "count frames without decoding",
    "decode": "decode",
    "light": "read only RTP headers (--light)",
}
FIRST_FRAME = {  # what a viewer's first frame is, per mode
    "count": "an IDR with SPS/PPS, reassembled by aiortc",
    "decode": "an IDR with SPS/PPS, decoded by aiortc",
    "light": "--light: the first packets up to a marker bit,\nwith none missing; SRTP"
    " hides the payload, so not known to be an IDR: villagewatch starts\na viewer at a"
    " keyframe, the baseline need not",
}
AIORTC_COUNTS = (
    "\nRTP lost % = the clients' packetsLost / (packetsReceived + packetsLost) of the"
    " video SSRC\n(before retransmission):"
)
LIGHT_COUNTS = (
    "\n--light: a frame is the packets up to a marker bit, received if none of them was"
    " missing;\nlight viewers send no RTCP (no NACK, so nothing is retransmitted; no receiver"
    " report:\nthe node needs none, its sessions live on ICE consent)."
    "\nRTP lost % = video packets missing from the sequence numbers / (received + missing),"
    "\na repeated packet counted once:"
)


def viewer_mode(args: argparse.Namespace) -> str:
    """What the viewers do with the video: "decode", "light" or "count" (the default)."""
    return "decode" if args.decode else "light" if args.light else "count"


def per_process(args: argparse.Namespace) -> int:
    return LIGHT_VIEWERS_PER_PROCESS if args.light else VIEWERS_PER_PROCESS


def _size(text: str) -> tuple[int, int]:
    width, _, height = text.partition("x")
    return int(width), int(height)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = common.argument_parser(__doc__, "--viewers", "1,10,50", int, "viewer counts")
    parser.add_argument(
        "--systems",
        default="villagewatch,one-port,baseline",
        help="villagewatch, one-port (every viewer on one UDP port), python-send (the send"
        " path in Python), libsrtp (every packet protected by libsrtp) and baseline, comma"
        " separated (default villagewatch,one-port,baseline)",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=CATCH_UP,
        help="wait after every viewer's first frame before the window, s (default %(default)s:"
        " the viewers have caught up with live by then: see the live after column)",
    )
    parser.add_argument(
        "--ramp",
        type=float,
        default=0.0,
        help="spread the viewers' offers evenly over this many seconds (default 0: at once)",
    )
    parser.add_argument(
        "--max-others",
        type=float,
        default=25.0,
        help="take a window again if other processes used more than this %% of a core in it"
        " (default %(default)s)",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=2,
        help="at most this many more windows per row; the quietest counts (default %(default)s)",
    )
    parser.add_argument(
        "--size",
        default=SIZE,
        type=_size,
        help="the camera's picture, WIDTHxHEIGHT (default %(default)s)",
    )
    parser.add_argument(
        "--decode", action="store_true", help="viewers decode every frame (default: count them)"
    )
    parser.add_argument(
        "--light",
        action="store_true",
        help="viewers read only each video packet's RTP header, past aiortc's receive path"
        f" (up to {LIGHT_VIEWERS_PER_PROCESS} per process): for 100 viewers and more",
    )
    parser.add_argument(
        "--apart",
        action="store_true",
        help="the viewers' receive path on other cores than the server's: a network namespace"
        " of its own whose loopback steers packets to them (root, 2 cores or more)",
    )
    parser.add_argument(
        "--srtp",
        choices=SRTP_OFFERS,
        default="aiortc",
        help="the SRTP profiles the viewers accept: "
        + "; ".join(f"{k}: {v}" for k, v in SRTP_OFFERS.items())
        + " (default %(default)s)",
    )
    parser.add_argument(
        "--py-spy",
        metavar="DIR",
        help="record each server with py-spy (raw format) during every window and while "
        "the viewers join, into DIR",
    )
    args = parser.parse_args(argv)
    args.systems = args.systems.split(",")
    if not set(args.systems) <= set(SYSTEMS):
        parser.error(f"--systems: choose from {', '.join(SYSTEMS)}")
    if not all(1 <= n <= MAX_VIEWERS for n in args.viewers):
        parser.error(f"--viewers: counts from 1 to {MAX_VIEWERS}")
    if args.decode and args.light:
        parser.error("--decode or --light, not both")
    if args.seconds <= 0 or args.ramp < 0 or args.settle < 0 or not 0 <= args.retries <= 10:
        parser.error("--seconds must be above 0, --ramp and --settle not negative, --retries 0-10")
    if args.apart and (os.geteuid() != 0 or (os.cpu_count() or 1) < 2):
        parser.error("--apart: needs root (a network namespace) and 2 cores or more")
    if args.py_spy:
        if not common.PY_SPY.exists():
            parser.error(f"--py-spy: no {common.PY_SPY} (pip install py-spy into the venv)")
        Path(args.py_spy).mkdir(parents=True, exist_ok=True)
    return args


async def serve_baseline(camera_url: str, port: int) -> None:
    """Made in the runner's context, where its IceSettings hold."""
    await Baseline(camera_url).serve(port)


def sub_command(argv: Sequence[str]) -> int:
    factory = common.loop_factory()
    if argv[0] == "_baseline":
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(serve_baseline(argv[1], int(argv[2])))
        return 0
    delays = [float(d) for d in argv[2].split(",")]
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(viewers(argv[1], delays, argv[3]))
    return 0


def viewer_cores() -> set[int]:
    """--apart: every core but the servers'."""
    return set(range(os.cpu_count() or 1)) - {SERVER_CORE}


def apart(argv: Sequence[str]) -> int:
    """This benchmark again, in a network namespace and a mount namespace of its own
    (sysfs mounted again, to reach the namespace's loopback): loopback up, its received
    packets steered to every core but SERVER_CORE. Each server goes on SERVER_CORE, the
    viewers on the others (orchestrate); the camera on any (x264 cuts a frame into a
    slice per core it may use: pinned, it would send fewer, larger packets)."""
    mask = f"{sum(1 << core for core in viewer_cores()):x}"
    setup = (
        "mount -t sysfs sysfs /sys && ip link set lo up"
        f" && echo {mask} > /sys/class/net/lo/queues/rx-0/rps_cpus"
        ' && exec "$@"'
    )
    command = ["unshare", "--net", "--mount", "--", "sh", "-c", setup, "sh"]
    env = {**os.environ, APART_VARIABLE: "1"}
    inner = [*command, sys.executable, __file__, *argv]
    return subprocess.run(inner, env=env, check=False).returncode


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in ("_baseline", "_viewers"):
        return sub_command(argv)
    args = parse_args(argv)
    if args.apart and not os.environ.get(APART_VARIABLE):
        return apart(argv)
    print(common.command_line())
    print(
        f"whep viewers: one camsim camera, {args.size[0]}x{args.size[1]} H.264 Constrained"
        f" Baseline at {FPS} fps, keyframe every {KEYFRAME_INTERVAL:g} s, x264enc default target"
        f" 2048 kbit/s (measured: below), RTSP/TCP on {common.HOST};\n{common.machine_facts()},"
        f" aiortc {version('aiortc')}, aioice {version('aioice')}, PyAV {av.__version__},"
        f" aiohttp {version('aiohttp')}, {common.loop_name()} loops;\nwindow {args.seconds:g} s,"
        f" viewers {','.join(map(str, args.viewers))} (up to {per_process(args)} per"
        f" process), offers {'at once' if not args.ramp else f'over {args.ramp:g} s'},"
        f" viewers {VIEWER_MODES[viewer_mode(args)]}, SRTP {SRTP_OFFERS[args.srtp]}"
        + (
            f";\n--apart: servers on core {SERVER_CORE}; the viewers and their received packets"
            " (RPS) on the others"
            if args.apart
            else ""
        ),
        flush=True,
    )
    with asyncio.Runner() as runner:
        results = runner.run(orchestrate(args))
    print()
    for line in common.table([HEADER, *(row(r) for r in results)], left={0, 13, 14}):
        print(line)
    print()
    for system in args.systems:
        idle = next(r for r in results if r.system == system)
        print(f"camera as {system} ingested it (idle window): {idle.camera}")
        for r in results:
            if r.system == system and r.errors:
                print(f"  {r.viewers} viewers, failures: {sorted(set(r.errors))}")
    busy = [r for r in results if r.others_cpu > args.max_others]
    if busy:
        print(
            f"\nWARNING: other processes used more than {args.max_others:g} % of a core in"
            f" every one of the windows\nof {', '.join(f'{r.system} x{r.viewers}' for r in busy)}"
            " (the quietest is shown): compare those rows with care."
        )
    cores = os.cpu_count() or 1
    saturated = [r for r in results if r.machine_cpu >= SATURATED * 100 * cores]
    if saturated:
        print(
            f"\nWARNING: the machine was {SATURATED:.0%} busy or more while measuring "
            + ", ".join(f"{r.system} x{r.viewers}" for r in saturated)
            + ": there the node got less CPU than it\nwanted (see frames lost, others %);"
            " its figures are a floor, and TTFF includes waiting for a core."
        )
    print(
        "\nnode CPU % = the server process only (all its threads), % of one core, over the"
        " window;\nof which sys % = its kernel time: mostly sendmsg(), which on loopback also"
        " delivers each\npacket to the viewer's socket (this kernel charges that softirq work"
        " to the sender;\nnot with --apart, where the viewers' cores receive it)."
        "\nCPU per viewer % = (node CPU % - the same system's idle row) / viewers."
        "\nRTP pkt/s per viewer = video packets a viewer received per second in the window;"
        "\nnode us per pkt = (node CPU - idle) / all the viewers' packets: the node's cost of"
        " one packet\nto one viewer, in microseconds of one core."
        f"\nTTFF = from a viewer's offer to its first frame ({FIRST_FRAME[viewer_mode(args)]}),"
        "\nover the viewers that got one; p95 viewer: when that viewer got its"
        " answer, and ICE + DTLS\nconnected, from its offer. joining: server ping = round"
        " trips of a trivial GET to the\nserver every 0.1 s from the first offer to the last"
        " first frame (its event loop's lag).\nThe window starts --settle s after the last"
        " first frame.\nframes lost % = sum over viewers of max(0, 25 fps x window -"
        " frames received in it) / expected."
        + (LIGHT_COUNTS if args.light else AIORTC_COUNTS)
        + " join = from the offer to the window, window = in the window.\nserver transcode:"
        " villagewatch = no transcoder started (its log) and H.264 without B-frames\n"
        "(GET /api/cameras), so the camera's packets pass through; baseline = MediaPlayer"
        " decode=False.\nviewers CPU % = the viewer processes and this script; camsim % = the"
        " GStreamer camera (x264);\nothers % = every other process on the machine; machine % ="
        f" all busy cores ({os.cpu_count()} x 100 max);\na row's window is taken again (up to"
        " --retries times, the quietest counts) while others % is\nabove --max-others."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
