"""The alert bus over HTTP: publish, query, a live WebSocket feed, event images."""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import AsyncIterator

from aiohttp import WSMsgType, web

from ingest.readers.peer import UNREACHABLE
from ingest.tasks import cancel_and_wait
from relay.access.audit import AuditEntry
from relay.bus.bus import AlertBus
from relay.bus.events import parse_request, scope_of, team_of, visible
from relay.bus.feeds import WRITE_ROOM, EventFeed
from relay.bus.nats import NatsLink
from relay.bus.photo import clean_photo
from relay.bus.store import EventStore
from relay.config import Config
from relay.media.hub import Channel
from relay.media.picture import snapshot
from relay.peers.channel import RemoteChannel
from relay.web.body import query_filters, read_json, whole_number
from relay.web.guard import ACCOUNTS, add_route, logged_in, user_of
from relay.web.keys import CONFIG, DB, HUB
from relay.web.refusals import refuse


class OpenFeeds:
    """The event WebSockets open now, with the credential each came with, so that
    a credential's end or the node's shutdown closes them at once."""

    def __init__(self) -> None:
        self.sockets: dict[web.WebSocketResponse, str] = {}

    async def close(self, credential: str | None = None, code: int = 1001) -> int:
        """Close the feeds of `credential` (None: every feed); how many closed."""
        chosen = [s for s, c in self.sockets.items() if credential is None or c == credential]
        message = b"node shutting down" if credential is None else b"access ended"
        for socket in chosen:
            self.sockets.pop(socket, None)
            await socket.close(code=code, message=message)
        return len(chosen)

    async def end_access(self, credentials: frozenset[str]) -> None:
        """Close the feeds opened with these credentials, all at once (1008: the
        client must log in again, not resume)."""
        chosen = [s for s, c in self.sockets.items() if c in credentials]
        for socket in chosen:
            self.sockets.pop(socket, None)
        closing = (socket.close(code=1008, message=b"access ended") for socket in chosen)
        await asyncio.gather(*closing, return_exceptions=True)  # a broken one is gone anyway


async def open_feed(request: web.Request, socket: web.WebSocketResponse) -> None:
    """Prepare a live WebSocket that ends with its credential's access (1008) and
    at the node's shutdown (1001)."""
    user = user_of(request)
    await socket.prepare(request)
    request.app[FEEDS].sockets[socket] = user.credential
    if not request.app[ACCOUNTS].still_valid(user):  # access ended while it was opened
        await request.app[FEEDS].end_access(frozenset((user.credential,)))


BUS = web.AppKey("bus", AlertBus)
FEEDS = web.AppKey("open_feeds", OpenFeeds)
LINK = web.AppKey("nats_link", NatsLink)
PHOTO_DECODES = web.AppKey("photo_decodes", asyncio.Semaphore)
MAX_EVENT_JSON = 1024 * 1024  # a lookout photo of 512 KB, in base64, and the rest
QUERY_LIMIT = 500
DRAIN_SECONDS = 10.0  # a frame may wait this long for room before its feed is closed
CLOSE_GRACE = 10.0  # s a closed feed's connection has to read what it holds
SLOW_REASON = b"not reading: reconnect and resume"
SLOW_CLOSE_FRAME = struct.pack("!BBH", 0x88, 2 + len(SLOW_REASON), 1013) + SLOW_REASON
AUDITED = {
    "alarm": "alarm.raise",
    "ack": "alarm.ack",
    "assign": "alarm.assign",
    "resolve": "alarm.resolve",
    "accept": "alarm.accept",
    "arrive": "alarm.arrive",
    "lookout": "lookout.issue",
    "cancel": "lookout.cancel",
    "sighting": "lookout.sighting",
}


def setup(app: web.Application) -> None:
    add_route(app, "POST", "/api/events", publish, logged_in())
    add_route(app, "GET", "/api/events", events, logged_in())
    add_route(app, "GET", "/api/events/{event_id}/image", image, logged_in())
    app[FEEDS] = OpenFeeds()
    app[PHOTO_DECODES] = asyncio.Semaphore(2)


async def bus_lifecycle(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    store = EventStore(app[DB])
    hub = app[HUB]
    bus = AlertBus(config, store, hub)
    app[BUS] = bus

    def camera_changed(channel: Channel) -> None:
        # A village on this NATS bus raises its cameras' outages itself; only when
        # it cannot be reached does this node speak for them.
        its_node_reports = (
            config.bus.nats is not None
            and isinstance(channel, RemoteChannel)
            and hub.camera_error(channel.camera.id) != UNREACHABLE
        )
        bus.camera_changed(channel.camera, its_node_reports=its_node_reports)

    hub.state_listeners.append(camera_changed)
    link = None
    if config.bus.nats is not None:
        link = NatsLink(config.bus.nats, config.node.id, store, bus.receive, bus.sites)
        bus.on_local.append(link.wake)
        app[LINK] = link
        link.start()
    yield
    if link is not None:
        await link.close()
    hub.state_listeners.remove(camera_changed)
    await bus.close()


async def publish(request: web.Request) -> web.Response:
    bus, user, config = request.app[BUS], user_of(request), request.app[CONFIG]
    body = await read_json(request, MAX_EVENT_JSON)
    ref = body.get("ref")
    referenced = await bus.store.get(ref) if isinstance(ref, str) and len(ref) <= 64 else None
    event = parse_request(body, user, config, referenced.event if referenced else None)
    if event.type in ("lookout", "resolve") and event.image is not None:
        async with request.app[PHOTO_DECODES]:  # a few at once: each may take 64 MB
            event = event.with_image(await asyncio.to_thread(clean_photo, event.image))
    if event.camera and event.type in ("alarm", "sighting"):
        channels = list(request.app[HUB].camera_channels(event.camera))
        for channel in channels:
            picture = await snapshot(channel)
            if picture:
                event = event.with_image(picture)
                break
    audit = AuditEntry(
        AUDITED[event.type],
        user=user.name,
        address=request.remote,
        camera=event.camera,
        site=event.site,
        detail={"event": event.id},
    )
    stored = await bus.publish(event, audit)  # the entry is committed with the event
    return web.json_response(stored.as_json(), status=201)


async def events(request: web.Request) -> web.StreamResponse:
    # No per-message deflate: it would compress every event once per subscriber.
    socket = web.WebSocketResponse(heartbeat=20, max_msg_size=4096, compress=False)
    if socket.can_prepare(request).ok:
        after = whole_number(request.query.get("after", "0"))
        if after is None:
            return refuse(400, "after must be the seq of the last event seen")
        return await _feed(request, socket, after)
    filters = query_filters(request.query, ("type", "site", "camera", "state"))
    before = whole_number(request.query.get("before", "0"))
    limit = whole_number(request.query.get("limit", str(QUERY_LIMIT)))
    if before is None or limit is None or not 0 < limit <= QUERY_LIMIT:
        return refuse(400, f"before must be a seq, limit 1 to {QUERY_LIMIT}")
    if before:
        filters["before"] = before
    user, config = user_of(request), request.app[CONFIG]
    # The caller's scope is a condition of the query, not a filter of its result:
    # the newest `limit` events they may see, however many others came since.
    found = await request.app[BUS].store.query(
        filters, limit, scope=scope_of(user, config), team=team_of(user)
    )
    return web.json_response([s.as_json() for s in found])


async def _feed(
    request: web.Request, socket: web.WebSocketResponse, after: int
) -> web.WebSocketResponse:
    """Every visible event after `?after=SEQ`, then live ones, as JSON arrays."""
    bus, user, config = request.app[BUS], user_of(request), request.app[CONFIG]
    feed = bus.subscribe(user)  # before reading the backlog, so nothing falls in between
    await open_feed(request, socket)
    transport = request.transport
    assert transport is not None  # the connection is open: it was just prepared
    sender = asyncio.create_task(_send(socket, transport, feed, bus.store, after, config=config))
    try:
        async for message in socket:
            if message.type == WSMsgType.ERROR:
                break
    finally:
        request.app[FEEDS].sockets.pop(socket, None)
        bus.unsubscribe(feed)
        await cancel_and_wait(sender)
    return socket


async def _send(
    socket: web.WebSocketResponse,
    transport: asyncio.Transport,
    feed: EventFeed,
    store: EventStore,
    after: int,
    *,
    config: Config,
) -> None:
    user = feed.user
    last = after
    while True:  # the backlog, in pages
        page = await store.after(last, 500)
        if page:
            texts = [s.as_json() for s in page if visible(s.event, user, config)]
            if texts and not await send_text(socket, transport, json.dumps(texts).encode()):
                return
            last = page[-1].seq
        if len(page) < 500:
            break
    feed.write_directly(socket, transport)  # while it waits in take(), as its log grows
    while not socket.closed:
        taken = await feed.take(last)
        if taken is None:
            await socket.close(code=1013, message=b"too far behind: reconnect and resume")
            return
        frame, last = taken  # the same bytes for every feed of the scope that keeps up
        if transport.get_write_buffer_size() > WRITE_ROOM or not await send_text(
            socket, transport, frame
        ):
            _close_unread(transport)
            return


async def send_text(
    socket: web.WebSocketResponse, transport: asyncio.Transport, frame: bytes
) -> bool:
    """Send a frame, waiting at most DRAIN_SECONDS for room; False if it did not
    leave, or the subscriber went away (the connection is closed then)."""
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            await socket.send_frame(frame, WSMsgType.TEXT)
    except TimeoutError:
        _close_unread(transport)
        return False
    except ConnectionError:
        return False  # the subscriber went away while its frame waited for room
    return True


def _close_unread(transport: asyncio.Transport) -> None:
    """A subscriber that stopped reading: its close frame (1013) goes after what it
    was sent, and the connection closes once it has read them all, or is cut
    CLOSE_GRACE seconds later. Written to the transport itself: aiohttp's close
    would wait for room that never comes."""
    if transport.is_closing():
        return
    transport.write(SLOW_CLOSE_FRAME)
    transport.close()
    asyncio.get_running_loop().call_later(CLOSE_GRACE, transport.abort)


async def image(request: web.Request) -> web.Response:
    stored = await request.app[BUS].store.get(request.match_info["event_id"][:64])
    user, config = user_of(request), request.app[CONFIG]
    if stored is None or stored.event.image is None or not visible(stored.event, user, config):
        return refuse(404, "no such image")
    return web.Response(
        body=stored.event.image,
        content_type="image/jpeg",
        headers={"Cache-Control": "private, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )
