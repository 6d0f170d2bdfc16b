"""The compose file's monitoring profile and the Grafana dashboard, without Docker:
Prometheus can read the node's /metrics, Grafana finds its data source and the
dashboard, and the dashboard asks only for metrics the node has."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from relay.access.passwords import hash_token
from relay.config import Config, load_config
from tests.compose_files import bind_mounts, command, documented_metrics, option

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "deploy" / "grafana-dashboard.json"
DOCS = ROOT / "docs" / "operations.md"
METRIC = re.compile(r"\b((?:villagewatch|process)_[a-z_]+)")


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = yaml.safe_load(
        (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    )["services"]
    return found


@pytest.fixture(scope="module")
def config(services: dict[str, dict[str, Any]]) -> Config:
    return load_config(bind_mounts(services["node"])["/etc/villagewatch/config.yaml"])


def test_monitoring_services_start_only_with_their_profile(
    services: dict[str, dict[str, Any]],
) -> None:
    assert services["prometheus"]["profiles"] == ["monitoring"]
    assert services["grafana"]["profiles"] == ["monitoring"]
    assert "node" in services["prometheus"]["depends_on"]


def test_prometheus_scrapes_the_node_with_a_metrics_token(
    services: dict[str, dict[str, Any]], config: Config
) -> None:
    mounts = bind_mounts(services["prometheus"])
    flags = dict(a.split("=", 1) for a in command(services["prometheus"]) if "=" in a)
    prometheus = yaml.safe_load(mounts[flags["--config.file"]].read_text())
    [job] = prometheus["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    port = option(command(services["node"]), "--listen").rpartition(":")[2]
    assert job["static_configs"][0]["targets"] == [f"node:{port}"]
    token = mounts[job["authorization"]["credentials_file"]].read_text().strip()
    readers = [u for u in config.users if u.token_hash == hash_token(token)]
    assert [u.role for u in readers] == ["metrics"], "the token is a metrics user's"


def test_grafana_provisions_prometheus_and_the_dashboard(
    services: dict[str, dict[str, Any]],
) -> None:
    mounts = bind_mounts(services["grafana"])
    provisioning = mounts["/etc/grafana/provisioning"]
    [source] = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    assert "9090:9090" in services["prometheus"]["ports"]
    [provider] = yaml.safe_load((provisioning / "dashboards" / "villagewatch.yml").read_text())[
        "providers"
    ]
    folder = provider["options"]["path"]
    dashboards = [m for target, m in mounts.items() if target.startswith(folder + "/")]
    assert [m.resolve() for m in dashboards] == [DASHBOARD.resolve()]


def test_dashboard_asks_only_for_metrics_the_node_has() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    asked = {m for p in panels for t in p["targets"] for m in METRIC.findall(t["expr"])}
    known = documented_metrics()
    histogram = {m.removesuffix("_bucket") for m in asked if m.endswith("_bucket")}
    assert (asked - {m for m in asked if m.endswith("_bucket")}) | histogram <= known, (
        f"not metrics of the node: {sorted(asked - known)}"
    )
    for wanted in ("villagewatch_stream_up", "villagewatch_camera_viewers", "process_open_fds"):
        assert wanted in asked
    assert {v["name"] for v in dashboard["templating"]["list"]} == {"datasource", "node", "camera"}
