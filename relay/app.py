"""The composition root: one aiohttp application per node, built from its config."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from relay import api, pages, whep
from relay.config import Config
from relay.hub import Hub, HubSettings
from relay.keys import CONFIG, HUB


def create_app(config: Config, hub_settings: HubSettings | None = None) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)
    app[CONFIG] = config
    app[HUB] = Hub(config, hub_settings)
    app.cleanup_ctx.append(_hub)
    api.setup(app)
    whep.setup(app)
    pages.setup(app)
    return app


async def _hub(app: web.Application) -> AsyncIterator[None]:
    hub = app[HUB]
    hub.start()
    yield
    await hub.close()
