"""The node's one YAML file: strict models, ${ENV} secrets, errors with file:line.

`load_config(path)` returns a validated `Config` or raises `ConfigError` whose
`problems` each read `FILE:LINE: key.path: what is wrong`.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

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


def check_listen(value: str) -> str:
    """HOST:PORT, or ValueError saying what is wrong (config and command line)."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("must be HOST:PORT, e.g. 0.0.0.0:8080")
    return value


def _camera_url(value: str) -> str:
    """What the camera's reader would only find out at run time, said at load time;
    never echoing the URL (it may hold the camera's password)."""
    parts = urlsplit(value)
    if parts.scheme not in CAMERA_SCHEMES:
        raise ValueError(
            f"URL must start with one of {', '.join(s + '://' for s in CAMERA_SCHEMES)}"
        )
    if any(c.isspace() for c in value):
        raise ValueError("URL has a space or line break in it (write a space as %20)")
    if parts.scheme == "synthetic":
        # Imported here: the reader brings PyAV and numpy, which only a synthetic camera needs.
        from ingest.errors import CameraError
        from ingest.readers.synthetic import parse_url

        try:
            parse_url(value)
        except CameraError as exc:
            raise ValueError(str(exc)) from None
        return value
    if not parts.hostname:
        raise ValueError("URL names no camera address (host)")
    try:
        port = parts.port  # urlsplit checks the port only when asked
    except ValueError:
        port = 0
    if port is not None and not 0 < port < 65536:
        raise ValueError("URL port must be a number from 1 to 65535")
    return value


ListenAddress = Annotated[str, AfterValidator(check_listen)]
CameraUrl = Annotated[str, AfterValidator(_camera_url)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsConfig(Strict):
    cert: str = Field(description="PEM certificate chain file")
    key: str = Field(description="PEM private key file")


class NodeConfig(Strict):
    id: Id
    name: str = Field(min_length=1, max_length=100, description="shown in the pages' header")
    listen: ListenAddress = Field("127.0.0.1:8080", description="HOST:PORT the node serves HTTP on")
    data_dir: str = Field("var", description="where the node keeps its SQLite files")
    tls: TlsConfig | None = Field(None, description="serve HTTPS with these PEM files; none: HTTP")
    login_hint: str = Field("", max_length=500, description="shown on the login page and at start")


Role = Literal["admin", "officer", "operator", "viewer", "patrol", "node", "metrics"]
SITELESS_ROLES = ("admin", "metrics")  # a metrics user reads /metrics and nothing else


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
    role: Role = Field(description="what the user may do (docs/api.md)")
    sites: list[Id] = Field(default_factory=list, description="sees these sites' subtrees")
    password_hash: Annotated[str, AfterValidator(_password_hash)] | None = Field(
        None, description="from `python -m relay hash-password`; none: no password login"
    )
    token_hash: Annotated[str, AfterValidator(_token_hash)] | None = Field(
        None, description="a fixed Bearer token, for another node"
    )
    playback: bool = Field(False, description="a viewer may also watch recordings")
    team: Id | None = Field(None, description="role patrol: the patrol team this login is")


class AuthConfig(Strict):
    session_hours: float = Field(12.0, gt=0, le=24 * 30, description="a login lasts this long")
    login_window_minutes: float = Field(
        15.0, gt=0, le=24 * 60, description="failed logins are counted over this window"
    )
    login_failures_per_address: int = Field(
        10, ge=1, le=1000, description="then the address must wait (429)"
    )
    login_failures_per_user: int = Field(
        5, ge=1, le=1000, description="then slowed down, and tried one at a time"
    )
    turn_secret: str | None = Field(
        None,
        min_length=16,
        description="the TURN server's shared secret (coturn `use-auth-secret`,"
        " `static-auth-secret`): viewers get short-lived TURN credentials made from it"
        " instead of the static username and credential of webrtc.ice_servers",
    )
    turn_credential_hours: float = Field(
        24.0, gt=0, le=24 * 30, description="how long a TURN credential made from turn_secret lasts"
    )


class AuditConfig(Strict):
    retention_days: int = Field(365, ge=1, le=3650, description="audit entries older go")


class SiteConfig(Strict):
    id: Id
    name: str = Field(min_length=1, max_length=100, description="shown in the site tree")
    parent: Id | None = Field(None, description="the site above this one; none for a root")


def _clock_window(value: str) -> str:
    if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-4]):[0-5]\d", value):
        raise ValueError('must be "HH:MM-HH:MM", e.g. "20:00-06:00" (may cross midnight)')
    return value


def _polygon(value: list[tuple[float, float]]) -> list[tuple[float, float]]:
    if any(not (0 <= x <= 1 and 0 <= y <= 1) for x, y in value):
        raise ValueError("points are [x, y] shares of the picture's width and height, 0 to 1")
    return value


Polygon = Annotated[
    list[tuple[float, float]],
    Field(min_length=3, max_length=64, description="[[x, y], ...] in 0..1 of the picture"),
    AfterValidator(_polygon),
]
StreamChoice = Literal["main", "sub"]


class ZoneConfig(Strict):
    name: Id
    polygon: Polygon


MAX_REGIONS = 16  # zones, and masks, per camera


def _distinct_names(zones: list[ZoneConfig]) -> list[ZoneConfig]:
    names = [zone.name for zone in zones]
    if len(set(names)) != len(names):
        raise ValueError("zone names must differ")
    return zones


Zones = Annotated[
    list[ZoneConfig],
    Field(max_length=MAX_REGIONS, description="motion counts only inside these; none: everywhere"),
    AfterValidator(_distinct_names),
]
Masks = Annotated[
    list[Polygon],
    Field(max_length=MAX_REGIONS, description="never motion inside these (trees, a road, a clock)"),
]


class MotionRegions(Strict):
    """Zones and masks drawn in the browser (relay/analysis/regions.py keeps them)."""

    zones: Zones
    masks: Masks


class MotionConfig(Strict):
    stream: StreamChoice = Field("sub", description="the stream analysed (main if no sub)")
    fps: float = Field(5.0, ge=0.5, le=30, description="pictures analysed per second")
    sensitivity: int = Field(
        70, ge=1, le=100, description="higher: smaller brightness changes count as motion"
    )
    min_area: float = Field(
        0.002, gt=0, le=1, description="smallest moving area that counts, share of the picture"
    )
    zones: Zones = Field(default_factory=list)
    masks: Masks = Field(default_factory=list)
    armed: list[Annotated[str, AfterValidator(_clock_window)]] = Field(
        default_factory=list,
        description='local times when motion raises an alarm, e.g. ["20:00-06:00"]',
    )
    cooldown: float = Field(
        10.0, ge=0, le=600, description="quiet this long ends a motion period; closer ones merge"
    )


class TamperConfig(Strict):
    stream: StreamChoice = Field("sub", description="the stream analysed (main if no sub)")
    fps: float = Field(2.0, ge=0.5, le=30, description="pictures checked per second")
    debounce: float = Field(
        10.0, ge=0, le=3600, description="a fault (or its end) this long raises the event"
    )
    frozen_seconds: float = Field(
        10.0, ge=1, le=3600, description="identical pictures this long while packets arrive"
    )
    learn_seconds: float = Field(
        120.0, ge=5, le=86400, description="good pictures seen before blur or a turn can be told"
    )


class InspectionConfig(Strict):
    summary_at: Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")] | None = Field(
        "07:30", description="local time of the morning summary on the bus; none: no summary"
    )
    down_minutes: float = Field(
        60.0, gt=0, le=1440, description="the summary names cameras down longer than this"
    )


RecordMode = Literal["continuous", "events", "off"]


class RecordConfig(Strict):
    mode: RecordMode | None = Field(
        None,
        description="continuous: every frame; events: only around alarms (pre/post);"
        " off; none: continuous for always-on cameras, off for on-demand ones",
    )
    stream: Literal["main", "sub"] = Field("main", description="which stream is recorded")
    retention_days: float = Field(30.0, gt=0, le=3650, description="recordings older go")
    pre: float = Field(10.0, ge=0, le=300, description="events mode and alarm clips: s before")
    post: float = Field(20.0, ge=0, le=600, description="events mode and alarm clips: s after")


class CameraConfig(Strict):
    id: Id
    name: str = Field(min_length=1, max_length=100, description="shown on tiles and lists")
    site: Id
    main: CameraUrl = Field(description="rtsp://, rtsps://, http(s):// or synthetic:// URL")
    sub: CameraUrl | None = Field(None, description="the sub-stream, for tiles; none: main only")
    always_on: bool = Field(True, description="false: opened at the first viewer")
    idle_timeout: float = Field(30.0, ge=0, le=3600, description="on-demand close delay, s")
    connect_timeout: float = Field(5.0, gt=0, le=60, description="s for the RTSP handshake")
    stall_timeout: float = Field(5.0, gt=0, le=120, description="no data this long: stalled")
    backoff_max: float = Field(10.0, ge=0.5, le=600, description="reconnect delay cap, s")
    motion: MotionConfig | None = Field(None, description="none: no motion detection")
    tamper: TamperConfig | None = Field(None, description="none: no tamper/video-loss checks")
    record: RecordConfig = Field(RecordConfig(), description="what of this camera is recorded")

    @property
    def record_mode(self) -> RecordMode:
        if self.record.mode is not None:
            return self.record.mode
        return "continuous" if self.always_on else "off"

    def source_settings(self) -> SourceSettings:
        return SourceSettings(
            connect_timeout=self.connect_timeout,
            stall_timeout=self.stall_timeout,
            backoff_max=self.backoff_max,
        )


class StorageConfig(Strict):
    path: str | None = Field(None, description="where recordings go; none: DATA_DIR/recordings")
    min_free_percent: float = Field(
        5.0, ge=0, le=90, description="below this free space the oldest footage goes"
    )
    min_free_gb: float = Field(2.0, ge=0, le=100000, description="and below this many GB free")
    max_gb: float | None = Field(
        None, gt=0, description="at most this many GB of footage (a quota); none: no quota"
    )
    segment_seconds: float = Field(60.0, ge=5, le=600, description="length of one file")
    check_seconds: float = Field(30.0, ge=1, le=3600, description="retention runs this often")
    export_max_minutes: float = Field(60.0, gt=0, le=24 * 60, description="longest export")
    playback_transcodes: int = Field(
        4,
        ge=0,
        le=64,
        description="playback sessions at once that get H.265 transcoded for a browser"
        " without HEVC (each takes up to a core while it fills the buffer); 0: none",
    )


class WallConfig(Strict):
    id: Id
    name: str = Field("", max_length=100, description="shown on the wall; empty: its id")
    site: Id
    layout: Literal[LAYOUTS] = Field("3x3", description="tiles: 1, NxN or one big and small")  # type: ignore[valid-type]
    cameras: list[CameraRef] = Field(
        default_factory=list, description="in tour order; PEER.CAMERA for a peer's"
    )
    dwell: float = Field(20.0, ge=3, le=3600, description="tour: seconds per page")
    font_scale: float = Field(
        1.0, ge=0.5, le=3, description="tile names and the alarm strip, times their 3 m size"
    )


class PatrolTeamConfig(Strict):
    id: Id
    name: str = Field(min_length=1, max_length=100, description="as the station calls it")
    site: Id = Field(description="the station (or village) the team works for")


class StationConfig(Strict):
    on_alarm: Literal["popup", "tile", "none"] = Field(
        "popup",
        description="a new alarm at the station: a pop-up live view beside its snapshot,"
        " its camera in the chosen tile, or only the queue",
    )


def _ice_url(value: str) -> str:
    if not value.startswith(("stun:", "turn:", "turns:")):
        raise ValueError("must start with stun:, turn: or turns:")
    return value


class IceServerConfig(Strict):
    urls: list[Annotated[str, AfterValidator(_ice_url)]] = Field(
        min_length=1, description="stun:, turn: or turns: URLs"
    )
    username: str | None = Field(
        None, description="static TURN username; auth.turn_secret, if set, is used instead"
    )
    credential: str | None = Field(
        None, description="static TURN password, given only to viewers allowed to watch"
    )


def _port_range(value: str) -> str:
    first, sep, last = value.partition("-")
    if not (sep and first.isdigit() and last.isdigit() and 1024 <= int(first) <= int(last) < 65536):
        raise ValueError("must be FIRST-LAST, e.g. 40000-40999 (ports 1024 to 65535)")
    return value


class WebRtcConfig(Strict):
    udp_ports: Annotated[str, AfterValidator(_port_range)] | None = Field(
        None, description="FIRST-LAST: the UDP ports WebRTC media uses; none: any free port"
    )
    udp_port: int | None = Field(
        None,
        ge=1024,
        le=65535,
        description="one UDP port for every viewer's media (e.g. 8189); none: a port per session",
    )
    tcp_port: int | None = Field(
        None,
        ge=1024,
        le=65535,
        description="ICE over TCP on this port (e.g. 8189), for viewers whose UDP is blocked",
    )
    host_addresses: list[str] = Field(
        default_factory=list,
        description="addresses offered as ICE host candidates; empty: every interface",
    )
    ice_servers: list[IceServerConfig] = Field(
        default_factory=list, description="STUN/TURN servers; none by default"
    )
    max_viewers: int = Field(200, ge=1, le=10000, description="WHEP sessions on this node")
    max_viewers_per_camera: int = Field(
        50, ge=1, le=10000, description="WHEP sessions of one camera"
    )
    pending_per_credential: int = Field(
        32,
        ge=1,
        le=10000,
        description="offers one login or token may have not yet connected, every camera"
        " together (a 5x5 wall opens 25 at once); more: 429",
    )
    pending_per_credential_camera: int = Field(
        3, ge=1, le=10000, description="the same, for one camera"
    )
    connect_timeout: float = Field(15.0, gt=0, le=120, description="ICE must connect within")

    @model_validator(mode="after")
    def _one_port_or_a_range(self) -> WebRtcConfig:
        if self.udp_port is not None and self.udp_ports is not None:
            raise ValueError("set udp_port (one port for all) or udp_ports (a range), not both")
        return self


def _nats_url(value: str) -> str:
    if not value.startswith(("nats://", "tls://")):
        raise ValueError("must start with nats:// or tls://")
    return value


class NatsConfig(Strict):
    servers: list[Annotated[str, AfterValidator(_nats_url)]] = Field(
        min_length=1, description="nats:// or tls:// URLs; list every server of a cluster"
    )
    user: str | None = Field(None, description="NATS user name")
    password: str | None = Field(None, description="NATS password (use ${ENV})")
    token: str | None = Field(None, description="NATS token, in place of user and password")
    stream: str = Field(
        "VILLAGEWATCH", pattern=r"^[A-Za-z0-9_-]{1,64}$", description="the JetStream stream"
    )
    max_age_days: float = Field(7.0, gt=0, le=365, description="how long the network keeps events")
    replicas: int = Field(
        1, ge=1, le=5, description="copies of the stream in a NATS cluster (3 for 3 servers)"
    )


class BusConfig(Strict):
    offline_debounce: float = Field(
        10.0, ge=0, le=3600, description="a camera down this long raises camera.offline"
    )
    nats: NatsConfig | None = Field(None, description="none: this node's alerts stay local")


def _network(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError("must be an address or a network, e.g. 127.0.0.1/32") from None
    return value


class MetricsConfig(Strict):
    allow: list[Annotated[str, AfterValidator(_network)]] = Field(
        default_factory=list,
        description="addresses that may read /metrics without a token, e.g. [127.0.0.1/32];"
        " others need a token of role metrics (or admin)",
    )


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
    poll: float = Field(
        10.0,
        ge=0.5,
        le=300,
        description="s between pings on the peer's catalog feed while it is quiet; no answer"
        " within half of it: the peer is unreachable (changes are pushed, not polled)",
    )
    idle_timeout: float = Field(30.0, ge=0, le=3600, description="a pulled stream's close delay, s")


class Config(Strict):
    node: NodeConfig = Field(description="this node")
    sites: list[SiteConfig] = Field(min_length=1, description="the site tree")
    cameras: list[CameraConfig] = Field(default_factory=list, description="this node's cameras")
    walls: list[WallConfig] = Field(default_factory=list, description="video walls")
    webrtc: WebRtcConfig = Field(WebRtcConfig(), description="live video to browsers")
    users: list[UserConfig] = Field(default_factory=list, description="who may log in")
    auth: AuthConfig = Field(AuthConfig(), description="logins and sessions")
    audit: AuditConfig = Field(AuditConfig(), description="the audit log")
    bus: BusConfig = Field(BusConfig(), description="the alert bus")
    metrics: MetricsConfig = Field(MetricsConfig(), description="who may read /metrics")
    inspection: InspectionConfig = Field(InspectionConfig(), description="the daily inspection")
    storage: StorageConfig = Field(StorageConfig(), description="recordings and exports")
    patrol_teams: list[PatrolTeamConfig] = Field(
        default_factory=list, description="the teams alarms are assigned to (巡逻队)"
    )
    station: StationConfig = Field(StationConfig(), description="the station viewer")
    peers: list[PeerConfig] = Field(
        default_factory=list, description="nodes whose cameras this node shows (cascade)"
    )

    def camera(self, camera_id: str) -> CameraConfig | None:
        return next((c for c in self.cameras if c.id == camera_id), None)

    def wall(self, wall_id: str) -> WallConfig | None:
        return next((w for w in self.walls if w.id == wall_id), None)

    def team(self, team_id: str) -> PatrolTeamConfig | None:
        return next((t for t in self.patrol_teams if t.id == team_id), None)

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


def first_problem(exc: ValidationError) -> str:
    """A model's first problem on one line, e.g. `zones[0].polygon: ...` (an API's 400)."""
    error = exc.errors()[0]
    return f"{_path(tuple(error['loc']))}: {_message(error)}"


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
    for section, key in (*sections, ("patrol_teams", "id"), ("peers", "id")):
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
        if cam.record.stream == "sub" and cam.sub is None:
            yield ("cameras", i, "record", "stream"), "the camera has no sub stream to record"
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
        if user.role not in SITELESS_ROLES and not user.sites:
            yield ("users", i, "sites"), f"role {user.role} needs at least one site"
        for j, site_id in enumerate(user.sites):
            if site_id not in sites:
                yield ("users", i, "sites", j), f"unknown site {site_id!r}"
        yield from _team_of(config, i, user)
    yield from _team_sites(config, sites)


def _team_sites(config: Config, sites: set[str]) -> Iterator[tuple[Loc, str]]:
    for i, team in enumerate(config.patrol_teams):
        if team.site not in sites:
            yield ("patrol_teams", i, "site"), f"unknown site {team.site!r}"


def _team_of(config: Config, index: int, user: UserConfig) -> Iterator[tuple[Loc, str]]:
    if user.role == "patrol" and user.team is None:
        yield ("users", index), "role patrol needs a team"
    elif user.team is not None and config.team(user.team) is None:
        yield ("users", index, "team"), f"unknown patrol team {user.team!r}"


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
