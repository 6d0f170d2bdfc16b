"""The RTSP camera simulator (camsim) proven with a real RTSP client (PyAV/FFmpeg).

Every wait is bounded: PyAV's ``timeout=(open_s, read_s)`` bounds each open
and each read, and every loop has a deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import av
import av.error
import pytest
from av.container import InputContainer

from camsim import CameraSimulator, MountSpec

if TYPE_CHECKING:
    from typing import TypeAlias

    from av.packet import Packet as AvPacket
    from av.stream import Stream

    Packet: TypeAlias = AvPacket[Stream]

OPTIONS = {"rtsp_transport": "tcp", "analyzeduration": "0", "probesize": "32768"}
OPEN_TIMEOUT = 5.0
READ_TIMEOUT = 2.0
# Keyframes every 1 s keep the waits short.
KEYFRAME_INTERVAL = 1.0


def open_rtsp(url: str, read_timeout: float = READ_TIMEOUT) -> InputContainer:
    return av.open(url, options=OPTIONS, timeout=(OPEN_TIMEOUT, read_timeout))


def packets(container: InputContainer, deadline: float) -> Iterator[Packet]:
    """Non-empty packets until ``deadline`` (monotonic); ends early on EOF."""
    for packet in container.demux():
        if packet.size:
            yield packet
        if time.monotonic() > deadline:
            return


def read_until(
    container: InputContainer, predicate: Callable[[Packet], bool], within: float
) -> Packet:
    for packet in packets(container, time.monotonic() + within):
        if predicate(packet):
            return packet
    raise AssertionError(f"no matching packet within {within} s")


def read_live(container: InputContainer, within: float) -> Packet:
    """The first packet, with pts, that the reader had to wait for.

    The first connect delivers the frames encoded while the media prerolled in
    one burst; once a read blocks, the reader is caught up with the camera.
    """
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        started = time.monotonic()
        packet = read_until(container, lambda p: p.stream.type == "video", deadline - started)
        if time.monotonic() - started >= 0.03 and packet.pts is not None:
            return packet
    raise AssertionError(f"reader not caught up within {within} s")


def seconds(packet: Packet) -> float | None:
    if packet.pts is None:
        return None
    return float(packet.pts * packet.time_base)


@pytest.fixture(scope="module")
def sim() -> Iterator[CameraSimulator]:
    mounts = [
        MountSpec("base", keyframe_interval=KEYFRAME_INTERVAL),
        MountSpec("hevc", codec="h265", keyframe_interval=KEYFRAME_INTERVAL),
        MountSpec("high", profile="high", audio="pcma", keyframe_interval=KEYFRAME_INTERVAL),
        MountSpec("bframes", profile="high", bframes=True, keyframe_interval=KEYFRAME_INTERVAL),
        MountSpec("stall", keyframe_interval=KEYFRAME_INTERVAL),
        # far below the encoders' default of 2048 kbit/s, which this scene reaches
        MountSpec("rated", scene="moving", bitrate_kbps=600),
        MountSpec("rated_hevc", codec="h265", scene="moving", bitrate_kbps=600),
    ]
    with CameraSimulator(mounts) as simulator:
        yield simulator


@pytest.mark.parametrize(
    ("mount", "codec", "profile"),
    [
        ("base", "h264", "Constrained Baseline"),
        ("hevc", "hevc", "Main"),
        ("high", "h264", "High"),
        ("bframes", "h264", "High"),
    ],
)
def test_mount_serves_video(sim: CameraSimulator, mount: str, codec: str, profile: str) -> None:
    with open_rtsp(sim.url(mount)) as container:
        video = container.streams.video[0]
        assert video.codec_context.name == codec
        assert video.codec_context.profile == profile
        assert (video.codec_context.width, video.codec_context.height) == (640, 360)
        key = read_until(
            container, lambda p: p.stream.type == "video" and p.is_keyframe, 3 + KEYFRAME_INTERVAL
        )
        assert key.stream.type == "video"


@pytest.mark.parametrize("mount", ["rated", "rated_hevc"])
def test_a_mount_sends_the_bitrate_asked(sim: CameraSimulator, mount: str) -> None:
    size, first, last = 0, None, None
    with open_rtsp(sim.url(mount)) as container:
        for packet in packets(container, time.monotonic() + 20):
            if packet.pts is None or packet.stream.type != "video":
                continue
            first = seconds(packet) if first is None else first
            last = seconds(packet)
            size += packet.size
            if first is not None and last is not None and last - first >= 4:
                break
    assert first is not None and last is not None and last - first >= 4
    assert 0.6 * 600 < size * 8 / (last - first) / 1000 < 1.4 * 600


def test_a_bitrate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="bitrate_kbps must be positive"):
        MountSpec("x", bitrate_kbps=0)


def test_audio_mount_has_pcma(sim: CameraSimulator) -> None:
    with open_rtsp(sim.url("high")) as container:
        assert [s.codec_context.name for s in container.streams.audio] == ["pcm_alaw"]
        audio = read_until(container, lambda p: p.stream.type == "audio", 3)
        assert audio.stream.codec_context.name == "pcm_alaw"


def test_bframes_mount_reorders(sim: CameraSimulator) -> None:
    with open_rtsp(sim.url("bframes")) as container:
        assert container.streams.video[0].codec_context.has_b_frames
        pts: list[int] = []
        for packet in packets(container, time.monotonic() + 3):
            if packet.pts is not None:
                pts.append(packet.pts)
            if len(pts) >= 10:
                break
        assert pts != sorted(pts), "B-frames: presentation order differs from decode order"


def test_stall_keeps_connection_open_and_resumes(sim: CameraSimulator) -> None:
    with open_rtsp(sim.url("stall")) as container:
        read_until(container, lambda p: p.is_keyframe, 3 + KEYFRAME_INTERVAL)
        stall_pts = seconds(read_live(container, 3))
        assert stall_pts is not None

        sim.stall("stall")
        stalled_at = time.monotonic()
        late: list[float] = []
        # Until the read times out: a still open connection makes PyAV's read
        # timeout fire (ExitError); a closed one would end demux() (EOF).
        with pytest.raises(av.error.ExitError):
            for packet in packets(container, stalled_at + 10):
                media_time = seconds(packet)
                if media_time is not None and media_time > stall_pts + 0.5:
                    late.append(media_time)
        silent_for = time.monotonic() - stalled_at
        # A frame or two in flight may still come (FFmpeg's parser also holds
        # the last frame back until the next one or the timeout); nothing
        # encoded more than 0.5 s after the stall.
        assert late == [], f"media still flowing after stall: {late}"
        assert silent_for >= 1.5

        # Resuming works on the SAME connection, even after the read timed
        # out: a new demux() on the same container gets packets again.
        sim.unstall("stall")
        resumed = read_until(container, lambda p: (seconds(p) or 0) > stall_pts + 1.5, 5)
        assert resumed.stream.type == "video"


def test_stall_unknown_mount_is_an_error(sim: CameraSimulator) -> None:
    with pytest.raises(KeyError):
        sim.stall("nope")


def test_basic_auth() -> None:
    with CameraSimulator([MountSpec("cam")], user="viewer", password="s3cret pass") as sim:
        good = sim.url("cam")
        assert good.startswith("rtsp://viewer:s3cret%20pass@127.0.0.1:")
        with pytest.raises(av.error.HTTPUnauthorizedError):
            open_rtsp(good.replace("s3cret%20pass", "wrong"))
        with pytest.raises(av.error.HTTPUnauthorizedError):
            open_rtsp(sim.url("cam", credentials=False))
        with open_rtsp(good) as container:
            assert container.streams.video[0].codec_context.name == "h264"
            read_until(container, lambda p: p.stream.type == "video", 3)


def test_stop_ends_reader_and_restart_reuses_port() -> None:
    sim = CameraSimulator([MountSpec("cam", keyframe_interval=KEYFRAME_INTERVAL)])
    with sim:
        port = sim.port
        assert port > 0
        container = open_rtsp(sim.url("cam"))
        try:
            read_until(container, lambda p: p.stream.type == "video", 3)
            sim.stop()
            sim.stop()  # idempotent
            assert not sim.running
            stopped_at = time.monotonic()
            # The server is gone: demux() ends (EOF) or raises a connection
            # error at once; a read timeout (ExitError) would mean the
            # connection were still open.
            try:
                for _ in packets(container, stopped_at + 5):
                    pass
            except av.error.FFmpegError as exc:
                assert not isinstance(exc, av.error.ExitError), "connection still open after stop()"
            assert time.monotonic() - stopped_at < READ_TIMEOUT
        finally:
            container.close()

        sim.restart()
        assert sim.port == port
        with open_rtsp(sim.url("cam")) as fresh:
            read_until(fresh, lambda p: p.is_keyframe, 3 + KEYFRAME_INTERVAL)
    assert not sim.running
