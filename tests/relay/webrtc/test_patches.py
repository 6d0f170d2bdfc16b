"""The library patches: checked against the installed versions, installed once."""

from __future__ import annotations

import importlib.metadata

import aioice.ice
import pytest
from aiortc.codecs import CODECS

from ingest.readers import patches as av_patches
from relay.webrtc import patches


def test_the_installed_libraries_are_the_versions_the_patches_were_checked_on() -> None:
    unchecked = patches.unchecked_versions()
    assert not unchecked, (
        f"relay/webrtc/patches.py was not checked against {unchecked}: read each patch"
        " against the new release, then add its version to CHECKED and to pyproject.toml"
    )
    version = av_patches.unchecked_version()
    assert version is None, (
        f"ingest/readers/patches.py was not checked against av {version}: check the"
        " interrupt clock, then add the version to CHECKED_VERSIONS and pyproject.toml"
    )


def test_an_unchecked_version_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "99.0")
    assert patches.unchecked_versions() == dict.fromkeys(("aiortc", "aioice", "pylibsrtp"), "99.0")


def test_install_patches_once_however_often_it_is_called() -> None:
    patches.install()
    codecs = len(CODECS["video"])
    send_data = aioice.ice.StunProtocol.send_data
    patches.install()
    patches.install_ice()
    assert len(CODECS["video"]) == codecs
    assert aioice.ice.StunProtocol.send_data is send_data
    assert aioice.ice.get_host_addresses is patches._host_addresses
