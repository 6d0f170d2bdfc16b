"""Helpers for hostile-input tests: a node on a thread of its own, odd values."""

from __future__ import annotations

import asyncio
import threading
import urllib.error
import urllib.request
from pathlib import Path

from aiohttp import web
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from relay.app import create_app
from relay.config import parse_config
from tests.conftest import ADMIN
from tests.helpers import free_port


class ThreadedNode:
    """A node on its own event loop in a thread, for synchronous (hypothesis) tests."""

    def __init__(self, config_text: str, data_dir: Path) -> None:
        config = parse_config(config_text)
        self.config = config.model_copy(
            update={"node": config.node.model_copy(update={"data_dir": str(data_dir)})}
        )
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self.app: web.Application | None = None
        self._thread = threading.Thread(target=self._run, name="test-node", daemon=True)

    def __enter__(self) -> ThreadedNode:
        self._thread.start()
        assert self._ready.wait(15), "the node did not start"
        return self

    def __exit__(self, *_: object) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)

    def _run(self) -> None:
        self._loop.run_until_complete(self._serve())
        self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        self.app = create_app(self.config)  # read from the test's thread: counts only
        runner = web.AppRunner(self.app, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, str]:
        req = urllib.request.Request(
            self.url + path, data=body, method=method, headers={**ADMIN, **(headers or {})}
        )
        try:
            with urllib.request.urlopen(req, timeout=15) as response:
                return response.status, response.read().decode(errors="replace")
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(errors="replace")


def assert_clean(status: int, body: str) -> None:
    assert status < 500, (status, body)
    assert "Traceback" not in body and 'File "' not in body
    assert body.strip(), "every refusal says why"


ODD_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=300)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | ODD_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ODD_TEXT, inner, max_size=4),
    max_leaves=12,
)
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
