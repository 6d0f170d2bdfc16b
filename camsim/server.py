#!/usr/bin/python3
"""RTSP camera simulator server (GStreamer RTSP server through PyGObject).

Runs under Debian's system python (``/usr/bin/python3``), which has ``gi``
with GstRtspServer; the project venv cannot import ``gi``. Uses only the
standard library and ``gi``. Started as a script path::

    /usr/bin/python3 camsim/server.py --port P --mounts JSON [--user U --password P]

Serves every mount ``/NAME`` of the JSON list on 127.0.0.1 only (``--address``
changes that; the controller passes its ``host``, 127.0.0.1 by default).

Control protocol, one line per command on stdin, one answer line on stdout:

* ``stall NAME``   -> ``ok``: the mount's TCP connections stay open, no media flows
* ``unstall NAME`` -> ``ok``: media flows again (also on the same connection)
* scene mounts (``scene`` other than ``ball``): ``move NAME`` / ``halt NAME`` start
  and stop the white box crossing the picture; ``freeze NAME`` / ``thaw NAME``
  make the pictures identical (no sensor noise, box halted) and live again;
  ``cover NAME`` / ``uncover NAME`` turn the picture black and back
* ``quit``         -> ``ok`` and exit

On startup, once the server listens, it prints ``ready PORT`` (the bound port,
so ``--port 0`` lets the kernel pick one). If the port cannot be bound it prints
``error: ...`` and exits with status 2. EOF on stdin (the parent died), SIGTERM
and SIGINT end the process promptly.

The ``gi`` objects are untyped, so they are annotated ``Any``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from typing import Any

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

DEFAULT_ADDRESS = "127.0.0.1"
STALL_VALVE_PREFIX = "stallvalve"
H264_PROFILES = ("constrained-baseline", "high")
SCENES = ("ball", "still", "moving", "black", "frozen")
NOISE_ALPHA = 0.04  # sensor noise of a real camera: a still scene is never bit-identical
BOX = 48  # the moving object, pixels
BOX_SPEED = 160  # pixels a second
TICK_MS = 33


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _int(spec: dict[str, Any], key: str, default: int) -> int:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"mount {spec.get('name')!r}: bad {key} {value!r}")
    return int(value)


def _bitrate(spec: dict[str, Any], codec: str) -> str:
    """The encoder's bitrate properties (kbit/s), if set: a constant bitrate, as
    a camera set to CBR sends. x264enc's default pass is CBR with a 600 ms VBV
    buffer; x265enc's bitrate alone is an average that may overshoot for
    seconds, so it gets a 1 s VBV buffer of the same rate."""
    if spec.get("bitrate_kbps") is None:
        return ""
    kbps = _int(spec, "bitrate_kbps", 1)
    if codec == "h265":
        return f" bitrate={kbps} option-string=vbv-maxrate={kbps}:vbv-bufsize={kbps}"
    return f" bitrate={kbps}"


def build_launch(spec: dict[str, Any]) -> str:
    """Return the gst-launch description of one mount's media pipeline."""
    name = spec["name"]
    codec = spec.get("codec", "h264")
    profile = spec.get("profile", "constrained-baseline")
    width = _int(spec, "width", 640)
    height = _int(spec, "height", 360)
    fps = _int(spec, "fps", 15)
    interval = float(spec.get("keyframe_interval", 2.0))
    if interval <= 0:
        raise ValueError(f"mount {name!r}: bad keyframe_interval {interval!r}")
    key_int_max = max(1, round(fps * interval))
    bframes = bool(spec.get("bframes", False))
    audio = spec.get("audio")
    bitrate = _bitrate(spec, codec)

    caps = f"video/x-raw,format=I420,width={width},height={height},framerate={fps}/1"
    # A ball bouncing over a moving background: every frame differs, so the
    # encoder produces real P-frames and a viewer can see motion.
    picture = (
        f"videotestsrc is-live=true pattern=ball motion=sweep background-color=0xff202060 ! {caps} "
    )
    if spec.get("scene", "ball") != "ball":
        picture = scene_launch(caps, fps)
    # Stall valve before the encoder: while stalled the encoder gets no
    # input, so after unstall the stream goes on with valid references
    # (no broken P-frames). drop-mode keeps sticky events (caps, segment).
    source = (
        f"{picture}! valve name={STALL_VALVE_PREFIX}0 drop=false drop-mode=forward-sticky-events "
    )
    if codec == "h264":
        if profile not in H264_PROFILES:
            raise ValueError(f"mount {name!r}: unknown h264 profile {profile!r}")
        if bframes:
            if profile != "high":
                raise ValueError(f"mount {name!r}: bframes need profile 'high'")
            encoder = (
                f"x264enc speed-preset=ultrafast key-int-max={key_int_max} bframes=2 b-adapt=false"
            )
        else:
            encoder = f"x264enc tune=zerolatency speed-preset=ultrafast key-int-max={key_int_max}"
        encoder += bitrate
        if profile == "high":
            # ultrafast switches the 8x8 transform and CABAC off; without them
            # x264 writes a Constrained Baseline SPS whatever the caps say.
            encoder += " dct8x8=true cabac=true"
        video = (
            f"{source}! {encoder} ! video/x-h264,profile={profile} "
            "! rtph264pay config-interval=1 pt=96 name=pay0"
        )
    elif codec == "h265":
        video = (
            f"{source}! x265enc tune=zerolatency speed-preset=ultrafast key-int-max={key_int_max}"
            f"{bitrate} "
            "! rtph265pay config-interval=1 pt=96 name=pay0"
        )
    else:
        raise ValueError(f"mount {name!r}: unknown codec {codec!r}")

    if audio is None:
        return f"( {video} )"
    encode = {
        "pcma": ("8000", "alawenc ! rtppcmapay pt=8"),
        "aac": ("16000", "audioconvert ! voaacenc ! rtpmp4gpay pt=97"),
    }.get(audio)
    if encode is None:
        raise ValueError(f"mount {name!r}: unknown audio {audio!r}")
    rate, encoder = encode
    sound = (
        "audiotestsrc is-live=true wave=sine freq=440 volume=0.2 "
        f"! audio/x-raw,rate={rate},channels=1 "
        f"! valve name={STALL_VALVE_PREFIX}1 drop=false drop-mode=forward-sticky-events "
        f"! {encoder} name=pay1"
    )
    return f"( {video} {sound} )"


def scene_launch(caps: str, fps: int) -> str:
    """A still scene (colour bars) with sensor noise and a box that moves on command,
    mixed by a compositor whose pads the commands drive."""
    box_caps = f"video/x-raw,format=I420,width={BOX},height={BOX},framerate={fps}/1"
    return (
        f"videotestsrc is-live=true pattern=smpte75 ! {caps} ! mix.sink_0 "
        f"videotestsrc is-live=true pattern=snow ! {caps} ! mix.sink_1 "
        "videotestsrc is-live=true pattern=solid-color foreground-color=0xffffffff "
        f"! {box_caps} ! mix.sink_2 "
        f"compositor name=mix background=black sink_1::alpha={NOISE_ALPHA} sink_2::alpha=0 "
        f"! {caps} "
    )


class Scene:
    """What a scene mount shows now; applied to every media of the mount."""

    def __init__(self, spec: dict[str, Any]) -> None:
        kind = spec.get("scene", "ball")
        if kind not in SCENES:
            raise ValueError(f"mount {spec.get('name')!r}: unknown scene {kind!r}")
        self.enabled = kind != "ball"
        self.width = _int(spec, "width", 640)
        self.height = _int(spec, "height", 360)
        self.moving = kind == "moving"
        self.box_shown = kind == "moving"
        self.frozen = kind == "frozen"
        self.covered = kind == "black"
        self.x = 0.0

    def command(self, verb: str) -> None:
        if verb == "move":
            self.moving = self.box_shown = True
            self.frozen = self.covered = False
        elif verb == "halt":
            self.moving = False
        elif verb == "freeze":
            self.frozen, self.moving = True, False
        elif verb == "thaw":
            self.frozen = False
        elif verb == "cover":
            self.covered = True
        elif verb == "uncover":
            self.covered = False

    def tick(self) -> None:
        if self.moving:
            self.x = (self.x + BOX_SPEED * TICK_MS / 1000) % (self.width - BOX)

    def apply(self, element: Any) -> None:
        mix = element.get_by_name("mix")
        if mix is None:
            return
        alphas = (
            0.0 if self.covered else 1.0,
            0.0 if self.covered or self.frozen else NOISE_ALPHA,
            1.0 if self.box_shown and not self.covered else 0.0,
        )
        for index, alpha in enumerate(alphas):
            pad = mix.get_static_pad(f"sink_{index}")
            if pad is not None:
                pad.set_property("alpha", alpha)
        box = mix.get_static_pad("sink_2")
        if box is not None:
            box.set_property("xpos", int(self.x))
            box.set_property("ypos", (self.height - BOX) // 2)


class Mount:
    """One mount point: its factory, stall flag and configured media."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.name: str = spec["name"]
        self.stalled = False
        self.media: list[Any] = []
        self.factory: Any = GstRtspServer.RTSPMediaFactory()
        self.factory.set_launch(build_launch(spec))
        self.factory.set_shared(True)
        self.factory.connect("media-configure", self._on_media_configure)
        self.scene = Scene(spec)
        if self.scene.enabled:
            GLib.timeout_add(TICK_MS, self._tick)

    def _tick(self) -> bool:
        if self.scene.moving:
            self.scene.tick()
            for media in list(self.media):
                self._apply(media)
        return True

    def scene_command(self, verb: str) -> None:
        self.scene.command(verb)
        for media in list(self.media):
            self._apply(media)

    def _on_media_configure(self, _factory: Any, media: Any) -> None:
        self.media.append(media)
        media.connect("unprepared", self._on_media_unprepared)
        self._apply(media)

    def _on_media_unprepared(self, media: Any) -> None:
        # Called from the media's own thread: rebuild the list, never mutate
        # it in place while the main thread may iterate it.
        self.media = [m for m in self.media if m is not media]

    def _apply(self, media: Any) -> None:
        element = media.get_element()
        if element is None:
            return
        index = 0
        while True:
            valve = element.get_by_name(f"{STALL_VALVE_PREFIX}{index}")
            if valve is None:
                break
            valve.set_property("drop", self.stalled)
            index += 1
        self.scene.apply(element)

    def set_stalled(self, stalled: bool) -> None:
        self.stalled = stalled
        for media in list(self.media):
            self._apply(media)


class Simulator:
    def __init__(
        self,
        address: str,
        port: int,
        specs: list[dict[str, Any]],
        user: str | None,
        password: str | None,
    ) -> None:
        self.address = address
        self.loop: Any = GLib.MainLoop()
        self.server: Any = GstRtspServer.RTSPServer()
        self.server.set_address(address)
        self.server.set_service(str(port))
        self.mounts: dict[str, Mount] = {}
        mount_points = self.server.get_mount_points()
        permissions: Any = None
        if user is not None:
            auth = GstRtspServer.RTSPAuth()
            token = GstRtspServer.RTSPToken()
            token.set_string("media.factory.role", user)
            auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password or ""), token)
            self.server.set_auth(auth)
            permissions = GstRtspServer.RTSPPermissions()
            permissions.add_permission_for_role(user, "media.factory.access", True)
            permissions.add_permission_for_role(user, "media.factory.construct", True)
        for spec in specs:
            mount = Mount(spec)
            if mount.name in self.mounts:
                raise ValueError(f"duplicate mount {mount.name!r}")
            if permissions is not None:
                mount.factory.set_permissions(permissions)
            self.mounts[mount.name] = mount
            mount_points.add_factory("/" + mount.name, mount.factory)

    def run(self) -> int:
        if self.server.attach(None) == 0:
            _say(f"error: cannot listen on {self.address}:{self.server.get_service()}")
            return 2
        # The session pool's cleanup is not automatic: drop timed-out sessions.
        GLib.timeout_add_seconds(2, self._cleanup)
        for signum in (signal.SIGTERM, signal.SIGINT):
            GLib.unix_signal_add(GLib.PRIORITY_HIGH, signum, self._quit)
        threading.Thread(target=self._read_stdin, name="camsim-stdin", daemon=True).start()
        _say(f"ready {self.server.get_bound_port()}")
        self.loop.run()
        return 0

    def _cleanup(self) -> bool:
        self.server.get_session_pool().cleanup()
        return True

    def _quit(self) -> bool:
        self.loop.quit()
        return False

    def _read_stdin(self) -> None:
        for line in sys.stdin:
            GLib.idle_add(self._command, line.strip())
        GLib.idle_add(self._quit)

    def _command(self, line: str) -> bool:
        verb, _, arg = line.partition(" ")
        arg = arg.strip()
        if verb == "quit":
            _say("ok")
            self.loop.quit()
        elif verb in ("stall", "unstall"):
            mount = self.mounts.get(arg)
            if mount is None:
                _say(f"error: no mount {arg!r}")
            else:
                mount.set_stalled(verb == "stall")
                _say("ok")
        elif verb in ("move", "halt", "freeze", "thaw", "cover", "uncover"):
            mount = self.mounts.get(arg)
            if mount is None or not mount.scene.enabled:
                _say(f"error: no scene mount {arg!r}")
            else:
                mount.scene_command(verb)
                _say("ok")
        elif line:
            _say(f"error: unknown command {line!r}")
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--address", default=DEFAULT_ADDRESS, help="address to bind (default 127.0.0.1)"
    )
    parser.add_argument("--port", type=int, required=True, help="TCP port, 0 = any free port")
    parser.add_argument("--mounts", required=True, help="JSON list of mount specs")
    parser.add_argument("--user")
    parser.add_argument("--password")
    args = parser.parse_args(argv)
    if (args.user is None) != (args.password is None):
        parser.error("--user and --password go together")

    Gst.init(None)
    try:
        specs = json.loads(args.mounts)
        if not isinstance(specs, list) or not all(
            isinstance(s, dict) and s.get("name") for s in specs
        ):
            raise ValueError("--mounts must be a JSON list of objects with a name")
        simulator = Simulator(args.address, args.port, specs, args.user, args.password)
    except ValueError as exc:
        _say(f"error: {exc}")
        return 2
    status = simulator.run()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: GStreamer streaming threads may still run and
    # tearing the pipelines down cleanly takes time; the kernel closes sockets.
    os._exit(status)


if __name__ == "__main__":
    sys.exit(main())
