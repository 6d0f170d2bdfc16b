"""Camera passwords never leave the server: not in answers, pages, logs, errors, audit."""

from __future__ import annotations

import logging

import aiohttp
import pytest

from camsim import CameraSimulator, MountSpec
from relay.web.keys import AUDIT
from relay.webrtc.client import WhepClient
from tests.conftest import ADMIN, ADMIN_TOKEN, NodeFactory, node_yaml
from tests.helpers import wait_until

SECRET = "Zx9-camera-secret"


async def test_camera_password_is_nowhere(
    start_node: NodeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with CameraSimulator([MountSpec("cam")], user="admin", password=SECRET) as sim:
        good = sim.url("cam")
        wrong = good.replace(SECRET, SECRET + "-old")
        node = await start_node(
            node_yaml(
                f"  - {{id: good, name: Good, site: village, main: '{good}'}}\n"
                f"  - {{id: bad, name: Bad, site: village, main: '{wrong}'}}\n"
            )
        )
        bad = node.hub.channel("bad")
        assert bad is not None
        await wait_until(lambda: bad.source.last_error == "wrong user or password", 10)
        seen: list[str] = []
        async with aiohttp.ClientSession(node.url, headers=ADMIN) as http:
            client = WhepClient(f"{node.url}/whep/good", token=ADMIN_TOKEN)
            await client.connect(http)
            await client.close(http)
            for path in (
                "/",
                "/view/good",
                "/view/bad",
                "/api/cameras",
                "/api/cameras/bad",
                "/api/sites",
                "/api/health",
                "/api/audit",
                "/login",
            ):
                async with http.get(path) as r:
                    seen.append(await r.text())
            refused = WhepClient(f"{node.url}/whep/bad", token=ADMIN_TOKEN)
            try:
                await refused.connect(http)
            except Exception as exc:  # the 409 with its reason
                seen.append(str(exc))
            finally:
                await refused.close(None)
        seen.append(repr(await node.app[AUDIT].query()))
    seen.append(caplog.text)
    assert any("wrong user or password" in text for text in seen)
    for text in seen:
        assert SECRET not in text
