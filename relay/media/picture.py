"""A JPEG of a camera's current picture, made once per event: from the stream's
shared decoder when it runs (relay.media.pictures), else from the GOP cache."""

from __future__ import annotations

import asyncio
import logging

import av

from ingest.packet import MediaPacket
from relay.media.hub import Channel
from relay.media.pictures import encode_jpeg

logger = logging.getLogger(__name__)


async def snapshot(channel: Channel) -> bytes | None:
    """The newest picture as JPEG, or None when the camera has none right now."""
    decoded = channel.pictures.fresh_frame() if channel.pictures is not None else None
    if decoded is not None:  # decoded already: no second decode of the GOP
        return await asyncio.to_thread(encode_jpeg, decoded)
    packets = [p for p in channel.gop() if p.kind == "video"]
    info = channel.source.info
    if not packets or info is None:
        return None
    codec = "hevc" if info.codec == "h265" else "h264"
    try:
        return await asyncio.to_thread(_decode_last, codec, packets)
    except (av.error.FFmpegError, ValueError) as exc:
        logger.warning("camera %s: no snapshot (%s)", channel.name, type(exc).__name__)
        return None


def _decode_last(codec: str, packets: list[MediaPacket]) -> bytes | None:
    decoder = av.CodecContext.create(codec, "r")
    assert isinstance(decoder, av.VideoCodecContext)
    last = None
    for packet in packets:
        for frame in decoder.decode(av.Packet(packet.data)):
            last = frame
    for frame in decoder.decode(None):  # flush the decoder's reorder buffer
        last = frame
    if not isinstance(last, av.VideoFrame):
        return None
    return encode_jpeg(last)
