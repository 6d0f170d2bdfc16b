"""docs/configuration.md is the config models, written out: never stale."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_configuration_page_matches_the_models() -> None:
    result = subprocess.run(
        [sys.executable, "scripts/config_docs.py", "--check"],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
