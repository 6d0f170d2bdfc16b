"""What the compose and monitoring tests read from the shipped files."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "operations.md"
METRIC = re.compile(r"\b((?:villagewatch|process)_[a-z_]+)")


def documented_metrics() -> set[str]:
    """The metric names of docs/operations.md's table (counters with _total)."""
    table = DOCS.read_text(encoding="utf-8").split("## Metrics", 1)[1].split("## ", 1)[0]
    return set(METRIC.findall(table))


def command(service: dict[str, Any]) -> list[str]:
    value = service.get("command", [])
    return shlex.split(value) if isinstance(value, str) else [str(arg) for arg in value]


def option(args: list[str], name: str) -> str:
    assert name in args, f"{name} missing from {args}"
    return args[args.index(name) + 1]


def bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of each bind mount (named volumes left out)."""
    mounts: dict[str, Path] = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            source, target = volume.get("source", ""), volume["target"]
            if volume.get("type") != "bind":
                continue
        else:
            source, target = volume.split(":")[:2]
            if not source.startswith((".", "/")):
                continue
        mounts[target] = (ROOT / source).resolve()
    return mounts
