"""The house holds: each room imports only what lies below it (docs/architecture.md)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Lower first. A module may import its own room and any room of a lower layer;
# rooms of one layer know nothing of each other.
LAYERS: list[set[str]] = [
    {"ingest"},
    {"relay", "relay.config", "relay.db", "relay.refusal"},
    {"relay.media"},
    {"relay.access"},
    {"relay.bus", "relay.webrtc", "relay.record", "relay.analysis"},
    {"relay.peers"},
    {"relay.web"},
    {"relay.app"},
    {"relay.__main__"},
]
SERVER_SIDE = ("aiohttp.web", "aiohttp.web_")  # only web/, app and __main__ may serve HTTP


def room_of(module: str) -> str:
    rooms = {room for layer in LAYERS for room in layer}
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in rooms:
            return ".".join(parts[:n])
    raise AssertionError(f"{module} is in no room: add it to LAYERS and docs/architecture.md")


def layer_of(room: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if room in layer)


def imports(path: Path) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return found


def modules() -> list[tuple[str, Path]]:
    out = []
    for package in ("ingest", "relay"):
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out.append((".".join(parts), path))
    return out


def test_every_import_goes_down_the_house() -> None:
    wrong = []
    for module, path in modules():
        room = room_of(module)
        for line, name in imports(path):
            if name.split(".")[0] not in ("ingest", "relay"):
                if name.startswith(SERVER_SIDE) and layer_of(room) < layer_of("relay.web"):
                    wrong.append(f"{path.relative_to(ROOT)}:{line}: {name} (HTTP server side)")
                continue
            try:
                target = room_of(name)
            except AssertionError:
                continue  # `from relay.x import name`: the module form is checked too
            if target == room:
                continue
            if layer_of(target) >= layer_of(room):
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {room} imports {target}")
    assert not wrong, "imports against the house:\n" + "\n".join(wrong)


def test_the_rule_itself_catches_a_sideways_import() -> None:
    assert layer_of(room_of("relay.bus.bus")) == layer_of(room_of("relay.webrtc.service"))
    assert layer_of(room_of("relay.web.whep")) > layer_of(room_of("relay.webrtc.service"))
    assert room_of("relay.media.hub") == "relay.media"


def test_access_and_the_bus_load_neither_pyav_nor_aiortc() -> None:
    code = (
        "import sys, relay.access.accounts, relay.access.audit, relay.bus.bus, relay.bus.nats;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('av', 'aiortc', 'aioice'));"
        "print(','.join(bad))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "", f"loaded: {out.stdout.strip()}"
