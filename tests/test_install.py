"""The install section of docs/operations.md, run as written into a temporary root;
the unit it installs passes `systemd-analyze verify`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "deploy" / "villagewatch.service"


def test_documented_install_runs_and_the_unit_verifies(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is missing: run scripts/setup.sh --dev (package systemd)")
    result = subprocess.run(
        ["bash", "scripts/check-install.sh", str(tmp_path / "root")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "VENV_PYTHON": sys.executable},
        input="check-install-password\n",
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "check-install: ok" in result.stdout
    root = tmp_path / "root"
    config = (root / "etc/villagewatch/config.yaml").read_text()
    assert "scrypt$" in config and "ADMIN_PASSWORD_HASH" not in config
    assert (root / "opt/villagewatch/venv/bin/villagewatch").is_file()


def unit_settings() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def test_unit_runs_sandboxed_as_its_own_user() -> None:
    unit = unit_settings()
    assert unit["User"] == ["villagewatch"] and unit["Restart"] == ["on-failure"]
    assert unit["ProtectSystem"] == ["strict"] and unit["StateDirectory"] == ["villagewatch"]
    assert unit["NoNewPrivileges"] == ["yes"] and unit["PrivateTmp"] == ["yes"]
    assert unit["CapabilityBoundingSet"] == [""]
    assert unit["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    template = (ROOT / "deploy" / "villagewatch.yaml").read_text()
    assert "data_dir: /var/lib/villagewatch" in template, "the only writable place"
