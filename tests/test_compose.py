"""docker-compose.yml without Docker: services, files, config and camera mounts agree.

There is no Docker engine here, so this checks what `docker compose up` would trip
over first: a missing file, a config the node rejects, a camera URL no mount serves,
an unpublished port, NATS without JetStream.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from camsim import MountSpec
from relay.config import Config, load_config
from tests.compose_files import bind_mounts, command, option

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
SERVICES = {"node", "cameras", "nats"}
NODE_CONFIG = "/etc/villagewatch/config.yaml"


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(compose, dict) and isinstance(compose.get("services"), dict)
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


@pytest.fixture(scope="module")
def config(services: dict[str, dict[str, Any]]) -> Config:
    return load_config(bind_mounts(services["node"])[NODE_CONFIG])


def camera_mounts(services: dict[str, dict[str, Any]]) -> list[MountSpec]:
    specs = json.loads(option(command(services["cameras"]), "--mounts"))
    return [MountSpec(**spec) for spec in specs]


def server_options() -> set[str]:
    """The option strings camsim/server.py's argparse accepts (gi is not importable here)."""
    tree = ast.parse((ROOT / "camsim" / "server.py").read_text(encoding="utf-8"))
    return {
        arg.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "add_argument"
        for arg in node.args
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
    }


def published_ports(service: dict[str, Any], protocol: str = "tcp") -> set[int]:
    """Container ports of the service published on the host (ranges expanded)."""
    ports: set[int] = set()
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            if entry.get("protocol", "tcp") == protocol:
                ports.add(int(entry["target"]))
            continue
        spec, _, proto = str(entry).partition("/")
        if (proto or "tcp") != protocol:
            continue
        first, _, last = spec.rsplit(":", 1)[-1].partition("-")
        ports.update(range(int(first), int(last or first) + 1))
    return ports


def test_services(services: dict[str, dict[str, Any]]) -> None:
    # Profiled services (monitoring: tests/test_monitoring.py) start only on request.
    assert {name for name, s in services.items() if not s.get("profiles")} == SERVICES
    assert services["node"]["build"]["target"] == "node"
    assert services["cameras"]["build"]["target"] == "cameras"
    assert services["nats"]["image"].startswith("nats:2.14")
    assert command(services["node"])[:4] == ["python", "-m", "relay", "run"]


def test_built_and_mounted_files_exist(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for container_path, host_path in bind_mounts(service).items():
            assert host_path.is_relative_to(ROOT), f"{name}: {host_path} is outside the repo"
            assert host_path.exists(), f"{name}: {host_path} (mounted at {container_path})"
        if "build" not in service:
            continue
        build = service["build"]
        context = (ROOT / build["context"]).resolve()
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        assert dockerfile.is_file(), f"{name}: no {dockerfile}"
        text = dockerfile.read_text(encoding="utf-8")
        stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", text, re.MULTILINE | re.IGNORECASE)
        assert build["target"] in stages, f"{name}: no stage {build['target']!r} in {dockerfile}"
        for sources in re.findall(r"^COPY\s+(?!--from)(.+?)\s+\S+\s*$", text, re.MULTILINE):
            for source in sources.split():
                assert (context / source).exists(), f"{dockerfile.name}: COPY {source} missing"


def test_node_mounts_a_valid_config(services: dict[str, dict[str, Any]], config: Config) -> None:
    node = command(services["node"])
    assert option(node, "--config") == NODE_CONFIG
    assert NODE_CONFIG in bind_mounts(services["node"])
    assert config.cameras, "the compose config should watch the simulated cameras"


def test_camera_urls_point_at_served_mounts(
    services: dict[str, dict[str, Any]], config: Config
) -> None:
    port = int(option(command(services["cameras"]), "--port"))
    served = {spec.name for spec in camera_mounts(services)}
    for camera in config.cameras:
        for url in filter(None, (camera.main, camera.sub)):
            parts = urlsplit(url)
            assert parts.scheme == "rtsp", url
            assert (parts.hostname, parts.port or 554) == ("cameras", port), url
            assert PurePosixPath(parts.path).name in served, f"{url}: no such mount"
            assert parts.path == "/" + PurePosixPath(parts.path).name, url


def test_cameras_command_runs_the_simulator(services: dict[str, dict[str, Any]]) -> None:
    cameras = services["cameras"]
    args = command(cameras)
    assert args[:2] == ["python3", "camsim/server.py"]
    accepted = server_options()
    assert {a for a in args if a.startswith("--")} <= accepted
    # The server listens on 127.0.0.1 unless told otherwise: the node is another container.
    assert option(args, "--address") == "0.0.0.0"
    names = [spec.name for spec in camera_mounts(services)]
    assert len(names) == len(set(names)), "duplicate mount names"
    # It quits when stdin closes; without an open stdin the container exits at once.
    assert cameras.get("stdin_open") is True


def test_node_listen_port_is_published(services: dict[str, dict[str, Any]]) -> None:
    listen = option(command(services["node"]), "--listen")
    assert int(listen.rpartition(":")[2]) in published_ports(services["node"])
    assert listen.rpartition(":")[0] in ("0.0.0.0", "[::]", "")


def test_nats_runs_jetstream_on_a_volume(services: dict[str, dict[str, Any]]) -> None:
    nats = services["nats"]
    args = command(nats)
    assert {"-js", "--jetstream"} & set(args)
    store = option(args, "-sd" if "-sd" in args else "--store_dir")
    volumes = [str(v).split(":")[1] for v in nats.get("volumes", []) if isinstance(v, str)]
    assert store in volumes, "JetStream's store should outlive the container"


def test_webrtc_udp_range_is_published(services: dict[str, dict[str, Any]], config: Config) -> None:
    assert config.webrtc.udp_ports is not None
    first, last = (int(p) for p in config.webrtc.udp_ports.split("-"))
    assert set(range(first, last + 1)) <= published_ports(services["node"], "udp")


def test_node_joins_the_nats_service(config: Config) -> None:
    assert config.bus.nats is not None
    assert config.bus.nats.servers == ["nats://nats:4222"]
