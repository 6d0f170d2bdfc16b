"""A real RTSP camera simulator for tests and for hand use.

The server (``camsim/server.py``) is GStreamer's RTSP server driven through
PyGObject; it needs Debian's system python (``/usr/bin/python3``, override with
the ``CAMSIM_PYTHON`` environment variable) and runs as a child process. This
module is the synchronous controller, importable from any Python::

    with CameraSimulator([MountSpec("cam0"), MountSpec("cam1", codec="h265")]) as sim:
        url = sim.url("cam0")          # rtsp://127.0.0.1:PORT/cam0
        sim.stall("cam0")              # TCP stays open, no more media
        sim.unstall("cam0")
        sim.restart()                  # same port

The server binds 127.0.0.1 only (the ``host`` argument).
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import queue
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import IO
from urllib.parse import quote

__all__ = ["SERVER_SCRIPT", "CameraSimulator", "CamsimError", "MountSpec", "server_python"]

SERVER_SCRIPT = Path(__file__).resolve().with_name("server.py")
DEFAULT_PYTHON = "/usr/bin/python3"
_COMMAND_TIMEOUT = 5.0
_STOP_GRACE = 3.0
_MIN_ANSWER_WAIT = 2.0
_STDERR_LINES = 200


class CamsimError(RuntimeError):
    """The simulator process failed to start or to answer."""


@dataclass(frozen=True)
class MountSpec:
    """One simulated camera, served at ``/name``."""

    name: str
    codec: str = "h264"  # "h264" | "h265"
    profile: str = "constrained-baseline"  # or "high" (h264 only)
    width: int = 640
    height: int = 360
    fps: int = 15
    keyframe_interval: float = 2.0  # seconds
    audio: str | None = None  # None | "pcma" (G.711 A-law) | "aac"
    bframes: bool = False  # h264 high profile with 2 B-frames
    # "ball": the bouncing ball (every frame differs). The others show still colour
    # bars with sensor noise and a box: "still" (box hidden), "moving" (box crossing),
    # "black" (covered) and "frozen" (bit-identical pictures); scene() changes them.
    scene: str = "ball"
    # the encoder's target (kbit/s, constant bitrate); None: the encoder's default of
    # 2048. Only a picture with detail reaches it: the ball scene gives under 1 Mbit/s
    # at 1280x720 whatever is asked, the scenes with sensor noise about what is asked.
    bitrate_kbps: int | None = None

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name or any(c.isspace() for c in self.name):
            raise ValueError(f"bad mount name {self.name!r}")
        if self.codec not in ("h264", "h265"):
            raise ValueError(f"mount {self.name!r}: codec must be h264 or h265, not {self.codec!r}")
        if self.profile not in ("constrained-baseline", "high"):
            raise ValueError(f"mount {self.name!r}: profile must be constrained-baseline or high")
        if self.audio not in (None, "pcma", "aac"):
            raise ValueError(f"mount {self.name!r}: audio must be None, 'pcma' or 'aac'")
        if self.bframes and (self.codec != "h264" or self.profile != "high"):
            raise ValueError(f"mount {self.name!r}: bframes need codec h264 and profile high")
        if self.scene not in ("ball", "still", "moving", "black", "frozen"):
            raise ValueError(f"mount {self.name!r}: unknown scene {self.scene!r}")
        if self.width <= 0 or self.height <= 0 or self.fps <= 0 or self.keyframe_interval <= 0:
            raise ValueError(
                f"mount {self.name!r}: size, fps and keyframe_interval must be positive"
            )
        if self.bitrate_kbps is not None and self.bitrate_kbps <= 0:
            raise ValueError(f"mount {self.name!r}: bitrate_kbps must be positive")


def server_python() -> str:
    """The interpreter that runs the server: ``$CAMSIM_PYTHON`` or ``/usr/bin/python3``."""
    return os.environ.get("CAMSIM_PYTHON") or DEFAULT_PYTHON


class CameraSimulator:
    """Runs ``camsim/server.py`` as a child process and controls it.

    ``port=0`` lets the first start pick a free port (the server binds port 0
    and reports the port); later restarts keep that port.
    """

    def __init__(
        self,
        mounts: Sequence[MountSpec],
        *,
        port: int = 0,
        user: str | None = None,
        password: str | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        names = [m.name for m in mounts]
        if not names:
            raise ValueError("at least one mount is needed")
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate mount names in {names}")
        if (user is None) != (password is None):
            raise ValueError("user and password go together")
        if not 0 <= port <= 65535:
            raise ValueError(f"bad port {port}")
        self.mounts: tuple[MountSpec, ...] = tuple(mounts)
        self.port: int = port
        self.user = user
        self.password = password
        self.host = host
        self._proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._stderr: collections.deque[str] = collections.deque(maxlen=_STDERR_LINES)
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        """Spawn the server and wait until it listens.

        With a fixed port, a bind failure (the old process's socket not yet
        released) is retried until ``timeout``.
        """
        with self._lock:
            if self._proc is not None:
                if self._proc.poll() is None:
                    raise CamsimError("simulator already started")
                self._reap()  # the server died on its own: start afresh
            deadline = time.monotonic() + timeout
            while True:
                error = self._spawn(deadline)
                if error is None:
                    return
                if self.port == 0 or "cannot listen" not in error or time.monotonic() >= deadline:
                    raise CamsimError(f"camsim server did not start: {error}\n{self.stderr_tail()}")
                time.sleep(0.1)

    def stop(self) -> None:
        """Terminate the server (SIGTERM, SIGKILL after 3 s) and wait. Idempotent."""
        with self._lock:
            self._reap()

    def restart(self) -> None:
        """Stop, then start again on the same port."""
        self.stop()
        self.start()

    def __enter__(self) -> CameraSimulator:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- control -------------------------------------------------------------

    def stall(self, name: str) -> None:
        """Stop the mount's media; its RTSP/TCP connections stay open."""
        self._command(f"stall {self._mount(name)}")

    def unstall(self, name: str) -> None:
        """Let the mount's media flow again."""
        self._command(f"unstall {self._mount(name)}")

    def scene(self, name: str, verb: str) -> None:
        """Change a scene mount: move, halt, freeze, thaw, cover or uncover."""
        if verb not in ("move", "halt", "freeze", "thaw", "cover", "uncover"):
            raise ValueError(f"unknown scene command {verb!r}")
        self._command(f"{verb} {self._mount(name)}")

    def url(self, name: str, *, credentials: bool = True) -> str:
        """``rtsp://[user:password@]host:port/name``."""
        if self.port == 0:
            raise CamsimError("port not known before the first start")
        auth = ""
        if credentials and self.user is not None and self.password is not None:
            auth = f"{quote(self.user, safe='')}:{quote(self.password, safe='')}@"
        return f"rtsp://{auth}{self.host}:{self.port}/{self._mount(name)}"

    def urls(self, *, credentials: bool = True) -> dict[str, str]:
        """Every mount's URL, by mount name."""
        return {m.name: self.url(m.name, credentials=credentials) for m in self.mounts}

    def stderr_tail(self) -> str:
        """The server's last stderr lines (GStreamer warnings), for diagnostics."""
        return "\n".join(self._stderr)

    # -- internals -----------------------------------------------------------

    def _mount(self, name: str) -> str:
        if not any(m.name == name for m in self.mounts):
            raise KeyError(f"no mount {name!r}")
        return name

    def _spawn(self, deadline: float) -> str | None:
        """Start one server process; None once ready, else the error text."""
        args = [
            server_python(),
            str(SERVER_SCRIPT),
            "--address",
            self.host,
            "--port",
            str(self.port),
            "--mounts",
            json.dumps([asdict(m) for m in self.mounts]),
        ]
        if self.user is not None and self.password is not None:
            args += ["--user", self.user, "--password", self.password]
        self._lines = queue.Queue()
        self._stderr.clear()
        try:
            proc = subprocess.Popen(
                args,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                bufsize=1,
            )
        except OSError as exc:
            return f"cannot run {args[0]}: {exc} (set CAMSIM_PYTHON)"
        self._proc = proc
        assert proc.stdout is not None and proc.stderr is not None
        self._threads = [
            threading.Thread(target=self._pump_stdout, args=(proc.stdout,), daemon=True),
            threading.Thread(target=self._pump_stderr, args=(proc.stderr,), daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        # Even past the deadline, give a retried spawn a moment to answer so
        # the caller sees its real error ("cannot listen ..."), not a timeout.
        line = self._next_line(max(_MIN_ANSWER_WAIT, deadline - time.monotonic()))
        if line is not None and line.startswith("ready "):
            self.port = int(line.split()[1])
            return None
        self._reap()
        if line is None:
            return "no 'ready' line before the timeout or the process exited"
        return line

    def _pump_stdout(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def _pump_stderr(self, stream: IO[str]) -> None:
        for line in stream:
            self._stderr.append(line.rstrip("\n"))

    def _next_line(self, timeout: float) -> str | None:
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            return None

    def _command(self, line: str) -> None:
        with self._lock:
            proc = self._proc
            if proc is None or proc.stdin is None or proc.poll() is not None:
                raise CamsimError("simulator is not running")
            try:
                proc.stdin.write(line + "\n")
                proc.stdin.flush()
            except (BrokenPipeError, OSError) as exc:
                raise CamsimError(f"simulator is not running: {exc}") from exc
            answer = self._next_line(_COMMAND_TIMEOUT)
            if answer != "ok":
                raise CamsimError(f"{line!r} failed: {answer or 'no answer'}")

    def _reap(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(_STOP_GRACE)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        for thread in self._threads:
            thread.join(1.0)
        self._threads = []
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
