"""Writes docs/configuration.md from the config models' fields and descriptions.

    python scripts/config_docs.py          # rewrite the file
    python scripts/config_docs.py --check  # exit 1 if the file is stale

tests/test_config_docs.py fails when the file and the models differ.
"""

from __future__ import annotations

import sys
import types
import typing
from pathlib import Path
from typing import Any

from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from relay.config import Config

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "docs" / "configuration.md"

HEAD = """# Configuration

A node reads one YAML file (`python -m relay run --config FILE`; `python -m relay
check-config FILE` validates it and starts nothing). Unknown keys are errors;
`${NAME}` anywhere in a value is replaced by the environment variable `NAME` (an
unset one is an error), so passwords need not be written in the file. Errors name
the file, the line and the key path: `node.yaml:13: cameras[0].site: unknown site
'west'`.

The shipped `config.yaml` is a demo village with built-in synthetic cameras.
Camera URLs take `rtsp://` (always over TCP), `rtsps://`, `http(s)://` or
`synthetic://WxH?fps=15&keyframe_interval=2&bitrate=800`.

This page is generated from the config models (`relay/config.py`) by
`python scripts/config_docs.py`; edit the models' descriptions, not this page.

## A real deployment, in short

```yaml
node:
  id: dongcun                  # letters, digits, - and _
  name: 东村监控室
  listen: 0.0.0.0:8080
  data_dir: /var/lib/villagewatch     # SQLite files: sessions, tokens, audit
  login_hint: "Accounts: ask the station's IT desk"

users:
  - {name: wang, role: operator, sites: [dongcun], password_hash: "scrypt$16384$8$1$..."}
  - {name: li, role: officer, sites: [chengguan], password_hash: "scrypt$16384$8$1$..."}

sites:                          # a tree: station -> villages (deeper is fine)
  - {id: chengguan, name: 城关派出所}
  - {id: dongcun, name: 东村, parent: chengguan}

cameras:
  - id: east-gate
    name: 东村村口
    site: dongcun
    main: rtsp://admin:${CAM_PASS}@10.0.0.21:554/Streaming/Channels/101
    sub: rtsp://admin:${CAM_PASS}@10.0.0.21:554/Streaming/Channels/102
    always_on: true             # false: opened at the first viewer ...
    idle_timeout: 30            # ... and closed this many seconds after the last
    connect_timeout: 5          # seconds for the RTSP handshake
    stall_timeout: 5            # no video this long: "stalled", reconnect
    backoff_max: 10             # reconnect delay cap (exponential, jittered)

walls:
  - {id: room, site: dongcun, layout: 3x3, cameras: [east-gate], dwell: 20}

bus:
  offline_debounce: 10
  nats:                           # leave out: alerts stay on this node
    servers: ["nats://10.1.0.5:4222"]
    user: dongcun
    password: "${NATS_PASS}"
    stream: VILLAGEWATCH

webrtc:
  host_addresses: [192.168.1.10]  # the address browsers reach this node at (NAT!)
  udp_ports: 40000-40999          # media ports to open in the firewall; none: any
  ice_servers:                    # none by default; nothing public is ever contacted
    - {urls: ["turn:turn.example.net:3478"], username: vw, credential: "${TURN_PASS}"}
  max_viewers: 200
  max_viewers_per_camera: 50
  connect_timeout: 15             # a viewer that never connects is freed after this
```

Camera URLs take `rtsp://` (always over TCP), `rtsps://`, `http(s)://` (an HTTP
stream) or `synthetic://WxH?fps=15&keyframe_interval=2&bitrate=800` (add `&loop=4` to
encode 4 s once and send them round and round: a camera that costs next to no CPU,
for benchmarks).
H.264 passes through to browsers untouched (Constrained Baseline, Main and High);
H.265 and H.264 with B-frames are transcoded once per camera, only while watched.
G.711 audio passes through; AAC is left out (logged).

A camera's state is `starting`, `online`, `stalled` (connected, no video),
`offline` (with the reason: "wrong user or password", "no answer from
10.0.0.21:554", "connection refused by ...", "camera closed the stream") or `idle`
(on-demand, nobody watching). Offline cameras are retried for ever.

Open the node's TCP port (8080) and the UDP range of `webrtc.udp_ports` to the
browsers: each viewer's media uses one UDP port of that range.

## Every key
"""


BOUNDS = ((Ge, ">=", "ge"), (Gt, ">", "gt"), (Le, "<=", "le"), (Lt, "<", "lt"))


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not TARGET.exists() or TARGET.read_text(encoding="utf-8") != text:
            print(f"{TARGET.relative_to(ROOT)} is stale: run python scripts/config_docs.py")
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    return 0


def render() -> str:
    out = [HEAD]
    for name, field in Config.model_fields.items():
        model, many = _model_of(field.annotation)
        out.append(f"\n## `{name}`{' (a list)' if many else ''}\n")
        if field.description:
            out.append(f"\n{field.description}.\n")
        rows = _rows(model, name + ("[]" if many else "")) if model else [_row(name, field)]
        out.append("\n| key | type | default | meaning |\n| --- | --- | --- | --- |\n")
        out.extend(rows)
    return "".join(out)


def _rows(model: type[BaseModel], prefix: str) -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        path = f"{prefix}.{name}"
        rows.append(_row(path, field))
        inner, many = _model_of(field.annotation)
        if inner is not None:
            rows.extend(_rows(inner, path + ("[]" if many else "")))
    return rows


def _row(path: str, field: FieldInfo) -> str:
    meaning = field.description or ""
    limits = _limits(field)
    if limits:
        meaning = f"{meaning} ({limits})" if meaning else limits
    return f"| `{path}` | {_type(field.annotation)} | {_default(field)} | {meaning} |\n"


def _model_of(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The model a field holds (itself, in a list, or optional), and whether a list."""
    for arg in (annotation, *typing.get_args(annotation)):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg, False
        if typing.get_origin(arg) is list:
            inner = typing.get_args(arg)[0]
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                return inner, True
    return None, False


def _type(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin is typing.Annotated:
        return _type(args[0])
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type(a) for a in args) + (
            " or none" if type(None) in typing.get_args(annotation) else ""
        )
    if origin is list:
        return f"list of {_type(args[0])}"
    if origin is dict:
        return f"map of {_type(args[0])} to {_type(args[1])}"
    if origin is typing.Literal:
        return " / ".join(f"`{a}`" for a in typing.get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    if isinstance(annotation, type):
        return {"str": "text", "int": "integer", "float": "number", "bool": "true/false"}.get(
            annotation.__name__, annotation.__name__
        )
    return str(annotation)


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
        return "`[]`" if value == [] else "(its defaults)" if isinstance(value, BaseModel) else ""
    if field.default is PydanticUndefined:
        return "required"
    if field.default is None:
        return "none"
    if isinstance(field.default, BaseModel):
        return "(its defaults)"
    if field.default == "":
        return '`""`'
    if isinstance(field.default, bool):
        return f"`{str(field.default).lower()}`"
    return f"`{field.default}`"


def _limits(field: FieldInfo) -> str:
    words = []
    for item in field.metadata:
        for kind, say, attr in BOUNDS:
            if isinstance(item, kind):
                words.append(f"{say} {getattr(item, attr)}")
        if isinstance(item, MinLen) and item.min_length:
            words.append(f"at least {item.min_length} long")
        if isinstance(item, MaxLen):
            words.append(f"at most {item.max_length} long")
    return ", ".join(words)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
