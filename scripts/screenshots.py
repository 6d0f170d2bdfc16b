"""Screenshots of the pages for docs/walls.md, taken in real Chromium after the
tiles decode video: walls at 1920x1080, the patrol page and a wall at 390x844.

    PYTHONPATH=. python scripts/screenshots.py docs/
"""

from __future__ import annotations

import asyncio
import io
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from aiohttp import web
from PIL import Image

from relay.app import create_app
from relay.config import parse_config
from tests.conftest import CHROMIUM_ARGS, PASSWORD
from tests.helpers import free_port
from tests.relay.web.operator_config import PATROL, operator_config

DECODED_JS = """async (count) => {
  const tiles = (window.wall || window.station).tiles;
  const deadline = performance.now() + 15000;
  while (performance.now() < deadline) {
    const stats = await Promise.all(tiles.map((t) => t.player ? t.player.stats() : null));
    if (stats.filter((s) => s && s.framesDecoded > 5).length >= count) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}"""


def small_png(raw: bytes, path: Path) -> None:
    """A palette PNG: a tenth of the size, the text as sharp."""
    image = Image.open(io.BytesIO(raw)).convert("RGB")
    image.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    print(f"{path}: {path.stat().st_size // 1024} KB")


async def post(page: Any, url: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await page.request.post(f"{url}/api/events", data=body, headers={"Origin": url})
    assert response.ok, await response.text()
    answer: dict[str, Any] = await response.json()
    return answer


async def login(context: Any, url: str, name: str) -> Any:
    page = await context.new_page()
    response = await page.request.post(
        f"{url}/api/login", data={"name": name, "password": PASSWORD}
    )
    assert response.ok
    return page


async def shoot(out: Path, url: str) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS
        )
        wall_size: dict[str, Any] = {"viewport": {"width": 1920, "height": 1080}}
        officer = await login(await browser.new_context(**wall_size), url, "officer")
        operator = await login(await browser.new_context(**wall_size), url, "east-op")
        await post(officer, url, {"type": "lookout", "text": "寻找走失老人：男，70岁，蓝色外套"})
        alarm = await post(
            operator,
            url,
            {"type": "alarm", "camera": "cam1", "kind": "theft", "reason": "有人撬电动车锁"},
        )
        await post(officer, url, {"type": "ack", "ref": alarm["id"]})
        await post(officer, url, {"type": "assign", "ref": alarm["id"], "team": "team2"})

        await operator.goto(f"{url}/wall/room")
        await operator.evaluate("() => window.wall.ready")
        assert await operator.evaluate(DECODED_JS, 4)
        small_png(await operator.screenshot(), out / "wall-1080.png")

        await officer.goto(f"{url}/station")
        await officer.evaluate("() => window.station.alerts")
        for i, cam in enumerate(["cam0", "cam1", "cam2", "cam3"]):
            await officer.evaluate(f"() => window.station.place('{cam}', {i})")
        assert await officer.evaluate(DECODED_JS, 4)
        small_png(await officer.screenshot(), out / "station-1080.png")
        second = await post(
            operator,
            url,
            {"type": "alarm", "camera": "cam4", "kind": "fire", "reason": "柴草堆冒烟"},
        )
        await officer.locator(f'#alarm-view[data-alarm="{second["id"]}"]').wait_for()
        await officer.wait_for_function(
            "async () => { const t = window.station.popupTile;"
            " const s = t && t.player && await t.player.stats();"
            " return s && s.framesDecoded > 5 && t.el.dataset.state === 'playing'; }"
        )
        await asyncio.sleep(1.5)  # the dialog's video layer is painted a moment later
        small_png(await officer.screenshot(), out / "station-popup.png")

        phone_size: dict[str, Any] = {
            "viewport": {"width": 390, "height": 844},
            "is_mobile": True,
            "has_touch": True,
        }
        patrol = await login(await browser.new_context(**phone_size), url, PATROL)
        await patrol.goto(f"{url}/patrol")
        await patrol.evaluate("() => window.patrol.ready")
        await patrol.locator("article.job img.snapshot").first.wait_for()
        await patrol.wait_for_function(
            "() => document.querySelector('article.job img.snapshot').naturalWidth > 0"
        )
        small_png(await patrol.screenshot(), out / "patrol-390.png")

        phone_wall = await login(await browser.new_context(**phone_size), url, "east-op")
        await phone_wall.goto(f"{url}/wall/room")
        await phone_wall.evaluate("() => window.wall.ready")
        assert await phone_wall.evaluate(DECODED_JS, 4)
        small_png(await phone_wall.screenshot(), out / "wall-390.png")

        home = await login(
            await browser.new_context(viewport={"width": 1366, "height": 768}), url, "admin"
        )
        await home.goto(f"{url}/")
        await home.evaluate("() => window.overview.ready")
        await home.wait_for_function(
            "() => document.querySelector('#cameras td.offline')", timeout=20000
        )
        small_png(await home.screenshot(), out / "overview-1366.png")
        await browser.close()


async def main(out: Path) -> None:
    text = operator_config().replace("synthetic://160x90?fps=5", "synthetic://640x360?fps=10")
    config = parse_config(text)
    data = tempfile.mkdtemp(prefix="vw-shots-")
    config = config.model_copy(update={"node": config.node.model_copy(update={"data_dir": data})})
    runner = web.AppRunner(create_app(config))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        await shoot(out, f"http://127.0.0.1:{port}")
    finally:
        await runner.cleanup()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs")))
