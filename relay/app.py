"""The composition root: one aiohttp application per node, built from its config."""

from __future__ import annotations

import asyncio
import functools
import logging
import warnings
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from aiohttp import web

from relay.access import accounts as auth
from relay.access import audit
from relay.access.accounts import Accounts
from relay.access.audit import AuditLog
from relay.analysis import store as analysis_store
from relay.bus import store as eventstore
from relay.config import Config, ConfigError, load_config
from relay.db import Database
from relay.media.hub import Hub, HubSettings
from relay.record import exports as record_exports
from relay.record import index as record_index
from relay.record import leads as record_leads
from relay.refusal import Refused
from relay.web import accounts as accounts_api
from relay.web import (
    alarms,
    catalog,
    exports,
    inspection,
    layouts,
    metrics,
    pages,
    peers,
    protocol,
    recordings,
    remote_recordings,
    walls,
    whep,
)
from relay.web import analysis as analysis_web
from relay.web import cameras as api
from relay.web import events as events_api
from relay.web.cameras import RESTART_NEEDED
from relay.web.events import BUS, FEEDS
from relay.web.guard import ACCOUNTS, RULES, Handler, guard
from relay.web.keys import AUDIT, CONFIG, DB, HUB, RELOAD_LISTENERS, RELOAD_PREPARERS
from relay.web.refusals import answer
from relay.web.whep import WHEP

logger = logging.getLogger(__name__)
# Read once at start: a change waits for a restart (named in the log and /api/health).
AT_START: dict[str, Callable[[Config], object]] = {
    "node.id": lambda c: c.node.id,
    "node.listen": lambda c: c.node.listen,
    "node.data_dir": lambda c: c.node.data_dir,
    "node.tls": lambda c: c.node.tls,
    "bus.nats": lambda c: c.bus.nats,
    "storage.path": lambda c: c.storage.path,
    # The one-port modes' sockets, in configs that have them: shared by every viewer.
    "webrtc.udp_port": lambda c: getattr(c.webrtc, "udp_port", None),
    "webrtc.tcp_port": lambda c: getattr(c.webrtc, "tcp_port", None),
}


STARTED_WITH = web.AppKey("started_with", Config)  # what is read only at start
RELOADING = web.AppKey("reloading", asyncio.Lock)  # one reload at a time, in order


def create_app(config: Config, hub_settings: HubSettings | None = None) -> web.Application:
    protocol.install()  # read timeouts, one-line refusals from aiohttp itself
    app = web.Application(
        client_max_size=1024 * 1024, middlewares=[metrics.http_metrics, plain_errors, guard]
    )
    app[CONFIG] = config
    app[STARTED_WITH] = config
    app[RELOAD_LISTENERS] = []
    app[RELOAD_PREPARERS] = []
    app[RELOADING] = asyncio.Lock()
    app[RULES] = {}
    db = Database(
        Path(config.node.data_dir) / "node.sqlite",
        auth.SCHEMA
        + audit.SCHEMA
        + eventstore.SCHEMA
        + layouts.SCHEMA
        + record_index.SCHEMA
        + record_exports.SCHEMA
        + record_leads.SCHEMA
        + analysis_store.SCHEMA,
    )
    app[DB] = db
    app[ACCOUNTS] = Accounts(config, db)
    app[AUDIT] = AuditLog(db)
    app[HUB] = Hub(config, hub_settings)
    for routes in (
        api,
        events_api,
        whep,
        pages,
        accounts_api,
        walls,
        layouts,
        analysis_web,
        inspection,
        metrics,
        recordings,
        exports,
        alarms,
        peers,
        catalog,
    ):
        routes.setup(app)
    # The subsystems, started in this order and stopped in the reverse one: the
    # consumers (viewing sessions, feeds) before the hub, the hub before the database.
    app.cleanup_ctx.extend(
        [
            _database,
            _hub,
            peers.network_lifecycle,
            remote_recordings.lifecycle,
            catalog.lifecycle,
            events_api.bus_lifecycle,
            analysis_web.analysis_lifecycle,
            recordings.lifecycle,
            exports.lifecycle,
            whep.service_lifecycle,
            accounts_api.housekeeping,
            metrics.collectors,
        ]
    )
    app[ACCOUNTS].on_credentials_ended.append(functools.partial(end_access, app))
    app.on_response_prepare.append(no_sniffing)
    app.on_shutdown.extend([end_connections, peers.end_streams])
    return app


async def end_access(app: web.Application, credentials: frozenset[str]) -> None:
    """A credential's access ended or changed: every viewing and playback session
    and event feed opened with it ends at once (each session with its view.end or
    playback.end)."""
    ending = [app[FEEDS].end_access(credentials), recordings.end_credentials(app, credentials)]
    if WHEP in app:
        ending.append(app[WHEP].end_credentials(credentials))
    for failed in await asyncio.gather(*ending, return_exceptions=True):
        if isinstance(failed, Exception):  # one part's failure must not keep the other
            logger.error("ending access failed", exc_info=failed)


async def end_connections(app: web.Application) -> None:
    """At shutdown, before aiohttp waits for open requests: every event feed is
    closed (1001, going away) and every viewing session ended, so that no
    WebSocket holds the exit up."""
    await app[FEEDS].close()
    if WHEP in app:
        await app[WHEP].end_all()


async def no_sniffing(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer is what its Content-Type says: a browser never guesses (an
    image that is really HTML would otherwise run as a page of the node)."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")


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


async def reload_from(app: web.Application, path: str) -> bool:
    """SIGHUP: re-read the file and apply it; a file with errors is refused (logged
    and audited with check-config's own lines) and what runs stays."""
    try:
        config = load_config(path)
    except ConfigError as exc:
        logger.error("config not reloaded, the running one stays:\n%s", "\n".join(exc.problems))
        app[metrics.METRICS].reloads.labels("refused").inc()
        await app[AUDIT].record("config.refused", problems=exc.problems)
        return False
    await reload_config(app, config)
    return True


async def reload_config(app: web.Application, config: Config) -> list[str]:
    """Apply a changed config at once: cameras (only the changed ones restart),
    walls, sites, users, WebRTC. Returns what waits for a restart."""
    async with app[RELOADING]:  # a second SIGHUP waits for the first to be applied
        return await _apply(app, config)


async def _apply(app: web.Application, config: Config) -> list[str]:
    old = app[CONFIG]
    for prepare in app[RELOAD_PREPARERS]:
        prepare(config)
    app[BUS].apply(config)  # first: cameras it no longer knows raise no offline event
    changes = await app[HUB].apply(config)
    await app[ACCOUNTS].reload(config)
    await app[WHEP].apply(config, changes)
    with warnings.catch_warnings():
        # aiohttp warns of changing a running app's state; this one key is swapped
        # whole, on the loop, between requests: each request sees one config or the other.
        warnings.simplefilter("ignore", DeprecationWarning)
        app[CONFIG] = config
    for listener in app[RELOAD_LISTENERS]:
        await listener(config, changes)
    pending = [key for key, read in AT_START.items() if read(config) != read(app[STARTED_WITH])]
    app[RESTART_NEEDED][:] = pending
    node = app[metrics.METRICS]
    node.reloads.labels("applied").inc()
    node.restart_needed.set(float(bool(pending)))
    changed = [name for name in Config.model_fields if getattr(config, name) != getattr(old, name)]
    await app[AUDIT].record(
        "config.reload", changed=changed, cameras=changes.as_dict(), restart_needed=pending
    )
    logger.info("config reloaded: %s", ", ".join(changed) or "no change")
    if pending:
        logger.warning("restart needed to apply: %s", ", ".join(pending))
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
