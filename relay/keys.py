"""Typed keys for the shared state of the aiohttp application."""

from aiohttp import web

from relay.config import Config
from relay.hub import Hub

CONFIG = web.AppKey("config", Config)
HUB = web.AppKey("hub", Hub)
