"""The JSON API: cameras with state, info and stats, the site tree; never a URL."""

from __future__ import annotations

import aiohttp

from camsim import CameraSimulator, MountSpec
from ingest.state import SourceState
from tests.conftest import ADMIN, NodeFactory, users_yaml
from tests.helpers import wait_until

SECRET = "Cam-Pa55word"

CONFIG = """\
node: {{id: station, name: Station}}
sites:
  - {{id: station, name: Station}}
  - {{id: east, name: East, parent: station}}
  - {{id: west, name: West, parent: station}}
{users}cameras:
  - {{id: gate, name: Gate, site: east, main: '{good}', sub: 'synthetic://320x240?fps=5'}}
  - {{id: pond, name: Pond, site: west, main: '{wrong}'}}
  - {{id: lane, name: Lane, site: west, main: 'synthetic://320x240', always_on: false}}
"""


async def test_cameras_sites_and_health_without_secrets(start_node: NodeFactory) -> None:
    with CameraSimulator([MountSpec("cam")], user="admin", password=SECRET) as sim:
        good = sim.url("cam")
        wrong = good.replace(SECRET, SECRET + "x")
        node = await start_node(CONFIG.format(good=good, wrong=wrong, users=users_yaml()))
        pond = node.hub.channel("pond")
        gate = node.hub.channel("gate")
        assert pond is not None and gate is not None
        await wait_until(lambda: pond.source.state is SourceState.OFFLINE, 10)
        await wait_until(lambda: gate.source.state is SourceState.ONLINE, 10)
        async with aiohttp.ClientSession(node.url, headers=ADMIN) as http:
            bodies = []
            for path in ("/api/health", "/api/cameras", "/api/cameras/gate", "/api/sites"):
                async with http.get(path) as r:
                    assert r.status == 200
                    bodies.append(await r.text())
            async with http.get("/api/cameras") as r:
                cameras = {c["id"]: c for c in await r.json()}
            async with http.get("/api/sites") as r:
                (root,) = await r.json()
            async with http.get("/api/cameras/nope") as r:
                assert r.status == 404

    for body in bodies:
        assert SECRET not in body and "rtsp://" not in body and "synthetic://" not in body
    assert cameras["pond"]["state"] == "offline"
    assert cameras["pond"]["last_error"] == "wrong user or password"
    gate_json = cameras["gate"]
    assert gate_json["state"] == "online"
    assert gate_json["info"]["codec"] == "h264" and gate_json["info"]["width"] == 640
    assert gate_json["streams"]["sub"]["info"]["width"] == 320
    assert gate_json["stats"]["packets"] > 0
    assert cameras["lane"]["state"] == "idle"  # on-demand, nobody watching
    assert (root["id"], root["cameras"], root["online"], root["offline"]) == ("station", 3, 1, 1)
    west = next(s for s in root["children"] if s["id"] == "west")
    assert (west["cameras"], west["online"], west["offline"], west["idle"]) == (2, 0, 1, 1)
    assert root["idle"] == 1


async def test_health_details_only_for_admin_and_metrics(start_node: NodeFactory) -> None:
    users = users_yaml(("probe", "metrics", "station"), ("op", "operator", "east"))
    fake = "synthetic://320x240"
    node = await start_node(CONFIG.format(good=fake, wrong=fake, users=users))
    answers = {}
    async with aiohttp.ClientSession(node.url) as http:
        for who, headers in (
            ("anonymous", {}),
            ("admin", ADMIN),
            ("metrics", {"Authorization": "Bearer probe-token"}),
            ("operator", {"Authorization": "Bearer op-token"}),
        ):
            async with http.get("/api/health", headers=headers) as r:
                assert r.status == 200
                answers[who] = await r.json()
    assert answers["anonymous"] == {"status": "ok"}  # up, and nothing more
    assert answers["operator"] == {"status": "ok"}
    for who in ("admin", "metrics"):
        assert answers[who]["node"] == "station" and answers[who]["restart_needed"] == []
        assert answers[who]["uptime"] >= 0
