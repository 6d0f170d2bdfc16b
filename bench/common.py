"""What the benchmarks in bench/ share: the event loop, the machine's facts, CPU time,
percentiles, the tables they print, and the child processes they run.

The scripts import it as `common` (Python puts a script's own folder on sys.path).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import shlex
import socket
import subprocess
import sys
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, Self, TypeVar

import psutil

HOST = "127.0.0.1"  # every server, client and port of a benchmark
PY_SPY = Path(sys.executable).with_name("py-spy")


# --- the command line and the header ---------------------------------------------


def argument_parser(
    doc: str | None,
    loads: str,
    default: str,
    convert: Callable[[str], object],
    what: str,
    *,
    window: str = "measured window, s",
) -> argparse.ArgumentParser:
    """The options every benchmark starts with: `loads` (e.g. "--counts"), a comma
    separated list of the loads to run in turn (each item read by `convert`, help text
    `what`), and --seconds, the window measured at each load (default 10, help text
    `window`). The description is the first line of the script's docstring `doc`."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    parser.add_argument(
        loads,
        default=default,
        type=lambda text: [convert(n) for n in text.split(",")],
        help=f"{what}, comma separated (default %(default)s)",
    )
    parser.add_argument("--seconds", type=float, default=10.0, help=window)
    return parser


def command_line() -> str:
    """How this script was run, as a shell line: "$ python bench/x.py --seconds 3"."""
    return "$ " + shlex.join([Path(sys.executable).name, *sys.argv])


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop for asyncio.Runner when it is installed; None (asyncio's) if not."""
    with contextlib.suppress(ImportError):
        import uvloop

        return uvloop.new_event_loop
    return None


def loop_name() -> str:
    """The event loop loop_factory() gives, for a header: "uvloop" or "asyncio"."""
    return "uvloop" if loop_factory() else "asyncio"


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (else platform.processor(), or
    "unknown CPU")."""
    model = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError, StopIteration):
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    return model


def machine_facts() -> str:
    """Cores, CPU, memory, kernel and Python, for a header: "4 cores (…), 16 GiB,
    Linux 6.1.0, Python 3.11.2"."""
    return (
        f"{os.cpu_count()} cores ({cpu_model()}), {psutil.virtual_memory().total / 2**30:.0f}"
        f" GiB, Linux {platform.release()}, Python {platform.python_version()}"
    )


# --- CPU time ----------------------------------------------------------------------


def machine_cpu() -> float:
    """CPU seconds every core of the machine has been busy, since boot."""
    times = psutil.cpu_times()
    return float(sum(times)) - float(times.idle) - float(getattr(times, "iowait", 0.0))


def cpu_seconds(proc: psutil.Process | None, *, system_only: bool = False) -> float:
    """CPU seconds a process has used (user + system, or system alone); 0 for no
    process or one that has ended."""
    if proc is None:
        return 0.0
    with contextlib.suppress(psutil.NoSuchProcess):
        times = proc.cpu_times()
        return float(times.system) + (0.0 if system_only else float(times.user))
    return 0.0


def percent(seconds: float, wall: float) -> float:
    """CPU seconds used over `wall` seconds as % of one core."""
    return 100 * seconds / wall


def others(machine: float, ours: Iterable[float]) -> float:
    """What other processes (other users' work) took: the machine's busy CPU less each
    of ours, in the unit given (seconds, or % of one core). Sampling at slightly
    different moments can make it a little negative: see others_cell."""
    return machine - sum(ours)


def others_cell(pct: float) -> str:
    """An "others %" table cell: whole %, a negative (sampling skew) shown as 0."""
    return f"{max(0.0, pct):.0f}"


# --- statistics --------------------------------------------------------------------


class _Ordered(Protocol):
    def __lt__(self, other: Any, /) -> bool: ...


T = TypeVar("T", bound=_Ordered)


def nearest_rank(p: float, count: int) -> int:
    """The 1-based rank of the p-th percentile of `count` values, by nearest rank: of
    10 values p95 is the 10th, of 50 the 48th."""
    return max(1, math.ceil(p / 100 * count))


def percentile(values: Sequence[T], p: float) -> T:
    """The p-th percentile of values (not empty), by nearest rank."""
    return sorted(values)[nearest_rank(p, len(values)) - 1]


# --- the report --------------------------------------------------------------------


def table(rows: Sequence[tuple[str, ...]], left: Collection[int] = ()) -> Iterator[str]:
    """The lines of a text table: rows[0] is the header, underlined with dashes; the
    columns numbered in `left` are aligned left, the others right."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for n, r in enumerate(rows):
        yield "  ".join(
            cell.ljust(w) if i in left else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(r, widths, strict=True))
        )
        if n == 0:
            yield "  ".join("-" * w for w in widths)


# --- servers and child processes ---------------------------------------------------


def free_port() -> int:
    """A TCP port on HOST that nobody listens on (at the moment of asking)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def bearer(token: str) -> dict[str, str]:
    """The HTTP header that logs in with a Bearer token."""
    return {"Authorization": f"Bearer {token}"}


def relay_run(config: Path, port: int) -> list[str]:
    """The command line of a villagewatch node with this config, listening on HOST."""
    listen = f"{HOST}:{port}"
    return [sys.executable, "-m", "relay", "run", "--config", str(config), "--listen", listen]


def split_evenly(count: int, most: int) -> list[int]:
    """`count` things in as few groups of at most `most` as can be, as even as can be
    (the viewers or subscribers each child process runs)."""
    groups = max(1, math.ceil(count / most))
    return [count // groups + (i < count % groups) for i in range(groups)]


def say(message: dict[str, Any]) -> None:
    """A child's report to the orchestrator: one JSON line on stdout (see Child.expect)."""
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def read_command() -> str:
    """A child's next command from the orchestrator: a line of stdin, stripped ('' once
    the orchestrator closed our stdin, or is gone)."""
    line: str = await asyncio.to_thread(sys.stdin.readline)
    return line.strip()


def log_tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log file, for an error message ('' if it cannot be read)."""
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


async def stop_process(
    proc: asyncio.subprocess.Process, within: float, *, terminate: bool = True
) -> None:
    """Ends a process of ours: SIGTERM (unless `terminate` is False: it was asked some
    other way), then SIGKILL if it has not ended within `within` seconds."""
    if proc.returncode is not None:
        return
    if terminate:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
    try:
        async with asyncio.timeout(within):
            await proc.wait()
    except TimeoutError:
        proc.kill()
        await proc.wait()


class Child:
    """A process of ours that takes commands on stdin (read_command) and reports in
    JSON lines on stdout (say); its stderr goes to `log`."""

    def __init__(self, proc: asyncio.subprocess.Process, name: str, log: Path) -> None:
        self.proc = proc
        self.name = name
        self.log = log
        self.ps = psutil.Process(proc.pid)

    @classmethod
    async def start(
        cls,
        args: Sequence[str],
        name: str,
        log: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Self:
        with log.open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                *args,
                env=env,
                cwd=cwd,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
            )
        return cls(proc, name, log)

    def send(self, line: str) -> None:
        """A command line to the child (lost if it has gone)."""
        assert self.proc.stdin is not None
        with contextlib.suppress(OSError):
            self.proc.stdin.write(line.encode() + b"\n")

    async def expect(self, event: str, within: float) -> dict[str, Any]:
        """The child's next report whose "event" is `event`, passing over any other
        line; RuntimeError if the child ends first, TimeoutError after `within` s."""
        assert self.proc.stdout is not None
        async with asyncio.timeout(within):
            while line := await self.proc.stdout.readline():
                with contextlib.suppress(ValueError):
                    message: dict[str, Any] = json.loads(line)
                    if message.get("event") == event:
                        return message
        raise RuntimeError(f"{self.name} ended before {event!r}:\n{log_tail(self.log)}")

    async def stop(self, within: float = 10.0) -> None:
        """Closes its stdin, then stop_process."""
        if self.proc.stdin is not None and not self.proc.stdin.is_closing():
            self.proc.stdin.close()
        await stop_process(self.proc, within)


def py_spy_record(
    pid: int, out: Path, duration: int, *, rate: int = 100, threads: bool = False
) -> psutil.Popen:
    """Starts `py-spy record` of a process for `duration` s, in raw (collapsed stack)
    format, into `out`; end it with wait_or_kill."""
    return psutil.Popen(
        [
            str(PY_SPY),
            "record",
            "--nonblocking",
            *(["--threads"] if threads else []),
            "--format",
            "raw",
            "--rate",
            str(rate),
            "--duration",
            str(duration),
            "--pid",
            str(pid),
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_or_kill(proc: psutil.Popen, within: float) -> None:
    """Waits up to `within` s for a (psutil) process of ours to end, then kills it."""
    with contextlib.suppress(psutil.TimeoutExpired):
        proc.wait(within)
    if proc.is_running():
        proc.kill()
        proc.wait()
