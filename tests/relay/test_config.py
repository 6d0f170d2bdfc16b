"""The YAML file: each mistake an installer can make gets FILE:LINE: key.path: why."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from relay.__main__ import main
from relay.config import ConfigError, load_config, parse_config

ROOT = Path(__file__).resolve().parents[2]

GOOD = """\
node:
  id: v1
  name: Village one
sites:
  - id: station
    name: Station
  - id: east
    name: East
    parent: station
cameras:
  - id: gate
    name: Gate
    site: east
    main: rtsp://admin:${CAM_PASS}@127.0.0.1:8554/gate
walls:
  - id: room
    site: east
    cameras: [gate]
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "node.yaml")
    return caught.value.problems


def test_shipped_config_is_valid() -> None:
    config = load_config(ROOT / "config.yaml")
    assert config.cameras and all(c.main.startswith("synthetic://") for c in config.cameras)


def test_env_substitution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAM_PASS", "s3cret")
    config = parse_config(GOOD)
    assert config.cameras[0].main == "rtsp://admin:s3cret@127.0.0.1:8554/gate"


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            ("  name: Village one\n", "  name: Village one\n  colour: red\n"),
            "node.yaml:4: node.colour: unknown key",
        ),
        (
            ("    site: east\n    main", "    site: west\n    main"),
            "node.yaml:13: cameras[0].site: unknown site 'west'",
        ),
        (
            ("  - id: east\n", "  - id: station\n"),
            "node.yaml:7: sites[1].id: duplicate id 'station'",
        ),
        (
            ("    parent: station\n", "    parent: east\n"),
            "node.yaml:9: sites[1].parent: site 'east' is its own ancestor (a cycle)",
        ),
        (
            ("cameras: [gate]", "cameras: [gate, pond]"),
            "node.yaml:18: walls[0].cameras[1]: unknown camera 'pond'",
        ),
        (
            ("main: rtsp://", "main: ftp://"),
            "node.yaml:14: cameras[0].main: URL must start with one of rtsp://",
        ),
        (
            ("8554/gate", "99999/gate"),
            "node.yaml:14: cameras[0].main: URL port must be a number from 1 to 65535",
        ),
        (
            ("8554/gate", "0/gate"),
            "node.yaml:14: cameras[0].main: URL port must be a number from 1 to 65535",
        ),
        (
            ("8554/gate", "8554/main gate"),
            "node.yaml:14: cameras[0].main: URL has a space or line break in it",
        ),
        (
            ("@127.0.0.1:8554/gate", "@/gate"),
            "node.yaml:14: cameras[0].main: URL names no camera address (host)",
        ),
        (
            (
                "main: rtsp://admin:${CAM_PASS}@127.0.0.1:8554/gate",
                "main: synthetic://640x360?fsp=15",
            ),
            "node.yaml:14: cameras[0].main: unknown synthetic camera options: fsp",
        ),
        (
            ("main: rtsp://admin:${CAM_PASS}@127.0.0.1:8554/gate", "main: synthetic://641x360"),
            "node.yaml:14: cameras[0].main: synthetic camera size must be even",
        ),
        (
            ("  - id: gate\n", "  - id: gate\n    always_on: maybe\n"),
            "node.yaml:12: cameras[0].always_on: Input should be a valid boolean",
        ),
        (("  name: Village one\n", ""), "node.yaml:1: node.name: required key is missing"),
    ],
)
def test_each_mistake_is_named_with_its_line(
    edit: tuple[str, str], expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAM_PASS", "x")
    old, new = edit
    assert old in GOOD
    found = problems(GOOD.replace(old, new, 1))
    assert any(p.startswith(expected) for p in found), found


def test_unset_env_var_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CAM_PASS", raising=False)
    assert problems(GOOD) == [
        "node.yaml:14: cameras[0].main: environment variable CAM_PASS is not set"
    ]


def test_syntax_error_names_the_line() -> None:
    assert problems("node:\n  id: [v1\nsites: []\n")[0].startswith("node.yaml:3: syntax error")


def test_duplicate_yaml_key() -> None:
    text = "node:\n  id: a\n  id: b\n  name: n\nsites: [{id: s, name: s}]\n"
    assert problems(text) == ["node.yaml:3: node.id: duplicate key"]


def test_every_problem_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAM_PASS", "x")
    text = GOOD.replace("  name: Village one\n", "  name: Village one\n  a: 1\n  b: 2\n")
    assert len(problems(text)) == 2


@pytest.mark.parametrize(
    ("old", "new"),
    [("main: rtsp://", "main: ftp://"), ("8554", "99999"), ("8554/gate", "8554/a b")],
)
def test_password_never_in_an_error(old: str, new: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAM_PASS", "hunter2-secret")
    found = problems(GOOD.replace(old, new))
    assert found and not any("hunter2-secret" in p for p in found)


def run_cli(*args: str, env_pass: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relay", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )


def test_check_config_cli(tmp_path: Path) -> None:
    ok = run_cli("check-config", "config.yaml")
    assert ok.returncode == 0, ok.stderr
    assert "config.yaml: ok" in ok.stdout

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        GOOD.replace("${CAM_PASS}", "pw").replace(
            "    site: east\n    main", "    site: nowhere\n    main"
        )
    )
    result = run_cli("check-config", str(bad))
    assert result.returncode == 1
    assert result.stderr.strip() == f"{bad}:13: cameras[0].site: unknown site 'nowhere'"


def test_run_refuses_a_bad_file_and_starts_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("node: {id: v1, name: n}\nsites: [{id: s, name: s, shape: round}]\n")
    result = run_cli("run", "--config", str(bad), "--listen", "127.0.0.1:1")
    assert result.returncode == 1
    assert f"{bad}:2: sites[0].shape: unknown key" in result.stderr
    assert "listening" not in result.stderr


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: cannot read"):
        load_config("nope.yaml")


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        (("--listen", "localhost"), "argument --listen: must be HOST:PORT, e.g. 0.0.0.0:8080"),
        (("--listen", "127.0.0.1:http"), "argument --listen: must be HOST:PORT"),
        (("--log-level", "loud"), "argument --log-level: invalid choice: 'LOUD'"),
    ],
)
def test_run_refuses_a_bad_option_in_one_line(option: tuple[str, str], expected: str) -> None:
    result = run_cli("run", *option)
    assert result.returncode == 2
    assert expected in result.stderr.splitlines()[-1]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "command", ["run", "check-config", "reload", "backup", "restore", "hash-password"]
)
def test_each_command_help_says_what_it_does(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    usage, description = capsys.readouterr().out.split("\n\n")[:2]
    assert usage.startswith(f"usage: villagewatch {command}")
    assert description and not description.startswith(("options:", "positional"))
