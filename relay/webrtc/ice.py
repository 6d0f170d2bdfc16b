"""ICE as a deployment sees it: the host addresses answers offer, the UDP ports
their candidates bind, the STUN/TURN servers. Per app, never per process: an
answer is made inside `IceSettings.applied()`, which the patched aioice
(relay/webrtc/patches.py) reads through a context variable.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import contextvars
import errno
import hashlib
import hmac
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCIceServer

from relay.config import Config, WebRtcConfig
from relay.webrtc.ice_tcp import IceTcpServer
from relay.webrtc.udp_mux import PortZeroLoop, UdpMux

HOST_ADDRESSES_TTL = 10.0  # s an interface lookup serves answers for

InterfaceLookup = Callable[[bool, bool], list[str]]


@dataclass
class IceSettings:
    """Offer exactly `host_addresses` (a node behind NAT names its reachable address
    here) plus `extra` (the address a request came in on), or, with none, those of
    every interface but loopback, as aioice does, looked up at most every
    HOST_ADDRESSES_TTL s instead of for every answer (a millisecond each). Bind
    every candidate within `ports`, so a firewall opens one range."""

    host_addresses: list[str] = field(default_factory=list)
    ports: range | None = None
    mux: UdpMux | None = None  # one port for every session (webrtc.udp_port)
    tcp: IceTcpServer | None = None  # ICE over TCP (webrtc.tcp_port)
    _found: dict[tuple[bool, bool], tuple[float, list[str]]] = field(default_factory=dict)

    @classmethod
    def of(cls, config: WebRtcConfig) -> IceSettings:
        ports = None
        if config.udp_ports is not None:
            first, last = (int(p) for p in config.udp_ports.split("-"))
            ports = range(first, last + 1)
        mux = UdpMux(config.udp_port) if config.udp_port is not None else None
        tcp = IceTcpServer(config.tcp_port) if config.tcp_port is not None else None
        return cls(list(config.host_addresses), ports, mux, tcp)

    def close(self) -> None:
        if self.mux is not None:
            self.mux.close()
        if self.tcp is not None:
            self.tcp.close()

    def addresses(
        self, use_ipv4: bool, use_ipv6: bool, lookup: InterfaceLookup, extra: list[str]
    ) -> list[str]:
        if self.host_addresses:
            chosen = list(self.host_addresses)
        else:
            now = time.monotonic()
            at, found = self._found.get((use_ipv4, use_ipv6), (-math.inf, []))
            if now - at > HOST_ADDRESSES_TTL:
                found = lookup(use_ipv4, use_ipv6)
                self._found[use_ipv4, use_ipv6] = now, found
            chosen = list(found)
        for address in extra:
            family_wanted = use_ipv6 if ":" in address else use_ipv4
            if family_wanted and address not in chosen:
                chosen.append(address)
        return chosen

    def use_here(self) -> None:
        """These settings for this task and the tasks it makes from now on (a
        client's own process)."""
        CURRENT.set((self, []))

    @contextlib.contextmanager
    def applied(self, extra: list[str] | None = None) -> Iterator[None]:
        """Candidates gathered in this block (in this task) follow these settings."""
        token = CURRENT.set((self, extra or []))
        try:
            yield
        finally:
            CURRENT.reset(token)


CURRENT: contextvars.ContextVar[tuple[IceSettings, list[str]] | None] = contextvars.ContextVar(
    "ice_settings", default=None
)


def ice_servers(config: Config, user: str, now: float | None = None) -> list[RTCIceServer]:
    """The STUN/TURN servers with the credentials `user` may use: with
    `auth.turn_secret`, short-lived ones for every TURN server (TURN REST, as
    coturn's `use-auth-secret` checks them); else the configured static ones."""
    secret = config.auth.turn_secret
    expiry = int((now or time.time()) + config.auth.turn_credential_hours * 3600)
    servers = []
    for server in config.webrtc.ice_servers:
        username, credential = server.username, server.credential
        if secret and any(url.startswith(("turn:", "turns:")) for url in server.urls):
            username, credential = turn_credential(secret, user, expiry)
        servers.append(RTCIceServer(urls=server.urls, username=username, credential=credential))
    return servers


def turn_credential(secret: str, user: str, expiry: int) -> tuple[str, str]:
    """TURN REST credentials (draft-uberti-behave-turn-rest): the username is
    "EXPIRY:USER", the password base64(HMAC-SHA1(secret, username))."""
    username = f"{expiry}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


class PortRangeLoop(PortZeroLoop):
    """Port-0 endpoints bind within `ports` instead."""

    def __init__(self, loop: asyncio.AbstractEventLoop, ports: range) -> None:
        super().__init__(loop)
        self._ports = ports

    async def bind(self, factory: Any, host: str, **kwargs: Any) -> Any:
        start = random.randrange(len(self._ports))
        for i in range(len(self._ports)):
            port = self._ports[(start + i) % len(self._ports)]
            try:
                return await self._loop.create_datagram_endpoint(factory, (host, port), **kwargs)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
        raise OSError(errno.EADDRINUSE, f"every UDP port of {self._ports} is in use")
