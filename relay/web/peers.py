"""The cascade over HTTP: the stream a node serves its peers, and the peers it pulls.

`GET /api/cameras/{camera_id}/stream?stream=main|sub` (a node user's Bearer token,
within the sites granted to it) answers the camera's packets as ingest/wire.py
frames, starting with the channel's cached GOP, for as long as the peer reads.
A peer that reads too slowly loses packets up to the next keyframe (the hub's
bounded subscription), never the camera or other viewers.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator

from aiohttp import web

from ingest.state import SourceState
from ingest.wire import CONTENT_TYPE, info_frame, packet_frame
from relay.config import Config
from relay.media.changes import CameraChanges
from relay.media.hub import BOTH, Channel, Subscription, SubscriptionClosed
from relay.peers.network import Network
from relay.web.guard import ACCOUNTS, add_route, logged_in, user_of
from relay.web.keys import AUDIT, CONFIG, HUB, RELOAD_LISTENERS, RELOAD_PREPARERS
from relay.web.refusals import refuse

logger = logging.getLogger(__name__)

NODES = frozenset(("node", "admin"))
# The kernel grows a socket's send buffer to megabytes: seconds of video queued
# behind a slow uplink before the hub's drop policy could act. Kept small, the
# backlog waits in the subscription, which skips to the next keyframe.
SEND_BUFFER = 128 * 1024
# How far behind live a peer may fall before it skips to the next keyframe: a
# thin uplink gets fewer pictures, never a growing delay.
BEHIND_SECONDS = 2.0
NETWORK = web.AppKey("network", Network)


class OpenStreams(set[Subscription]):
    """The peer streams served now, ended at shutdown."""


STREAMS = web.AppKey("peer_streams", OpenStreams)


def setup(app: web.Application) -> None:
    rule = logged_in(NODES, scope="camera")
    add_route(app, "GET", "/api/cameras/{camera_id}/stream", stream, rule)
    add_route(app, "GET", "/api/peers", peers, logged_in(frozenset(("admin",))))
    app[STREAMS] = OpenStreams()


async def network_lifecycle(app: web.Application) -> AsyncIterator[None]:
    network = Network(app[CONFIG], app[HUB], app[ACCOUNTS])
    app[NETWORK] = network

    async def reloaded(config: Config, _changes: CameraChanges) -> None:
        network.reloaded(config)

    app[RELOAD_PREPARERS].append(network.prepare)
    app[RELOAD_LISTENERS].append(reloaded)
    network.start()
    yield
    await network.close()
    app[RELOAD_LISTENERS].remove(reloaded)
    app[RELOAD_PREPARERS].remove(network.prepare)


async def end_streams(app: web.Application) -> None:
    """At shutdown: every peer stream ends, so that none holds the exit up."""
    streams: OpenStreams = app[STREAMS]
    for sub in list(streams):
        sub.close()


async def peers(request: web.Request) -> web.Response:
    return web.json_response(request.app[NETWORK].status())


async def stream(request: web.Request) -> web.StreamResponse:
    camera_id = request.match_info["camera_id"]
    name = request.query.get("stream", "main")
    channel = request.app[HUB].channel(camera_id, "sub" if name == "sub" else "main")
    if name not in ("main", "sub") or channel is None:
        return refuse(400, "stream must be main or sub (if the camera has one)")
    state, error = channel.reported_state()
    if state in (SourceState.OFFLINE, SourceState.STALLED):
        reason = f"camera is {state}" + (f": {error}" if error else "")
        return refuse(409, reason, **{"Retry-After": "5"})
    sub = channel.subscribe(BOTH, _queue_limit(channel))
    request.app[STREAMS].add(sub)
    try:
        try:
            async with asyncio.timeout(channel.camera.connect_timeout + 1):
                await channel.wait_online()
        except TimeoutError:
            return refuse(409, "camera is not sending", **{"Retry-After": "5"})
        return await _send(request, channel, sub)
    finally:
        sub.close()
        request.app[STREAMS].discard(sub)


def _queue_limit(channel: Channel) -> int:
    info = channel.source.info
    fps = info.fps if info is not None and info.fps else 25.0
    audio = 50 if info is not None and info.audio_codec else 0  # G.711: 50 packets/s
    return max(20, round((fps + audio) * BEHIND_SECONDS))


async def _send(request: web.Request, channel: Channel, sub: Subscription) -> web.StreamResponse:
    user, started = user_of(request), time.monotonic()
    sock = request.transport.get_extra_info("socket") if request.transport else None
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
    response = web.StreamResponse(
        headers={"Content-Type": CONTENT_TYPE, "Cache-Control": "no-store"}
    )
    await response.prepare(request)
    await request.app[AUDIT].record(
        "peer.stream.start",
        user=user.name,
        address=request.remote or "?",
        camera=channel.camera.id,
        site=channel.camera.site,
        stream=channel.stream,
    )
    logger.info("camera %s: streaming to node %s", channel.name, user.name)
    info = channel.source.info
    try:
        assert info is not None  # known once the camera sends
        await response.write(info_frame(info))
        while True:
            packet = await sub.get()
            if channel.source.info is not info and channel.source.info is not None:
                info = channel.source.info
                await response.write(info_frame(info))
            await response.write(packet_frame(packet))
    except (SubscriptionClosed, ConnectionError):
        pass  # the peer left, or this node is stopping
    finally:
        seconds = round(time.monotonic() - started)
        logger.info(
            "camera %s: stream to node %s ended after %d s", channel.name, user.name, seconds
        )
        await request.app[AUDIT].record(
            "peer.stream.end",
            user=user.name,
            camera=channel.camera.id,
            stream=channel.stream,
            seconds=seconds,
            dropped=sub.dropped,
        )
    return response
