"""The node's one YAML file: strict models, ${ENV} secrets, errors with file:line.

`load_config(path)` returns a validated `Config` or raises `ConfigError` whose
`problems` each read `FILE:LINE: key.path: what is wrong`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from ingest.state import SourceSettings

Loc = tuple[str | int, ...]
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
CAMERA_SCHEMES = ("rtsp", "rtsps", "http", "https", "synthetic")
LAYOUTS = ("1", "2x2", "3x3", "4x4", "5x5", "1+5", "1+7", "1+12")

Id = Annotated[str, Field(pattern=ID_PATTERN, description="letters, digits, - and _")]
# A camera of a peer node is known on this node as PEER.CAMERA (docs/cascade.md).
CAMERA_REF_PATTERN = r"^([A-Za-z0-9][A-Za-z0-9_-]{0,63}\.)?[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
CameraRef = Annotated[
    str, Field(pattern=CAMERA_REF_PATTERN, description="a camera id, or PEER.CAMERA for a peer's")
]


class ConfigError(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _listen(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("must be HOST:PORT, e.g. 0.0.0.0:8080")
    return value


def _camera_url(value: str) -> str:
    scheme = urlsplit(value).scheme
    if scheme not in CAMERA_SCHEMES:
        raise ValueError(
            f"URL must start with one of {', '.join(s + '://' for s in CAMERA_SCHEMES)}"
        )
    return value


ListenAddress = Annotated[str, AfterValidator(_listen)]
CameraUrl = Annotated[str, AfterValidator(_camera_url)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsConfig(Strict):
    cert: str = Field(description="PEM certificate chain file")
    key: str = Field(description="PEM private key file")


class NodeConfig(Strict):
    id: Id
    name: str = Field(min_length=1, max_length=100)
    listen: ListenAddress = "127.0.0.1:8080"
    data_dir: str = Field("var", description="where the node keeps its SQLite files")
    tls: TlsConfig | None = None
    login_hint: str = Field("", max_length=500, description="shown on the login page and at start")


Role = Literal["admin", "officer", "operator", "viewer", "node"]


def _password_hash(value: str) -> str:
    parts = value.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise ValueError("must come from `python -m relay hash-password` (scrypt$...)")
    return value


def _token_hash(value: str) -> str:
    if not re.fullmatch(r"sha256\$[0-9a-f]{64}", value):
        raise ValueError("must come from `python -m relay hash-password --token` (sha256$...)")
    return value


class UserConfig(Strict):
    name: Id
    role: Role
    sites: list[Id] = Field(default_factory=list, description="sees these sites' subtrees")
    password_hash: Annotated[str, AfterValidator(_password_hash)] | None = None
    token_hash: Annotated[str, AfterValidator(_token_hash)] | None = Field(
        None, description="a fixed Bearer token, for another node"
    )


class AuthConfig(Strict):
    session_hours: float = Field(12.0, gt=0, le=24 * 30)
    login_window_minutes: float = Field(15.0, gt=0, le=24 * 60)
    login_failures_per_address: int = Field(10, ge=1, le=1000)
    login_failures_per_user: int = Field(5, ge=1, le=1000, description="then slowed down")


class AuditConfig(Strict):
    retention_days: int = Field(365, ge=1, le=3650)


class SiteConfig(Strict):
    id: Id
    name: str = Field(min_length=1, max_length=100)
    parent: Id | None = Field(None, description="the site above this one; none for a root")


class CameraConfig(Strict):
    id: Id
    name: str = Field(min_length=1, max_length=100)
    site: Id
    main: CameraUrl
    sub: CameraUrl | None = None
    always_on: bool = Field(True, description="false: opened at the first viewer")
    idle_timeout: float = Field(30.0, ge=0, le=3600, description="on-demand close delay, s")
    connect_timeout: float = Field(5.0, gt=0, le=60)
    stall_timeout: float = Field(5.0, gt=0, le=120, description="no data this long: stalled")
    backoff_max: float = Field(10.0, ge=0.5, le=600, description="reconnect delay cap, s")

    def source_settings(self) -> SourceSettings:
        return SourceSettings(
            connect_timeout=self.connect_timeout,
            stall_timeout=self.stall_timeout,
            backoff_max=self.backoff_max,
        )


class WallConfig(Strict):
    id: Id
    name: str = Field("", max_length=100)
    site: Id
    layout: Literal[LAYOUTS] = "3x3"  # type: ignore[valid-type]
    cameras: list[CameraRef] = Field(default_factory=list)
    dwell: float = Field(20.0, ge=3, le=3600, description="tour: seconds per page")


def _ice_url(value: str) -> str:
    if not value.startswith(("stun:", "turn:", "turns:")):
        raise ValueError("must start with stun:, turn: or turns:")
    return value


class IceServerConfig(Strict):
    urls: list[Annotated[str, AfterValidator(_ice_url)]] = Field(min_length=1)
    username: str | None = None
    credential: str | None = None


def _port_range(value: str) -> str:
    first, sep, last = value.partition("-")
    if not (sep and first.isdigit() and last.isdigit() and 1024 <= int(first) <= int(last) < 65536):
        raise ValueError("must be FIRST-LAST, e.g. 40000-40999 (ports 1024 to 65535)")
    return value


class WebRtcConfig(Strict):
    udp_ports: Annotated[str, AfterValidator(_port_range)] | None = Field(
        None, description="FIRST-LAST: the UDP ports WebRTC media uses; none: any free port"
    )
    host_addresses: list[str] = Field(
        default_factory=list,
        description="addresses offered as ICE host candidates; empty: every interface",
    )
    ice_servers: list[IceServerConfig] = Field(
        default_factory=list, description="STUN/TURN servers; none by default"
    )
    max_viewers: int = Field(200, ge=1, le=10000, description="WHEP sessions on this node")
    max_viewers_per_camera: int = Field(50, ge=1, le=10000)
    connect_timeout: float = Field(15.0, gt=0, le=120, description="ICE must connect within")


def _nats_url(value: str) -> str:
    if not value.startswith(("nats://", "tls://")):
        raise ValueError("must start with nats:// or tls://")
    return value


class NatsConfig(Strict):
    servers: list[Annotated[str, AfterValidator(_nats_url)]] = Field(min_length=1)
    user: str | None = None
    password: str | None = None
    token: str | None = None
    stream: str = Field("VILLAGEWATCH", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    max_age_days: float = Field(7.0, gt=0, le=365, description="how long the network keeps events")
    replicas: int = Field(
        1, ge=1, le=5, description="copies of the stream in a NATS cluster (3 for 3 servers)"
    )


class BusConfig(Strict):
    offline_debounce: float = Field(
        10.0, ge=0, le=3600, description="a camera down this long raises camera.offline"
    )
    nats: NatsConfig | None = Field(None, description="none: this node's alerts stay local")


def _peer_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        raise ValueError("must be http(s)://HOST:PORT of the peer node, without a path")
    return value.rstrip("/")


class PeerConfig(Strict):
    id: Id = Field(description="the peer's name here: its cameras are PEER.CAMERA")
    url: Annotated[str, AfterValidator(_peer_url)] = Field(description="http(s)://HOST:PORT")
    token: str = Field(min_length=16, description="the peer's node-user token, e.g. ${TOKEN}")
    site: Id | None = Field(None, description="where its sites hang in this tree; none: the root")
    poll: float = Field(3.0, ge=0.5, le=300, description="catalog refresh, s")
    idle_timeout: float = Field(30.0, ge=0, le=3600, description="a pulled stream's close delay, s")


class Config(Strict):
    node: NodeConfig
    sites: list[SiteConfig] = Field(min_length=1)
    cameras: list[CameraConfig] = Field(default_factory=list)
    walls: list[WallConfig] = Field(default_factory=list)
    webrtc: WebRtcConfig = WebRtcConfig()
    users: list[UserConfig] = Field(default_factory=list)
    auth: AuthConfig = AuthConfig()
    audit: AuditConfig = AuditConfig()
    bus: BusConfig = BusConfig()
    peers: list[PeerConfig] = Field(
        default_factory=list, description="nodes whose cameras this node shows (cascade)"
    )

    def camera(self, camera_id: str) -> CameraConfig | None:
        return next((c for c in self.cameras if c.id == camera_id), None)

    def wall(self, wall_id: str) -> WallConfig | None:
        return next((w for w in self.walls if w.id == wall_id), None)

    def ancestors(self, site_ids: frozenset[str]) -> frozenset[str]:
        """Every site above the given ones."""
        parents = {s.id: s.parent for s in self.sites}
        found: set[str] = set()
        for site_id in site_ids:
            parent = parents.get(site_id)
            while parent is not None and parent not in found:
                found.add(parent)
                parent = parents.get(parent)
        return frozenset(found)

    def subtree(self, site_ids: list[str]) -> frozenset[str]:
        """The sites named and every site below them."""
        children: dict[str | None, list[str]] = {}
        for site in self.sites:
            children.setdefault(site.parent, []).append(site.id)
        found: set[str] = set()
        todo = [s for s in site_ids if s in {x.id for x in self.sites}]
        while todo:
            site_id = todo.pop()
            if site_id not in found:
                found.add(site_id)
                todo.extend(children.get(site_id, []))
        return frozenset(found)


def load_config(path: str | Path) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: cannot read: not UTF-8 text"]) from None
    return parse_config(text, str(path))


def parse_config(text: str, filename: str = "<config>") -> Config:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        raise ConfigError([f"{filename}:{line}: syntax error: {exc.problem}"]) from None
    if not isinstance(root, yaml.MappingNode):
        raise ConfigError([f"{filename}:1: the file must be a mapping of sections"])
    tree = _Tree()
    data = tree.plain(root)
    problems = tree.problems
    if not problems:
        try:
            config = Config.model_validate(data)
        except ValidationError as exc:
            problems = [(tuple(e["loc"]), _message(e)) for e in exc.errors()]
        else:
            problems = list(cross_check(config))
    if problems:
        raise ConfigError(
            [f"{filename}:{_line(loc, tree.lines)}: {_path(loc)}: {m}" for loc, m in problems]
        )
    return config


def _message(error: Mapping[str, Any]) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key"
    if error["type"] == "missing":
        return "required key is missing"
    return str(error["msg"]).removeprefix("Value error, ")


class _Tree:
    """Plain data from a YAML node tree, with each key's line and ${ENV} expanded."""

    def __init__(self) -> None:
        self.lines: dict[Loc, int] = {}
        self.problems: list[tuple[Loc, str]] = []
        self._constructor = yaml.SafeLoader("")

    def plain(self, node: yaml.Node, loc: Loc = ()) -> Any:
        self.lines.setdefault(loc, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = str(key_node.value)
                self.lines[(*loc, key)] = key_node.start_mark.line + 1
                if key in out:
                    self.problems.append(((*loc, key), "duplicate key"))
                out[key] = self.plain(value_node, (*loc, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.plain(n, (*loc, i)) for i, n in enumerate(node.value)]
        value = self._constructor.construct_object(node, deep=True)
        if not isinstance(value, str):
            return value
        missing = [name for name in _ENV.findall(value) if name not in os.environ]
        if missing:
            self.problems.append((loc, f"environment variable {missing[0]} is not set"))
        return _ENV.sub(lambda m: os.environ.get(m.group(1), ""), value)


def cross_check(config: Config) -> Iterator[tuple[Loc, str]]:
    """What one model cannot see: references, duplicates, the site tree's shape."""
    yield from _duplicates(config)
    yield from _site_tree(config)
    yield from _references(config)


def _duplicates(config: Config) -> Iterator[tuple[Loc, str]]:
    sections = (("sites", "id"), ("cameras", "id"), ("walls", "id"), ("users", "name"))
    for section, key in (*sections, ("peers", "id")):
        seen: set[str] = set()
        for i, item in enumerate(getattr(config, section)):
            value = getattr(item, key)
            if value in seen:
                yield (section, i, key), f"duplicate {key} {value!r}"
            seen.add(value)


def _site_tree(config: Config) -> Iterator[tuple[Loc, str]]:
    sites = {s.id: s for s in config.sites}
    for i, site in enumerate(config.sites):
        if site.parent is not None and site.parent not in sites:
            yield ("sites", i, "parent"), f"unknown site {site.parent!r}"
        elif _in_cycle(site.id, sites):
            yield ("sites", i, "parent"), f"site {site.id!r} is its own ancestor (a cycle)"


def _references(config: Config) -> Iterator[tuple[Loc, str]]:
    sites = {s.id for s in config.sites}
    cameras = {c.id for c in config.cameras}
    peers = {p.id for p in config.peers}
    yield from _peer_sites(config, sites)
    for i, cam in enumerate(config.cameras):
        if cam.site not in sites:
            yield ("cameras", i, "site"), f"unknown site {cam.site!r}"
    for i, wall in enumerate(config.walls):
        if wall.site not in sites:
            yield ("walls", i, "site"), f"unknown site {wall.site!r}"
        for j, cam_id in enumerate(wall.cameras):
            problem = _unknown_camera(cam_id, cameras, peers)
            if problem:
                yield ("walls", i, "cameras", j), problem
    for i, user in enumerate(config.users):
        if user.password_hash is None and user.token_hash is None:
            yield ("users", i), "needs a password_hash or a token_hash"
        if user.role != "admin" and not user.sites:
            yield ("users", i, "sites"), f"role {user.role} needs at least one site"
        for j, site_id in enumerate(user.sites):
            if site_id not in sites:
                yield ("users", i, "sites", j), f"unknown site {site_id!r}"


def _unknown_camera(cam_id: str, cameras: set[str], peers: set[str]) -> str | None:
    """A peer's camera (PEER.CAMERA) is known once the peer tells; its peer must be."""
    peer, dot, _ = cam_id.partition(".")
    if dot:
        return None if peer in peers else f"unknown peer {peer!r}"
    return None if cam_id in cameras else f"unknown camera {cam_id!r}"


def _peer_sites(config: Config, sites: set[str]) -> Iterator[tuple[Loc, str]]:
    for i, peer in enumerate(config.peers):
        if peer.site is not None and peer.site not in sites:
            yield ("peers", i, "site"), f"unknown site {peer.site!r}"


def _in_cycle(site_id: str, sites: Mapping[str, SiteConfig]) -> bool:
    seen = {site_id}
    parent = sites[site_id].parent
    while parent is not None and parent in sites:
        if parent in seen:
            return parent == site_id
        seen.add(parent)
        parent = sites[parent].parent
    return False


def _line(loc: Loc, lines: Mapping[Loc, int]) -> int:
    while loc not in lines:
        loc = loc[:-1]
    return lines[loc]


def _path(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top)"
