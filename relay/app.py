"""The composition root: one aiohttp application per node, built from its config."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from relay import accounts_api, api, audit, auth, pages, whep
from relay.access import ACCOUNTS, RULES, guard
from relay.audit import AuditLog
from relay.auth import Accounts
from relay.config import Config
from relay.db import Database
from relay.hub import Hub, HubSettings
from relay.keys import AUDIT, CONFIG, DB, HUB


def create_app(config: Config, hub_settings: HubSettings | None = None) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024, middlewares=[guard])
    app[CONFIG] = config
    app[RULES] = {}
    db = Database(Path(config.node.data_dir) / "node.sqlite", auth.SCHEMA + audit.SCHEMA)
    app[DB] = db
    app[ACCOUNTS] = Accounts(config, db)
    app[AUDIT] = AuditLog(db)
    app[HUB] = Hub(config, hub_settings)
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_hub)
    api.setup(app)
    whep.setup(app)
    pages.setup(app)
    accounts_api.setup(app)
    return app


async def _database(app: web.Application) -> AsyncIterator[None]:
    db = app[DB]
    await db.open()
    await app[ACCOUNTS].open()
    await app[AUDIT].prune(app[CONFIG].audit.retention_days)
    yield
    await db.close()


async def _hub(app: web.Application) -> AsyncIterator[None]:
    hub = app[HUB]
    hub.start()
    yield
    await hub.close()
