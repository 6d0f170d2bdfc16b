"""The playback timeline shows motion periods and jumps from one to the next."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from relay.web.analysis import ANALYSIS
from relay.web.recordings import RECORDINGS
from tests.conftest import NodeFactory, log_in, node_yaml
from tests.relay.record.common import closed_segments

CAMERA = (
    "  - {id: cam1, name: Cam 1, site: village,"
    " main: 'synthetic://320x180?fps=15&keyframe_interval=1'}\n"
)
CLOCK_JS = "Number(document.getElementById('clock').dataset.wall || 0)"
MARKS_JS = """() => [...document.querySelectorAll('#timeline .motion')].map(
  (el) => parseFloat(el.style.left))"""


async def shown_near(page: Any, at: float, within: float = 10) -> float:
    """The recorded time the clock shows, once it is within 1 s of `at`."""
    shown = 0.0
    try:
        async with asyncio.timeout(within):
            while abs(shown - at) >= 1.0:
                shown = float(await page.evaluate(CLOCK_JS))
                await asyncio.sleep(0.05)
    except TimeoutError:
        pytest.fail(f"the clock shows {shown}, not {at}")
    return shown


@pytest.mark.browser
async def test_motion_marks_and_the_next_motion_button(
    start_node: NodeFactory, browser: Any
) -> None:
    node = await start_node(node_yaml(CAMERA, "storage: {segment_seconds: 5}\n"))
    first = (await closed_segments(node.app[RECORDINGS], "cam1", 3))[0]
    store = node.app[ANALYSIS].store
    periods = [(first.start + 4.0, first.start + 6.0), (first.start + 11.0, first.start + 12.5)]
    for start, end in periods:
        period = await store.motion_started("cam1", "village", start, [0, 0, 1, 1], [], 0.1, False)
        await store.motion_ended(period, end, [0, 0, 1, 1], [], 0.1)
    page = await browser.new_page()
    await log_in(page, node, "admin")
    await page.goto(f"{node.url}/playback?camera=cam1&at={first.start + 0.5}")
    await shown_near(page, first.start + 0.5)
    await page.click("#toggle")  # paused: the clock stays where a jump lands
    base = await page.evaluate("window.playback.base")
    marks = await page.evaluate(MARKS_JS)
    assert len(marks) == 2, marks
    for left, (start, _end) in zip(marks, periods, strict=True):
        assert abs(left - (start - base) / 86400 * 100) < 0.001, (marks, periods)
    await page.click("#next-motion")
    await shown_near(page, periods[0][0])
    await page.click("#next-motion")
    await shown_near(page, periods[1][0])
    await page.click("#prev-motion")
    await shown_near(page, periods[0][0])
    await page.close()
