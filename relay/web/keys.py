"""Typed keys for the shared state of the aiohttp application."""

from collections.abc import Awaitable, Callable

from aiohttp import web

from relay.access.audit import AuditLog
from relay.config import Config
from relay.db import Database
from relay.media.changes import CameraChanges
from relay.media.hub import Hub

CONFIG = web.AppKey("config", Config)
HUB = web.AppKey("hub", Hub)
DB = web.AppKey("db", Database)
AUDIT = web.AppKey("audit", AuditLog)
# Told of every applied reload, after the hub, viewers, bus and accounts took it
# (recording, analysis, peers append theirs in their lifecycle; relay/app.py).
Reloaded = Callable[[Config, CameraChanges], Awaitable[None]]
RELOAD_LISTENERS = web.AppKey("reload_listeners", list[Reloaded])
# Given a reloaded config before anything takes it, to add what the file does not
# hold but the node runs (the peers' cameras: relay/web/peers.py).
RELOAD_PREPARERS = web.AppKey("reload_preparers", list[Callable[[Config], None]])
