"""Run the camera simulator by hand: ``python -m camsim --count 4``.

Prints every mount's URL and serves until Ctrl-C. The first ``--h265`` mounts
are H.265, the next ``--high`` mounts H.264 High profile, the rest H.264
Constrained Baseline. While it runs, type ``stall NAME`` / ``unstall NAME`` on
stdin to stall a mount.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from . import CameraSimulator, CamsimError, MountSpec


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 640x360, not {text!r}") from None
    if width <= 0 or height <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive, not {text!r}")
    return width, height


def build_mounts(args: argparse.Namespace) -> list[MountSpec]:
    width, height = args.size
    mounts = []
    for index in range(args.count):
        if index < args.h265:
            codec, profile = "h265", "constrained-baseline"
        elif index < args.h265 + args.high:
            codec, profile = "h264", "high"
        else:
            codec, profile = "h264", "constrained-baseline"
        mounts.append(
            MountSpec(
                name=f"cam{index}",
                codec=codec,
                profile=profile,
                width=width,
                height=height,
                fps=args.fps,
                keyframe_interval=args.keyframe_interval,
                audio="pcma" if args.audio else None,
            )
        )
    return mounts


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m camsim", description="Serve simulated RTSP cameras."
    )
    parser.add_argument(
        "--count", type=int, default=4, help="number of mounts cam0..camN-1 (default 4)"
    )
    parser.add_argument(
        "--port", type=int, default=8554, help="TCP port on 127.0.0.1, 0 = any (default 8554)"
    )
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument(
        "--size", type=_size, default=(640, 360), help="WIDTHxHEIGHT (default 640x360)"
    )
    parser.add_argument("--keyframe-interval", type=float, default=2.0, help="seconds (default 2)")
    parser.add_argument(
        "--h265", type=int, default=0, metavar="N", help="the first N mounts are H.265"
    )
    parser.add_argument(
        "--high", type=int, default=0, metavar="N", help="the next N mounts are H.264 High"
    )
    parser.add_argument(
        "--audio", action="store_true", help="add G.711 A-law (PCMA) audio to every mount"
    )
    parser.add_argument("--user")
    parser.add_argument("--password")
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be at least 1")
    if args.h265 < 0 or args.high < 0 or args.h265 + args.high > args.count:
        parser.error("--h265 + --high must be between 0 and --count")
    if (args.user is None) != (args.password is None):
        parser.error("--user and --password go together")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sim = CameraSimulator(
        build_mounts(args), port=args.port, user=args.user, password=args.password
    )
    done = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        sim.start()
    except CamsimError as exc:
        print(exc, file=sys.stderr)
        return 1
    try:
        for url in sim.urls().values():
            print(url, flush=True)
        print(
            "serving; Ctrl-C to stop (stdin: 'stall NAME' / 'unstall NAME')",
            file=sys.stderr,
            flush=True,
        )
        threading.Thread(target=_control, args=(sim, done), daemon=True).start()
        while not done.wait(0.5):
            if not sim.running:
                print("camsim server exited:\n" + sim.stderr_tail(), file=sys.stderr)
                return 1
    finally:
        sim.stop()
    return 0


def _control(sim: CameraSimulator, done: threading.Event) -> None:
    for line in sys.stdin:
        verb, _, name = line.strip().partition(" ")
        try:
            if verb == "stall":
                sim.stall(name.strip())
            elif verb == "unstall":
                sim.unstall(name.strip())
            elif verb in ("quit", "exit"):
                break
            elif verb:
                print("commands: stall NAME, unstall NAME, quit", file=sys.stderr)
                continue
            else:
                continue
            print("ok", file=sys.stderr, flush=True)
        except (KeyError, CamsimError) as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
    else:
        # stdin closed (e.g. run in the background with </dev/null): keep serving.
        return
    done.set()


if __name__ == "__main__":
    sys.exit(main())
