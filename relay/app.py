"""The composition root: one aiohttp application per node, built from its config."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from relay.access import accounts as auth
from relay.access import audit
from relay.access.accounts import Accounts
from relay.access.audit import AuditLog
from relay.bus import store as eventstore
from relay.config import Config
from relay.db import Database
from relay.media.hub import Hub, HubSettings
from relay.refusal import Refused
from relay.web import accounts as accounts_api
from relay.web import cameras as api
from relay.web import events as events_api
from relay.web import layouts, pages, peers, walls, whep
from relay.web.events import FEEDS
from relay.web.guard import ACCOUNTS, RULES, Handler, guard
from relay.web.keys import AUDIT, CONFIG, DB, HUB
from relay.web.refusals import answer
from relay.web.whep import WHEP


def create_app(config: Config, hub_settings: HubSettings | None = None) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024, middlewares=[plain_errors, guard])
    app[CONFIG] = config
    app[RULES] = {}
    db = Database(
        Path(config.node.data_dir) / "node.sqlite",
        auth.SCHEMA + audit.SCHEMA + eventstore.SCHEMA + layouts.SCHEMA,
    )
    app[DB] = db
    app[ACCOUNTS] = Accounts(config, db)
    app[AUDIT] = AuditLog(db)
    app[HUB] = Hub(config, hub_settings)
    for routes in (api, events_api, whep, pages, accounts_api, walls, layouts, peers):
        routes.setup(app)
    # The subsystems, started in this order and stopped in the reverse one: the
    # consumers (viewing sessions, feeds) before the hub, the hub before the database.
    app.cleanup_ctx.extend(
        [
            _database,
            _hub,
            peers.network_lifecycle,
            events_api.bus_lifecycle,
            whep.service_lifecycle,
            accounts_api.housekeeping,
        ]
    )
    app.on_shutdown.extend([end_connections, peers.end_streams])
    return app


async def end_connections(app: web.Application) -> None:
    """At shutdown, before aiohttp waits for open requests: every event feed is
    closed (1001, going away) and every viewing session ended, so that no
    WebSocket holds the exit up."""
    await app[FEEDS].close()
    if WHEP in app:
        await app[WHEP].end_all()


@web.middleware
async def plain_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every refusal says why in a line of text: ours (Refused), and aiohttp's own
    (404, 405, 413)."""
    try:
        return await handler(request)
    except Refused as refused:
        return answer(refused)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.text:
            raise
        headers = {k: v for k, v in exc.headers.items() if k.lower() != "content-type"}
        return web.Response(status=exc.status, text=f"{exc.reason.lower()}\n", headers=headers)


async def reload_config(app: web.Application, config: Config) -> list[str]:
    """Apply a changed config's users at once (removed users' sessions end); return
    the other sections that changed, which take effect at the next restart."""
    old = app[CONFIG]  # what runs; the accounts hold the users last loaded
    app[ACCOUNTS].set_users(config)
    await app[WHEP].end_users_not_in({u.name for u in config.users})
    pending = [
        name
        for name in Config.model_fields
        if name != "users" and getattr(config, name) != getattr(old, name)
    ]
    await app[AUDIT].record("config.reload", users=len(config.users), pending=pending)
    return pending


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
