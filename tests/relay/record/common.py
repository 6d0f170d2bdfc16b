"""What the recording tests share."""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import aiohttp
import av

from relay.record.index import Segment
from relay.record.service import Recordings
from tests.conftest import ADMIN, Node


async def closed_segments(service: Recordings, camera: str, count: int) -> list[Segment]:
    """Once `count` files of the camera are finished (the recorder tells the index)."""
    async with asyncio.timeout(40):
        while True:
            found = [s for s in await service.segments(camera, 0, time.time() + 60) if not s.open]
            if len(found) >= count:
                return found
            await asyncio.sleep(0.2)


async def exported(node: Node, camera: str, start: float, end: float) -> dict[str, Any]:
    """An export of the span, built: its row (the admin asks)."""
    async with aiohttp.ClientSession(headers=ADMIN) as http, asyncio.timeout(30):
        body = {"camera": camera, "start": start, "end": end}
        async with http.post(f"{node.url}/api/exports", json=body) as r:
            assert r.status == 202, await r.text()
            row: dict[str, Any] = await r.json()
        while row["state"] == "building":
            await asyncio.sleep(0.1)
            async with http.get(f"{node.url}/api/exports/{row['id']}") as r:
                row = await r.json()
    assert row["state"] == "ready", row
    return row


@dataclass(frozen=True)
class Media:
    """What PyAV finds in an MP4 file (seconds of its media time)."""

    video: tuple[float, float]  # first frame shown, end of the last
    audio: tuple[float, float] | None
    audio_codec: str | None
    frames: int  # decoded
    dts_rise: bool  # every video packet decodes after the one before
    in_order: bool  # the decoded frames come out in presentation order


def _span(packets: list[tuple[int, int, Fraction]]) -> tuple[float, float]:
    return (
        min(float(pts * tb) for pts, _, tb in packets),
        max(float((pts + duration) * tb) for pts, duration, tb in packets),
    )


def read_media(path: Path) -> Media:
    video: list[tuple[int, int, Fraction]] = []
    audio: list[tuple[int, int, Fraction]] = []
    dts: list[int] = []
    with av.open(str(path)) as container:
        codec = container.streams.audio[0].codec_context.name if container.streams.audio else None
        for p in container.demux():
            if p.size and p.pts is not None and p.time_base is not None:
                (video if p.stream.type == "video" else audio).append(
                    (p.pts, p.duration or 0, p.time_base)
                )
                if p.stream.type == "video" and p.dts is not None:
                    dts.append(p.dts)
    with av.open(str(path)) as container:
        shown = [f.pts for f in container.decode(video=0) if f.pts is not None]
    return Media(
        video=_span(video),
        audio=_span(audio) if audio else None,
        audio_codec=codec if audio else None,
        frames=len(shown),
        dts_rise=all(b > a for a, b in itertools.pairwise(dts)),
        in_order=shown == sorted(shown) and len(set(shown)) == len(shown),
    )
