"""docs/configuration.md is the config models, written out: never stale."""

from __future__ import annotations

import subprocess
import sys
import typing
from pathlib import Path

from pydantic import BaseModel

from relay.config import Config

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


def test_every_key_says_what_it_means() -> None:
    """A key without a description would be a row without a meaning on the page."""
    missing: list[str] = []
    seen: set[type[BaseModel]] = set()

    def walk(model: type[BaseModel]) -> None:
        if model in seen:
            return
        seen.add(model)
        for name, field in model.model_fields.items():
            if not field.description:
                missing.append(f"{model.__name__}.{name}")
            for arg in (field.annotation, *typing.get_args(field.annotation)):
                for inner in (arg, *typing.get_args(arg)):
                    if isinstance(inner, type) and issubclass(inner, BaseModel):
                        walk(inner)

    walk(Config)
    assert not missing, f"give these fields a description=: {missing}"
