"""Command line: `python -m relay run|check-config|reload|backup|restore|hash-password`
(also the `villagewatch` script). docs/operations.md says how operators use them."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import getpass
import logging
import os
import signal
import ssl
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from relay import logs
from relay.access.passwords import hash_password, hash_token, new_secret
from relay.app import create_app, reload_from
from relay.backup import (
    DB_NAME,
    PID_NAME,
    BackupError,
    DataDirInUse,
    backup,
    hold_data_dir,
    restore,
    running_pid,
)
from relay.config import Config, ConfigError, check_listen, load_config

logger = logging.getLogger("relay")

GIL_SWITCH_INTERVAL = 0.0005  # s; see serve
SAME_SIGNAL_SECONDS = 0.2  # signals closer than this to the first are the same one
SHUTDOWN_SECONDS = 3.0  # requests still open after the feeds and sessions ended
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="villagewatch",
        description="villagewatch, a village surveillance-video node. `COMMAND --help` says"
        " more; docs/operations.md how operators use them.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = _command(commands, "run", "run the node until SIGTERM or Ctrl-C; SIGHUP reloads")
    run.add_argument("--config", default="config.yaml", help="YAML file (default: %(default)s)")
    run.add_argument(
        "--listen", type=_listen_arg, metavar="HOST:PORT", help="overrides node.listen"
    )
    run.add_argument(
        "--log-level", type=str.upper, choices=LOG_LEVELS, default="INFO", help="(default: INFO)"
    )
    run.add_argument(
        "--log-format",
        choices=logs.FORMATS,
        default="auto",
        help="journal: <N> priority prefixes; json: for log shippers; auto (default): "
        "journal under systemd, text in a terminal",
    )
    check = _command(
        commands, "check-config", "validate a config file, start nothing (exit 0 when ok)"
    )
    check.add_argument("file", help="the YAML file to check")
    for name, text in (
        ("reload", "make the running node re-read its config file (SIGHUP to node.pid)"),
        ("backup", "copy the node's database, consistently, while it runs"),
        ("restore", "put a backup in place of a stopped node's database"),
    ):
        sub = _command(commands, name, text)
        sub.add_argument("--config", default="config.yaml", help="YAML file (default: %(default)s)")
        if name != "reload":
            sub.add_argument("file", help="the backup file")
    hasher = _command(
        commands,
        "hash-password",
        "print a password_hash for config.yaml: asks twice on a terminal, else reads a line",
    )
    hasher.add_argument("--token", action="store_true", help="make a node token and its hash")
    args = parser.parse_args(argv)

    if args.command == "check-config":
        return check_config(args.file)
    if args.command == "hash-password":
        return hash_password_command(token=args.token)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        return 1
    if args.command != "run":
        return ops_command(args.command, config, args)
    logs.configure(args.log_format, args.log_level)
    for chatty in ("aioice", "aiortc"):  # a line per ICE check is noise to an operator
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.root.level))
    host, port = _split_listen(args.listen or config.node.listen)
    try:
        with (
            hold_data_dir(Path(config.node.data_dir)),
            asyncio.Runner(loop_factory=_loop_factory()) as runner,
        ):
            runner.run(serve(config, host, port, args.config))
    except DataDirInUse as exc:
        print(exc, file=sys.stderr)
        return 1
    except CannotListen as exc:
        print(f"{exc}; choose another address with --listen HOST:PORT", file=sys.stderr)
        return 1
    return 0


class StopSignal:
    """SIGTERM or Ctrl-C: stop in order; a second one stops at once, whatever is
    open; not one that comes with the first (`timeout` and shells signal the
    process group too)."""

    def __init__(self, stop: asyncio.Event) -> None:
        self.stop = stop
        self.first: float | None = None

    def __call__(self) -> None:
        now = time.monotonic()
        if self.first is not None and now - self.first > SAME_SIGNAL_SECONDS:
            logger.warning("stopping at once")
            os._exit(1)
        if self.first is None:
            self.first = now
        self.stop.set()


class CannotListen(Exception):
    pass


def hash_password_command(*, token: bool) -> int:
    if token:
        secret = new_secret()
        print(f"token (give it to the other node): {secret}")
        print(f"token_hash (put it in config.yaml): {hash_token(secret)}")
        return 0
    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            print("the two passwords differ", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\n")
    if len(password) < 8:
        print("use at least 8 characters", file=sys.stderr)
        return 1
    print(hash_password(password))
    return 0


def ops_command(command: str, config: Config, args: argparse.Namespace) -> int:
    data_dir = Path(config.node.data_dir)
    try:
        if command == "backup":
            size = backup(data_dir / DB_NAME, Path(args.file))
            print(f"{args.file}: {size} bytes, a consistent copy of {data_dir / DB_NAME}")
        elif command == "restore":
            print(f"{restore(Path(args.file), data_dir)}: restored from {args.file}")
        else:
            pid = running_pid(data_dir)
            if pid is None:
                print(f"no node is running on {data_dir} (no live {PID_NAME})", file=sys.stderr)
                return 1
            os.kill(pid, signal.SIGHUP)
            print(f"asked the node (pid {pid}) to re-read its config; its log says how it went")
    except BackupError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


def check_config(path: str) -> int:
    try:
        config = load_config(path)
    except ConfigError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        return 1
    print(
        f"{path}: ok (node {config.node.id}: {len(config.sites)} sites, "
        f"{len(config.cameras)} cameras, {len(config.walls)} walls)"
    )
    return 0


async def serve(config: Config, host: str, port: int, path: str = "") -> None:
    """Run until SIGINT or SIGTERM, then stop every subsystem in order. SIGHUP
    re-reads the file and applies it (relay.app.reload_from)."""
    ssl_context = None
    if config.node.tls is not None:
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(config.node.tls.cert, config.node.tls.key)
    app = create_app(config)
    runner = web.AppRunner(
        app, handle_signals=False, access_log=None, shutdown_timeout=SHUTDOWN_SECONDS
    )
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    on_stop_signal = StopSignal(stop)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_stop_signal)
    reloads: set[asyncio.Task[bool]] = set()
    if path:

        def reload() -> None:
            task = loop.create_task(reload_from(app, path))
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        loop.add_signal_handler(signal.SIGHUP, reload)
    try:
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
        try:
            await site.start()
        except OSError as exc:
            why = os.strerror(exc.errno).lower() if exc.errno else str(exc)
            raise CannotListen(f"cannot listen on {host}:{port}: {why}") from None
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
        scheme = "https" if ssl_context else "http"
        pid_file = _write_pid(Path(config.node.data_dir))  # before it says it is ready
        logger.info("node %s: open %s://%s:%d/ in a browser", config.node.id, scheme, shown, port)
        if config.node.login_hint:
            logger.info("log in: %s", config.node.login_hint)
        # What startup made lives about as long as the node (a config a reload
        # replaces stays frozen: a few kB each time): out of the collector's way, a
        # full collection took 3 ms instead of 40-60 ms in bench/bus_fanout.py.
        gc.collect()
        gc.freeze()
        # The SQLite thread and each camera's demux thread give the GIL up for every
        # statement or read; at Python's default 5 ms switch interval each can then
        # wait that long for a busy loop to hand it back, and every commit with it
        # (README, "Alert bus fan-out").
        sys.setswitchinterval(GIL_SWITCH_INTERVAL)
        try:
            await stop.wait()
        finally:
            with contextlib.suppress(OSError):
                if pid_file.read_text().strip() == str(os.getpid()):
                    pid_file.unlink()
        logger.info("stopping")
    finally:
        await runner.cleanup()


def _write_pid(data_dir: Path) -> Path:
    """For `python -m relay reload`: which process to signal."""
    pid_file = data_dir / PID_NAME
    data_dir.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(f"{os.getpid()}\n")
    return pid_file


def _command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], name: str, text: str
) -> argparse.ArgumentParser:
    """A sub-command whose own --help says what it does, as the list does."""
    return commands.add_parser(name, help=text, description=text)


def _listen_arg(value: str) -> str:
    try:
        return check_listen(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _split_listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


def _loop_factory() -> type[asyncio.AbstractEventLoop] | None:
    with contextlib.suppress(ImportError):
        import uvloop

        return uvloop.Loop
    return None


if __name__ == "__main__":
    sys.exit(main())
