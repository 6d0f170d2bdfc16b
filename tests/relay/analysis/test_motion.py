"""Motion and tamper on real cameras (camsim scenes) through a real node."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import aiohttp
import pytest

from camsim import CameraSimulator, MountSpec
from relay.analysis.service import Finding
from relay.bus.store import StoredEvent
from relay.web.analysis import ANALYSIS
from relay.web.events import BUS
from tests.conftest import ADMIN, Node, NodeFactory, node_yaml
from tests.helpers import wait_until

FAST_TAMPER = "tamper: {fps: 5, debounce: 1, frozen_seconds: 2}"


@pytest.fixture(scope="module")
def sim() -> Iterator[CameraSimulator]:
    scenes = [
        MountSpec("still", scene="still"),
        MountSpec("gate", scene="still"),
        MountSpec("moving", scene="moving"),
        MountSpec("black", scene="black"),
        MountSpec("frozen", scene="frozen"),
    ]
    with CameraSimulator(scenes) as simulator:
        yield simulator


def camera(cam_id: str, url: str, extra: str) -> str:
    return f"  - {{id: {cam_id}, name: {cam_id}, site: village, main: '{url}', {extra}}}\n"


class Findings:
    """What the node's analysis found, awaited as it comes."""

    def __init__(self, node: Node) -> None:
        self.seen: list[Finding] = []
        self._changed = asyncio.Event()
        node.app[ANALYSIS].on_finding.append(self._add)

    def _add(self, finding: Finding) -> None:
        self.seen.append(finding)
        self._changed.set()

    async def first(self, kind: str, camera: str, within: float, after: int = 0) -> Finding:
        """The first such finding (after the first `after` findings)."""
        async with asyncio.timeout(within):
            while True:
                found = [f for f in self.seen[after:] if f.type == kind and f.camera == camera]
                if found:
                    return found[0]
                self._changed.clear()
                await self._changed.wait()


async def test_motion_found_within_a_second_of_its_start(
    sim: CameraSimulator, start_node: NodeFactory
) -> None:
    sim.scene("gate", "halt")
    motion = "motion: {fps: 5, cooldown: 2}"
    node = await start_node(node_yaml(camera("gate", sim.url("gate"), motion)))
    findings = Findings(node)
    await asyncio.wait_for(node.hub.channel("gate").wait_online(), 10)  # type: ignore[union-attr]
    await asyncio.sleep(3)  # the background settles on the still scene
    assert not [f for f in findings.seen if f.type == "motion.start"], "motion before the move"
    began = time.time()
    sim.scene("gate", "move")
    try:
        found = await findings.first("motion.start", "gate", within=10)
    finally:
        sim.scene("gate", "halt")
    assert found.time - began < 1.0, f"motion seen {found.time - began:.2f} s after it began"
    assert found.image is not None and found.image.startswith(b"\xff\xd8")
    _x, y, _w, h = found.data["box"]
    assert 0.3 < y + h / 2 < 0.7, "the box is where the object crosses"
    ended = await findings.first("motion.end", "gate", within=15)
    assert ended.period == found.period
    query = {"since": str(began - 5), "until": str(time.time())}
    async with aiohttp.ClientSession(headers=ADMIN) as http:
        async with http.get(f"{node.url}/api/cameras/gate/motion", params=query) as answer:
            periods = await answer.json()
        async with http.get(
            f"{node.url}/api/cameras/gate/motion", params={**query, "zone": "elsewhere"}
        ) as answer:
            assert await answer.json() == []
    assert [p["id"] for p in periods] == [found.period]
    assert periods[0]["end"] is not None and periods[0]["armed"] is False


@pytest.mark.slow
async def test_still_scene_never_moves_in_a_minute(
    sim: CameraSimulator, start_node: NodeFactory
) -> None:
    node = await start_node(node_yaml(camera("still", sim.url("still"), "motion: {fps: 5}")))
    findings = Findings(node)
    await asyncio.wait_for(node.hub.channel("still").wait_online(), 10)  # type: ignore[union-attr]
    await asyncio.sleep(62)
    source = node.hub.channel("still").pictures  # type: ignore[union-attr]
    assert source is not None and source.decoded > 60 * 10, "the camera was analysed throughout"
    assert [f for f in findings.seen if f.type.startswith("motion")] == []


async def test_armed_motion_is_an_alarm_with_a_snapshot(
    sim: CameraSimulator, start_node: NodeFactory
) -> None:
    armed = "motion: {fps: 5, armed: ['00:00-24:00']}"
    node = await start_node(node_yaml(camera("moving", sim.url("moving"), armed)))
    alarms: asyncio.Queue[StoredEvent] = asyncio.Queue()

    def committed(stored: list[StoredEvent]) -> None:
        for item in stored:
            if item.event.type == "alarm":
                alarms.put_nowait(item)

    node.app[BUS].on_local.append(committed)
    async with asyncio.timeout(15):
        alarm = await alarms.get()
    assert alarm.event.camera == "moving" and alarm.event.by == "motion"
    assert alarm.event.image is not None and alarm.event.image.startswith(b"\xff\xd8")
    assert alarm.state == "open", "it is in the alarm workflow"
    assert alarm.event.data["reason"].startswith("motion") and len(alarm.event.data["box"]) == 4


async def test_a_mask_suppresses_motion_inside_it(
    sim: CameraSimulator, start_node: NodeFactory
) -> None:
    band = "[[0, 0.3], [1, 0.3], [1, 0.7], [0, 0.7]]"  # where the box crosses
    cameras = camera("open", sim.url("moving"), "motion: {fps: 5}") + camera(
        "masked", sim.url("moving"), f"motion: {{fps: 5, masks: [{band}]}}"
    )
    node = await start_node(node_yaml(cameras))
    findings = Findings(node)
    await findings.first("motion.start", "open", within=15)
    await asyncio.sleep(3)  # the masked camera had as long, and longer
    assert [f for f in findings.seen if f.camera == "masked"] == []


async def test_a_drawn_mask_applies_at_once_and_so_does_its_removal(
    sim: CameraSimulator, start_node: NodeFactory
) -> None:
    band = [[0, 0.3], [1, 0.3], [1, 0.7], [0, 0.7]]  # where the box crosses
    node = await start_node(
        node_yaml(camera("drawn", sim.url("moving"), "motion: {fps: 5, cooldown: 1}"))
    )
    findings = Findings(node)
    started = await findings.first("motion.start", "drawn", within=15)
    url = f"{node.url}/api/cameras/drawn/motion/regions"
    async with aiohttp.ClientSession(headers=ADMIN) as http:
        async with http.put(url, json={"zones": [], "masks": [band]}) as answer:
            assert answer.status == 200, await answer.text()
        masked = len(findings.seen)
        ended = await findings.first("motion.end", "drawn", within=10, after=masked)
        assert ended.period == started.period, "the period goes on to its end"
        quiet = len(findings.seen)
        await asyncio.sleep(4)  # 20 pictures of the box moving inside the mask
        assert [f.type for f in findings.seen[quiet:] if f.camera == "drawn"] == []
        async with http.delete(url) as answer:
            assert answer.status == 200
        again = await findings.first("motion.start", "drawn", within=10, after=quiet)
    assert again.period != started.period


async def test_tamper_fires_on_black_and_frozen_and_clears(
    sim: CameraSimulator, start_node: NodeFactory
) -> None:
    sim.scene("black", "cover")
    sim.scene("frozen", "freeze")
    cameras = camera("black", sim.url("black"), FAST_TAMPER) + camera(
        "frozen", sim.url("frozen"), FAST_TAMPER
    )
    node = await start_node(node_yaml(cameras))
    findings = Findings(node)
    events: list[StoredEvent] = []
    node.app[BUS].on_local.append(events.extend)
    black = await findings.first("camera.tamper", "black", within=15)
    frozen = await findings.first("camera.tamper", "frozen", within=15)
    assert black.data["reason"] == "black" and frozen.data["reason"] == "frozen"
    assert black.image is not None and frozen.image is not None
    sim.scene("black", "uncover")
    sim.scene("frozen", "thaw")
    await findings.first("camera.ok", "black", within=10)
    await findings.first("camera.ok", "frozen", within=10)
    await wait_until(
        lambda: len([e for e in events if e.event.type in ("camera.tamper", "camera.ok")]) >= 4,
        5,
        "four tamper events on the bus",
    )
    tampered = [e.event for e in events if e.event.type == "camera.tamper"]
    assert {e.camera for e in tampered} == {"black", "frozen"}
    assert all(e.image for e in tampered), "the bus event carries the snapshot"
