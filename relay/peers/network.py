"""The network as this node sees it: its own config plus what its peers report.

Every route reads the node's sites and cameras from its Config, so a peer's
catalog is spliced into the config's `sites` and `cameras` lists (in place: the
model is frozen against reassignment, and every holder of it must see the same
network), each remote camera stream becomes a RemoteChannel in the hub, and the
accounts work their users' scopes out again over the grown site tree.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from relay.access.accounts import Accounts
from relay.config import CameraConfig, Config, SiteConfig
from relay.media.hub import Hub, StreamName
from relay.peers.catalog import PeerLink
from relay.peers.channel import RemoteChannel, remote_camera

logger = logging.getLogger(__name__)


class Network:
    def __init__(self, config: Config, hub: Hub, accounts: Accounts) -> None:
        self.config = config
        self.hub = hub
        self.accounts = accounts
        self.local_sites = list(config.sites)
        # Each config the network was spliced into, with its own sites and cameras:
        # the running one, and the one a reload gave the accounts (its users rule).
        self._own: dict[int, tuple[Config, list[SiteConfig], list[CameraConfig]]] = {}
        self.links = {p.id: PeerLink(p, self.changed) for p in config.peers}
        self._tasks: list[asyncio.Task[None]] = []
        self._removing: set[asyncio.Task[None]] = set()
        self._warned: set[str] = set()

    def start(self) -> None:
        for link in self.links.values():
            self._tasks.append(asyncio.create_task(link.run(), name=f"peer {link.peer.id}"))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in [*self._tasks, *self._removing]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    def prepare(self, config: Config) -> None:
        """Before a reload is applied: the peers' sites and cameras as they run now go
        into `config` too, so that the reload sees none of them removed and their
        viewers play on; `reloaded` then splices it afresh."""
        if id(self.config) not in self._own:
            return  # nothing spliced yet: no peer has answered
        running, own_sites, own_cameras = self._own[id(self.config)]
        new_own = self._own.setdefault(
            id(config), (config, list(config.sites), list(config.cameras))
        )
        config.sites[:] = new_own[1] + running.sites[len(own_sites) :]
        config.cameras[:] = new_own[2] + running.cameras[len(own_cameras) :]

    def reloaded(self, config: Config) -> None:
        """A config reload made `config` the running one: the peers' sites and cameras
        are spliced into it at once (their links do not start over)."""
        self.config = config
        live = (id(config), id(self.accounts.config))
        self._own = {key: held for key, held in self._own.items() if key in live}
        # the file's own sites (prepare() already spliced the peers' into config)
        own = self._own.get(id(config))
        self.local_sites = list(own[1] if own else config.sites)
        self.changed()

    def changed(self, _link: PeerLink | None = None) -> None:
        sites, owner = self._sites()
        cameras: list[CameraConfig] = []
        reports: dict[str, tuple[PeerLink, dict[str, Any]]] = {}
        for link in self.links.values():
            fallback = link.peer.site or next(s.id for s in self.local_sites if s.parent is None)
            for report in link.cameras:
                site = str(report.get("site"))
                camera = remote_camera(link.peer, report, site if site in owner else fallback)
                cameras.append(camera)
                reports[camera.id] = (link, report)
        remote_sites = sites[len(self.local_sites) :]
        for config in (self.config, self.accounts.config):
            held, own_sites, own_cameras = self._own.setdefault(
                id(config), (config, list(config.sites), list(config.cameras))
            )
            held.sites[:] = own_sites + remote_sites
            held.cameras[:] = own_cameras + cameras
        self.accounts.set_users(self.accounts.config)
        self._sync_channels(cameras, reports)

    def _sites(self) -> tuple[list[SiteConfig], dict[str, str]]:
        """The local sites and each peer's, minus ids already taken (a local
        declaration of a village's site wins: the station names its tree)."""
        sites = list(self.local_sites)
        owner = {s.id: "" for s in sites}
        for link in self.links.values():
            shown = {s.id for s in link.sites}
            for site in link.sites:
                if site.id in owner:
                    if owner[site.id] not in ("", link.peer.id):
                        self._warn(f"peer {link.peer.id}: site {site.id} is another peer's")
                    continue
                parent = site.parent if site.parent in shown else link.peer.site
                sites.append(SiteConfig.model_construct(id=site.id, name=site.name, parent=parent))
                owner[site.id] = link.peer.id
        return sites, owner

    def _sync_channels(
        self, cameras: list[CameraConfig], reports: dict[str, tuple[PeerLink, dict[str, Any]]]
    ) -> None:
        wanted: set[tuple[str, StreamName]] = set()
        for camera in cameras:
            link, report = reports[camera.id]
            streams: tuple[StreamName, ...] = ("main", "sub") if camera.sub else ("main",)
            for stream in streams:
                wanted.add((camera.id, stream))
                channel = self.hub.channel(camera.id, stream)
                if channel is None:
                    channel = RemoteChannel(
                        camera, stream, self.hub.settings, link.peer.id, self.hub.state_changed
                    )
                    self.hub.add_channel(channel)
                if isinstance(channel, RemoteChannel):
                    channel.update_remote(camera, report, link.reachable)
        for key, channel in list(self.hub.channels.items()):
            if isinstance(channel, RemoteChannel) and key not in wanted:
                logger.info("camera %s: no longer shown by peer %s", channel.name, channel.node)
                task = asyncio.create_task(self.hub.remove_channel(*key))
                self._removing.add(task)
                task.add_done_callback(self._removing.discard)

    def _warn(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            logger.warning("%s: left out", message)

    def status(self) -> list[dict[str, object]]:
        return [
            {
                "id": link.peer.id,
                "reachable": link.reachable,
                "error": link.error,
                "cameras": len(link.cameras),
            }
            for link in self.links.values()
        ]
