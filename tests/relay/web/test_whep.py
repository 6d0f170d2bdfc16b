"""WHEP over real WebRTC (aiortc on both ends, 127.0.0.1 only) from real cameras."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Iterator
from typing import Any

import aiohttp
import aioice.ice
import psutil
import pylibsrtp
import pytest
from aiortc import RTCRtpReceiver, clock
from aiortc.rtp import RtcpByePacket, RtcpPacket, RtcpSdesPacket, RtcpSrPacket, RtpPacket

from camsim import CameraSimulator, MountSpec
from relay.web.whep import WHEP
from relay.webrtc import fanout, srtp
from relay.webrtc.client import WhepClient
from relay.webrtc.udp_batch import batch_for
from tests.conftest import ADMIN, ADMIN_TOKEN, NodeFactory, node_yaml
from tests.helpers import open_fds, wait_until
from tests.offers import offer_sdp

MOUNTS = [
    MountSpec("baseline", width=640, height=360, fps=15),
    MountSpec("high", profile="high", width=640, height=360, fps=15, audio="pcma"),
    MountSpec("hevc", codec="h265", width=640, height=360, fps=15),
    MountSpec("bframes", profile="high", bframes=True, width=640, height=360, fps=15),
    MountSpec("aac", width=640, height=360, fps=15, audio="aac"),
]


@pytest.fixture(scope="module")
def cameras() -> Iterator[CameraSimulator]:
    with CameraSimulator(MOUNTS) as sim:
        yield sim


def camera_yaml(sim: CameraSimulator, *names: str) -> str:
    """Not recorded: these tests count the channels' subscribers."""
    return "".join(
        f"  - {{id: {n}, name: {n}, site: village, main: '{sim.url(n)}',"
        " record: {mode: 'off'}}\n"
        for n in names
    )


@pytest.mark.parametrize(
    ("mount", "transcoded", "profile"),
    [
        ("baseline", False, "42e01f"),
        ("high", False, "64001f"),
        ("hevc", True, "42e01f"),
        ("bframes", True, "42e01f"),
        ("aac", False, "42e01f"),
    ],
)
async def test_client_decodes_every_kind_of_camera(
    cameras: CameraSimulator,
    start_node: NodeFactory,
    *,
    caplog: pytest.LogCaptureFixture,
    mount: str,
    transcoded: bool,
    profile: str,
) -> None:
    caplog.set_level(logging.INFO, "relay.webrtc.service")
    node = await start_node(node_yaml(camera_yaml(cameras, mount)))
    async with aiohttp.ClientSession() as http:
        client = WhepClient(f"{node.url}/whep/{mount}", audio=True, token=ADMIN_TOKEN)
        try:
            await client.connect(http)
            answer = client.pc.remoteDescription.sdp
            assert f"profile-level-id={profile}" in answer
            async with asyncio.timeout(10):
                await client.first_frame()
                await wait_until(lambda: client.watch.frames >= 20, 10)
            assert client.watch.sizes == {(640, 360)}
            service = node.app[WHEP]
            assert (f"{mount}/main" in service.transcoders) is transcoded
            if not transcoded:  # RTP payloads made once per frame, for every viewer
                channel = node.hub.channel(mount)
                assert channel is not None
                assert any("h264-rtp" in p.derived for p in channel.gop())
            if mount == "high":  # G.711 passes through to the viewer
                await wait_until(lambda: client.watch.audio_frames > 10, 5, "audio frames")
            if mount == "aac":  # left out, and the log says why
                assert client.watch.audio_frames == 0
                assert "its aac audio is left out: browsers take G.711 or Opus" in caplog.text
        finally:
            await client.close(http)
    if transcoded:  # the shared transcoder stops with its last viewer
        transcoder = node.app[WHEP].transcoders[f"{mount}/main"]
        await wait_until(lambda: not transcoder.running, 5)


async def test_transcoder_is_shared_by_all_viewers(
    cameras: CameraSimulator, start_node: NodeFactory
) -> None:
    node = await start_node(node_yaml(camera_yaml(cameras, "hevc")))
    async with aiohttp.ClientSession() as http:
        clients = [WhepClient(f"{node.url}/whep/hevc", token=ADMIN_TOKEN) for _ in range(3)]
        try:
            for c in clients:
                await c.connect(http)
            async with asyncio.timeout(15):
                await asyncio.gather(*(c.first_frame() for c in clients))
            channel = node.hub.channel("hevc")
            assert channel is not None
            assert len(channel.subscribers) == 1, "one decode for every viewer"
            assert len(node.app[WHEP].transcoders["hevc/main"].subscribers) == 3
        finally:
            for c in clients:
                await c.close(http)


async def lose_one(client: WhepClient, ssrc: int) -> int:
    """Loses the next packet of `ssrc` on its way to the client: its sequence number."""
    transport = client.pc.getTransceivers()[0].receiver.transport
    rx, lost = transport._rx_srtp, asyncio.get_running_loop().create_future()

    class Lossy:
        def __getattr__(self, name: str) -> Any:
            return getattr(rx, name)

        def unprotect(self, data: bytes) -> bytes:
            if not lost.done() and int.from_bytes(data[8:12]) == ssrc:
                lost.set_result(int.from_bytes(data[2:4]))
                transport._rx_srtp = rx
                raise pylibsrtp.Error("lost on the way")
            return rx.unprotect(data)

    transport._rx_srtp = Lossy()  # type: ignore[assignment]
    async with asyncio.timeout(5):
        seq: int = await lost
    return seq


def without_rtx(client: WhepClient) -> None:
    """The client offers no RTX: a packet it reports lost comes again as it was."""
    add = client.pc.addTransceiver

    def added(kind: str, **options: Any) -> Any:
        transceiver = add(kind, **options)
        capabilities = RTCRtpReceiver.getCapabilities(kind)
        assert capabilities is not None
        codecs = [c for c in capabilities.codecs if c.mimeType != "video/rtx"]
        transceiver.setCodecPreferences(codecs)
        return transceiver

    client.pc.addTransceiver = added  # type: ignore[assignment,method-assign]


@pytest.mark.parametrize(
    "case",
    [
        ("compiled", True, True),
        ("compiled", True, False),
        ("compiled", False, True),
        ("in-place", False, True),
        ("python", False, False),
    ],
    ids=["group", "group-no-rtx", "compiled", "in-place", "python-no-rtx"],
)
async def test_a_packet_the_viewer_reports_lost_comes_again(
    cameras: CameraSimulator,
    start_node: NodeFactory,
    monkeypatch: pytest.MonkeyPatch,
    case: tuple[str, bool, bool],
) -> None:
    """The node's RtpWriter keeps what it sent: a real NACK from the viewer brings
    the packet again, wrapped in RTX (its sequence number, then its payload), or
    as it was where the viewer has no RTX; its sender reports count what it sent;
    a frame's last packet has the marker bit; a frame's packets are protected in
    place, a call each (libsrtp's, or, where that cannot be, pylibsrtp's own
    protect; or all in compiled code, SRTP by relay/webrtc/_srtp_protect.c, and once
    live from the stream's ViewerGroup), and go to the kernel in runs."""
    mode, groups, rtx = case
    monkeypatch.setattr(srtp, "MODE", mode)
    monkeypatch.setattr(fanout, "GROUPS", groups)
    node = await start_node(node_yaml(camera_yaml(cameras, "baseline")))
    async with aiohttp.ClientSession() as http:
        client = WhepClient(f"{node.url}/whep/baseline", token=ADMIN_TOKEN)
        if not rtx:
            without_rtx(client)
        try:
            await client.connect(http)
            receiver = client.pc.getTransceivers()[0].receiver
            media: dict[int, RtpPacket] = {}  # seq -> packet, of the video SSRC
            resent: asyncio.Queue[RtpPacket] = asyncio.Queue()
            handle = receiver._handle_rtp_packet

            twice: list[int] = []  # sequence numbers that came again (RTX aside)

            async def watch(packet: RtpPacket, arrival_time_ms: int) -> None:
                if not media or packet.ssrc == next(iter(media.values())).ssrc:
                    if packet.sequence_number in media:
                        twice.append(packet.sequence_number)
                    media[packet.sequence_number] = packet
                else:
                    resent.put_nowait(packet)
                await handle(packet, arrival_time_ms)

            receiver._handle_rtp_packet = watch  # type: ignore[method-assign]
            reports: asyncio.Queue[RtcpSrPacket] = asyncio.Queue()
            handle_rtcp = receiver._handle_rtcp_packet

            names: list[bytes] = []  # the CNAMEs of the SDES with each report
            handle_data = receiver.transport._handle_rtcp_data

            async def watch_data(data: bytes) -> None:
                for packet in RtcpPacket.parse(data):
                    if isinstance(packet, RtcpSdesPacket):
                        names.extend(item[1] for chunk in packet.chunks for item in chunk.items)
                await handle_data(data)

            receiver.transport._handle_rtcp_data = watch_data  # type: ignore[method-assign]

            async def watch_rtcp(packet: Any) -> None:
                if isinstance(packet, RtcpSrPacket):
                    reports.put_nowait(packet)
                await handle_rtcp(packet)

            receiver._handle_rtcp_packet = watch_rtcp  # type: ignore[method-assign]
            await wait_until(lambda: len(media) >= 20, 10)
            (session,) = node.app[WHEP].sessions.values()
            sender = session.pc.getTransceivers()[0].sender
            at_sender: list[str] = []  # the RTCP packets aiortc's sender was given
            sender_rtcp = sender._handle_rtcp_packet

            async def watch_sender(packet: Any) -> None:
                at_sender.append(type(packet).__name__)
                await sender_rtcp(packet)

            sender._handle_rtcp_packet = watch_sender  # type: ignore[method-assign]
            rtcp_in = sender.transport.transport._connection.rtcp_in  # type: ignore[attr-defined]
            await wait_until(lambda: rtcp_in.reports >= 2, 10)  # the viewer's RR each second
            writer = sender._run_rtp.__self__  # type: ignore[attr-defined]
            if rtx:  # a packet the viewer got, asked for again
                lost = sorted(media)[-5]
                await receiver._send_rtcp_nack(media[lost].ssrc, [lost])
                async with asyncio.timeout(5):
                    again = await resent.get()
                assert again.payload_type != media[lost].payload_type
                assert int.from_bytes(again.payload[:2]) == lost
                assert again.payload[2:] == media[lost].payload
                assert again.timestamp == media[lost].timestamp
            else:  # a packet lost on the way: the viewer's own NACK brings it as it was
                lost = await lose_one(client, next(iter(media.values())).ssrc)
                await wait_until(lambda: lost in media, 5)
                sent_before = RtpPacket.parse(writer._sent_packet(lost))
                assert media[lost].payload == sent_before.payload
                assert media[lost].timestamp == sent_before.timestamp
                assert resent.empty(), "no RTX stream"
            counts = node.app[WHEP].rtp["baseline"]  # villagewatch_rtp_*_total
            nacks = len(at_sender) if not rtx else 1  # the viewer's may come twice
            assert (counts.nacked, counts.retransmitted) == (nacks, nacks)
            assert counts.packets >= len(media)
            # Its receiver reports ended where they arrived; the NACK went on to aiortc.
            assert at_sender == ["RtcpRtpfbPacket"] * nacks, at_sender
            assert rtcp_in.passed == nacks
            # A report that comes after these packets was sent after them: it counts
            # them (and more), and it is stamped with the time it was sent.
            while not reports.empty():
                reports.get_nowait()
            packets, octets = len(media), sum(len(p.payload) for p in media.values())
            async with asyncio.timeout(5):
                report = await reports.get()
            assert report.sender_info.packet_count >= packets
            assert report.sender_info.octet_count >= octets
            sent_at = clock.datetime_from_ntp(report.sender_info.ntp_timestamp)
            assert abs((sent_at - clock.current_datetime()).total_seconds()) < 2
            assert report.ssrc == sender._ssrc
            assert names and set(names) == {sender._RTCRtpSender__cname.encode()}  # type: ignore[attr-defined]
            # Each frame's last packet, and only it, has the marker bit.
            frames: dict[int, list[int]] = {}
            for seq in sorted(media)[: packets - 1]:
                frames.setdefault(media[seq].timestamp, []).append(media[seq].marker)
            whole = list(frames.values())[1:-1]  # the first and last may be cut short
            assert whole and all(m == [0] * (len(m) - 1) + [1] for m in whole), whole
            # The node handed the kernel each frame's packets in runs, not one by one.
            member = writer._member
            assert (member is not None) is groups, "live, a viewer is sent from its group"
            if member is not None:  # whose frames bring its reports, not a timer of its own
                assert writer._group is not None and writer._group.reports > 0
                assert not writer._alone.is_set()
            writer.sync()
            pair = sender.transport.transport._connection._nominated[1]
            buffer = writer._frames
            assert buffer is not None
            compiled = buffer.compiled.calls if buffer.compiled is not None else 0
            sends = batch_for(pair.protocol).calls + compiled
            sent = sender._RTCRtpSender__packet_count  # type: ignore[attr-defined]
            assert sends < sent, "one send per packet (and more for DTLS and RTCP)"
            grouped = member.sender.state[4] if member is not None else 0
            assert (buffer.mode, buffer.packets_protected + grouped) == (mode, sent)
            here = mode == "compiled" and writer._dtls._tx_srtp.profile in srtp.HERE
            assert (buffer.cipher != "libsrtp") == here
            assert counts.packets == sent
            assert twice == [], "no sequence number is sent twice, joining the group or not"
        finally:
            await client.close(http)


OFFER_AUDIO_ONLY = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:0 PCMU/8000\r\n"
)


async def test_every_refusal_has_its_status_and_reason(start_node: NodeFactory) -> None:
    node = await start_node(
        node_yaml(
            "  - {id: gate, name: Gate, site: village, main: 'synthetic://320x240?fps=10'}\n"
            "  - {id: dead, name: Dead, site: village, main: 'rtsp://127.0.0.1:1/x',\n"
            "     backoff_max: 1}\n",
            extra=("webrtc_extra: here\n".replace("webrtc_extra: here\n", "")),
        ).replace(
            "webrtc: {host_addresses: [127.0.0.1]}",
            "webrtc: {host_addresses: [127.0.0.1], max_viewers_per_camera: 1,"
            " ice_servers: [{urls: ['turn:127.0.0.1:3478'], username: u, credential: p}]}",
        )
    )
    offer = await offer_sdp()
    sdp = {"Content-Type": "application/sdp"}
    async with aiohttp.ClientSession(node.url, headers=ADMIN) as http:

        async def post(path: str, body: str, headers: dict[str, str] = sdp) -> tuple[int, str]:
            async with http.post(path, data=body, headers=headers) as r:
                return r.status, (await r.text()).strip()

        assert await post("/whep/nope", offer) == (404, "no such camera")
        assert (await post("/whep/gate", offer, {"Content-Type": "text/plain"}))[0] == 415
        assert await post("/whep/gate?stream=sub", offer) == (400, "stream must be main")
        broken = "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96\r\n"
        status, reason = await post("/whep/gate", broken)
        assert status == 400 and reason.startswith("unparsable SDP offer")
        assert await post("/whep/gate", "hello") == (400, "the offer has no video")
        assert await post("/whep/gate", OFFER_AUDIO_ONLY) == (400, "the offer has no video")
        assert (await post("/whep/gate", "x" * 70_000))[0] == 413

        dead = node.hub.channel("dead")
        assert dead is not None
        await wait_until(lambda: dead.source.state == "offline", 5)
        async with http.post("/whep/dead", data=offer, headers=sdp) as r:
            assert r.status == 409
            assert r.headers["Retry-After"] == "5"
            assert "camera is offline" in await r.text()

        async with http.post("/whep/gate", data=offer, headers=sdp) as r:
            assert r.status == 201
            assert r.content_type == "application/sdp"
            assert 'rel="ice-server"' in r.headers["Link"]
            session = r.headers["Location"]
        async with http.post("/whep/gate", data=offer, headers=sdp) as r:
            assert r.status == 503
            assert r.headers["Retry-After"]

        async with http.options("/whep/gate") as r:
            assert r.status == 204
            assert r.headers["Accept-Post"] == "application/sdp"
            assert r.headers["Link"].startswith("<turn:127.0.0.1:3478>")
        async with http.patch(
            session,
            data="a=end-of-candidates",
            headers={"Content-Type": "application/trickle-ice-sdpfrag"},
        ) as r:
            assert r.status == 405
            assert "DELETE" in r.headers["Allow"]
        async with http.delete(session) as r:
            assert r.status == 200
        assert node.app[WHEP].sessions == {}
        async with http.delete(session) as r:
            assert r.status == 404


def udp_sockets() -> int:
    return len(psutil.Process().net_connections(kind="udp"))


@pytest.mark.slow
async def test_sessions_deleted_and_abandoned_free_everything(
    start_node: NodeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """200 sessions: 99 DELETEd, 98 never connected, 3 whose viewer process is killed."""
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", 0.5)  # consent lost after ~3 s
    node = await start_node(
        node_yaml(
            "  - {id: gate, name: Gate, site: village, main: 'synthetic://320x240?fps=10',"
            " record: {mode: 'off'}}\n"
        ).replace(
            "webrtc: {host_addresses: [127.0.0.1]}",
            "webrtc: {host_addresses: [127.0.0.1], connect_timeout: 3,"
            " max_viewers: 300, max_viewers_per_camera: 300,"
            " pending_per_credential: 300, pending_per_credential_camera: 300}",
        )
    )
    channel = node.hub.channel("gate")
    assert channel is not None
    await channel.wait_online()
    service = node.app[WHEP]
    await asyncio.sleep(0.5)
    baseline = (udp_sockets(), open_fds(), len(asyncio.all_tasks()))

    killed = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "relay.webrtc.client",
            f"{node.url}/whep/gate",
            "--seconds",
            "60",
            "--token",
            ADMIN_TOKEN,
            "--host",
            "127.0.0.1",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        for _ in range(3)
    ]
    offer = await offer_sdp()
    opened = 0
    async with aiohttp.ClientSession(node.url, headers=ADMIN) as http:
        for i in range(197):  # every other one is ended by DELETE at once
            async with http.post(
                "/whep/gate", data=offer, headers={"Content-Type": "application/sdp"}
            ) as r:
                assert r.status == 201, await r.text()
                opened += 1
                location = r.headers["Location"]
            if i % 2 == 0:
                async with http.delete(location) as r:
                    assert r.status == 200
        assert opened == 197
        await wait_until(
            lambda: (
                sum(s.pc.connectionState == "connected" for s in service.sessions.values()) == 3
            ),
            20,
            "the three viewer processes connected",
        )
        for process in killed:
            os.kill(process.pid, signal.SIGKILL)
            await process.wait()
    # Left: the 98 never connected (freed at connect_timeout) and the 3 killed
    # viewers (freed when ICE consent fails), whatever the machine's load.
    await wait_until(lambda: not service.sessions, 15, "abandoned sessions freed")
    assert channel.subscribers == set()
    await wait_until(
        lambda: all(
            now <= then
            for now, then in zip(
                (udp_sockets(), open_fds(), len(asyncio.all_tasks())), baseline, strict=True
            )
        ),
        10,
        f"UDP sockets, fds and tasks back to {baseline}",
    )


async def test_media_uses_the_configured_udp_ports(start_node: NodeFactory) -> None:
    node = await start_node(
        node_yaml(
            "  - {id: gate, name: Gate, site: village, main: 'synthetic://160x120?fps=5'}\n"
        ).replace(
            "host_addresses: [127.0.0.1]", "host_addresses: [127.0.0.1], udp_ports: 41000-41019"
        )
    )
    before = {c.laddr.port for c in psutil.Process().net_connections(kind="udp")}
    async with aiohttp.ClientSession() as http:
        clients = [WhepClient(f"{node.url}/whep/gate", token=ADMIN_TOKEN) for _ in range(3)]
        try:
            for client in clients:
                await client.connect(http)
            async with asyncio.timeout(10):
                await asyncio.gather(*(c.first_frame() for c in clients))
            ports = {c.laddr.port for c in psutil.Process().net_connections(kind="udp")} - before
            node_ports = {
                protocol.transport.get_extra_info("sockname")[1]
                for session in node.app[WHEP].sessions.values()
                for transceiver in session.pc.getTransceivers()
                for protocol in ice_protocols(transceiver)
            }
        finally:
            for client in clients:
                await client.close(http)
    # The node's sockets are in its range; the viewers', in this same process, are
    # not: the settings belong to the app, not to the process.
    assert len(node_ports) >= 3 and node_ports <= ports
    assert all(41000 <= port <= 41019 for port in node_ports), sorted(node_ports)
    assert any(not 41000 <= port <= 41019 for port in ports - node_ports), sorted(ports)


async def test_whepclient_command_and_a_short_viewing_logged_right(
    start_node: NodeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="relay.webrtc.service")
    node = await start_node(
        node_yaml(
            "  - {id: gate, name: Gate, site: village, main: 'synthetic://160x120?fps=10'}\n"
        ).replace("host_addresses: [127.0.0.1]", "host_addresses: [127.0.0.1], connect_timeout: 3")
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "relay.webrtc.client",
        f"{node.url}/whep/gate",
        "--seconds",
        "0.5",
        "--token",
        ADMIN_TOKEN,
        "--host",
        "127.0.0.1",
        stdout=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(20):
        out, _ = await process.communicate()
    lines = out.decode().splitlines()
    assert process.returncode == 0, lines
    assert lines[0].startswith("first frame after ") and "no frame" not in lines
    assert "sizes [(160, 120)]" in lines[-1]
    await wait_until(lambda: not node.app[WHEP].sessions, 5, "the viewer ended")
    await asyncio.sleep(3)  # past connect_timeout: the ended viewer is not called unconnected
    assert "never connected" not in caplog.text
    assert "ended after" in caplog.text


def ice_protocols(transceiver: Any) -> list[Any]:
    """The ICE candidates' sockets (aioice protocols) of a transceiver's transport."""
    return list(transceiver.sender.transport.transport.iceGatherer._connection._protocols)


@pytest.mark.parametrize("groups", [True, False], ids=["group", "per-viewer"])
async def test_a_live_viewer_is_written_to_as_packets_come(
    start_node: NodeFactory, monkeypatch: pytest.MonkeyPatch, groups: bool
) -> None:
    """Once caught up with live, a viewer's frames are written as the camera's
    packets are published, not through its writer task's queue: all viewers of
    the stream in one call (its ViewerGroup), or each one's writer directly."""
    monkeypatch.setattr(fanout, "GROUPS", groups)
    node = await start_node(
        node_yaml("  - {id: gate, name: Gate, site: village, main: 'synthetic://160x120?fps=15'}\n")
    )
    async with aiohttp.ClientSession() as http:
        client = WhepClient(f"{node.url}/whep/gate", token=ADMIN_TOKEN)
        await client.connect(http)
        try:
            async with asyncio.timeout(10):
                await client.first_frame()
            session = next(iter(node.app[WHEP].sessions.values()))
            video = session.subscriptions[0]
            if groups:
                channel = node.hub.channel("gate")
                assert channel is not None
                await wait_until(lambda: video.parked, 10, "the viewer in its group")
                (group,) = [tap.__self__ for tap in channel.taps.values()]  # type: ignore[attr-defined]
                queued, sent = video.delivered, group.sent
                frames = client.watch.frames
                await wait_until(lambda: client.watch.frames > frames + 15, 10, "and they play")
                assert group.sent > sent + 15 and video.delivered == queued
                return
            await wait_until(lambda: video.delivered_directly > 15, 10, "frames written directly")
            frames = client.watch.frames
            await wait_until(lambda: client.watch.frames > frames + 15, 10, "and they play")
            assert video.delivered_directly > 0.5 * video.delivered
        finally:
            await client.close(http)


async def test_a_grouped_viewer_gets_a_report_a_second_from_its_group(
    start_node: NodeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Live in their group, viewers' sender reports (each with its SDES) come with
    the group's frames about once a second, not twice (each writer's own loop
    waits meanwhile); one taken out of the group has its writer's loop send them
    again; and a session that ends while its viewer is in a group still says BYE."""
    node = await start_node(
        node_yaml("  - {id: gate, name: Gate, site: village, main: 'synthetic://160x120?fps=15'}\n")
    )
    async with aiohttp.ClientSession() as http:
        clients = [WhepClient(f"{node.url}/whep/gate", token=ADMIN_TOKEN) for _ in range(2)]
        try:
            seen = []  # per viewer: what watch_reports sees
            writers: list[Any] = []  # the node's for each, in the same order
            sessions: list[Any] = []
            for client in clients:
                await client.connect(http)
                seen.append(watch_reports(client))
                (session,) = [s for s in node.app[WHEP].sessions.values() if s not in sessions]
                sessions.append(session)
                sender = session.pc.getTransceivers()[0].sender
                writers.append(sender._run_rtp.__self__)  # type: ignore[attr-defined]
            in_group = lambda: all(w._member is not None for w in writers)  # noqa: E731
            await wait_until(in_group, 10, "both in the group")
            group = writers[0]._group
            assert group is not None and writers[1]._group is group
            rounds = group.reports
            for reports, _ in seen:
                reports.clear()
            await asyncio.sleep(5.0)  # a window to count what comes in it
            for reports, _ in seen:
                assert 3 <= len(reports) <= 7, f"about one a second, not two: {len(reports)} in 5 s"
                assert all(reports), "each with its SDES"
            assert group.reports - rounds >= 3
            assert not any(w._alone.is_set() for w in writers), "their own loops wait"

            # One taken out of the group (and kept out): its writer's own loop reports.
            monkeypatch.setattr(fanout, "GROUPS", False)
            alone, stays = writers
            alone.leave_group()
            before = len(seen[0][0])
            await wait_until(lambda: len(seen[0][0]) >= before + 2, 6, "its writer's reports")
            assert stays._member is not None and alone._member is None

            # The other's session ends while it is in the group: BYE.
            await sessions[1].pc.close()
            await wait_until(lambda: bool(seen[1][1]), 5, "a BYE")
        finally:
            for client in clients:
                await client.close(http)


def watch_reports(client: WhepClient) -> tuple[list[bool], list[RtcpByePacket]]:
    """What a client's video receiver gets of RTCP from here on: per compound packet
    with a sender report, whether an SDES came with it; and BYEs."""
    reports: list[bool] = []
    byes: list[RtcpByePacket] = []
    transport = client.pc.getTransceivers()[0].receiver.transport
    handle_data = transport._handle_rtcp_data

    async def watch(data: bytes) -> None:
        packets = RtcpPacket.parse(data)
        if any(isinstance(p, RtcpSrPacket) for p in packets):
            reports.append(any(isinstance(p, RtcpSdesPacket) for p in packets))
        byes.extend(p for p in packets if isinstance(p, RtcpByePacket))
        await handle_data(data)

    transport._handle_rtcp_data = watch  # type: ignore[method-assign]
    return reports, byes
