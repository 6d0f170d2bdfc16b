"""Typed keys for the shared state of the aiohttp application."""

from aiohttp import web

from relay.access.audit import AuditLog
from relay.config import Config
from relay.db import Database
from relay.media.hub import Hub

CONFIG = web.AppKey("config", Config)
HUB = web.AppKey("hub", Hub)
DB = web.AppKey("db", Database)
AUDIT = web.AppKey("audit", AuditLog)
