"""Fixtures: a real node on 127.0.0.1, real cameras (camsim), real Chromium."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from relay.access.passwords import hash_password, hash_token
from relay.app import create_app
from relay.config import Config, parse_config
from relay.media.hub import Hub
from relay.web.keys import HUB
from tests.helpers import free_port

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required",
]


@dataclass
class Node:
    app: web.Application
    url: str

    @property
    def hub(self) -> Hub:
        return self.app[HUB]


NodeFactory = Callable[[str | Config], Awaitable[Node]]


@pytest.fixture
async def start_node(tmp_path: Path) -> AsyncIterator[NodeFactory]:
    """Start a node from YAML text (or a Config) on a free 127.0.0.1 port."""
    runners: list[web.AppRunner] = []

    async def start(config: str | Config) -> Node:
        if isinstance(config, str):
            config = parse_config(config)
        data_dir = tmp_path / f"node{len(runners)}"
        config = config.model_copy(
            update={"node": config.node.model_copy(update={"data_dir": str(data_dir)})}
        )
        app = create_app(config)
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        runners.append(runner)
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return Node(app, f"http://127.0.0.1:{port}")

    yield start
    for runner in reversed(runners):
        await runner.cleanup()


ADMIN_TOKEN = "test-admin-token"
PASSWORD = "test-password"
PASSWORD_HASH = hash_password(PASSWORD)
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def users_yaml(*users: tuple[str, str, str]) -> str:
    """`users:` with an admin (password and ADMIN_TOKEN) and (name, role, sites) more."""
    lines = [
        "users:",
        f"  - {{name: admin, role: admin, password_hash: '{PASSWORD_HASH}',"
        f" token_hash: '{hash_token(ADMIN_TOKEN)}'}}",
    ]
    for name, role, sites in users:
        lines.append(
            f"  - {{name: {name}, role: {role}, sites: [{sites}],"
            f" password_hash: '{PASSWORD_HASH}', token_hash: '{hash_token(name + '-token')}'}}"
        )
    return "\n".join(lines) + "\n"


def node_yaml(cameras: str, extra: str = "") -> str:
    """A one-site node config around `cameras` (YAML list items, 2-space indented)."""
    return (
        "node: {id: test, name: Test node}\n"
        "sites: [{id: village, name: Village}]\n"
        "webrtc: {host_addresses: [127.0.0.1]}\n"
        f"{users_yaml()}"
        f"cameras:\n{cameras}{extra}"
    )


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Debian's Chromium, driven by Playwright (never a downloaded browser)."""
    from playwright.async_api import async_playwright

    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("chromium is not installed: run scripts/setup.sh --dev")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def log_in(page: Any, node: Node, name: str = "admin") -> None:
    """Log the browser page in through the real login endpoint (cookie kept)."""
    response = await page.request.post(
        f"{node.url}/api/login", data={"name": name, "password": PASSWORD}
    )
    assert response.ok, await response.text()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that drives Chromium is a browser test, marked or not: the fast set
    (`-m "not browser and not slow"`) leaves it out."""
    for item in items:
        if "browser" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)
