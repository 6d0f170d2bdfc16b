"""A WHEP client on aiortc: watch a camera of any WHEP server and count frames.

    python -m relay.webrtc.client http://127.0.0.1:8080/whep/east-gate --seconds 5

Installers use it to check a node; tests and benchmarks use it as a viewer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import aiohttp
import av
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from relay.webrtc import patches
from relay.webrtc.ice import IceSettings


class WhepClientError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason


@dataclass
class Watch:
    """What a viewer saw."""

    offer_sent: float = 0.0
    first_frame: float | None = None  # seconds after the offer was sent
    frames: int = 0
    sizes: set[tuple[int, int]] = field(default_factory=set)
    audio_frames: int = 0


class WhepClient:
    def __init__(self, url: str, *, token: str | None = None, audio: bool = False) -> None:
        self.url = url
        self.token = token
        self.audio = audio
        self.session_url: str | None = None
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.watch = Watch()
        self.on_frame: Callable[[Any], None] | None = None  # each video frame, as it comes
        self._tasks: list[asyncio.Task[None]] = []
        self._first = asyncio.Event()

    def _headers(self, **extra: str) -> dict[str, str]:
        if self.token:
            extra["Authorization"] = f"Bearer {self.token}"
        return extra

    async def prepare(self) -> None:
        """Make the offer (ICE candidates gathered) without sending it yet."""
        if self.pc.localDescription is not None:
            return
        self.pc.addTransceiver("video", direction="recvonly")
        if self.audio:
            self.pc.addTransceiver("audio", direction="recvonly")
        self.pc.on("track", self._on_track)
        await self.pc.setLocalDescription(await self.pc.createOffer())

    async def connect(self, http: aiohttp.ClientSession) -> None:
        await self.prepare()
        self.watch.offer_sent = time.monotonic()
        async with http.post(
            self.url,
            data=self.pc.localDescription.sdp,
            headers=self._headers(**{"Content-Type": "application/sdp"}),
        ) as response:
            text = await response.text()
            if response.status != 201:
                raise WhepClientError(response.status, text.strip())
            self.session_url = urljoin(self.url, response.headers["Location"])
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=text, type="answer"))

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._tasks.append(asyncio.create_task(self._consume(track)))

    async def _consume(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if track.kind == "audio":
                    self.watch.audio_frames += 1
                    continue
                if self.watch.first_frame is None:
                    self.watch.first_frame = time.monotonic() - self.watch.offer_sent
                    self._first.set()
                self.watch.frames += 1
                if self.on_frame is not None:
                    self.on_frame(frame)
                if isinstance(frame, av.VideoFrame):
                    self.watch.sizes.add((frame.width, frame.height))

    async def first_frame(self) -> float:
        await self._first.wait()
        assert self.watch.first_frame is not None
        return self.watch.first_frame

    async def close(self, http: aiohttp.ClientSession | None, *, delete: bool = True) -> None:
        if delete and http is not None and self.session_url:
            async with http.delete(self.session_url, headers=self._headers()):
                pass
        await self.pc.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _main(args: argparse.Namespace) -> int:
    patches.install()
    if args.host:
        IceSettings([args.host]).use_here()
    async with aiohttp.ClientSession() as http:
        client = WhepClient(args.url, token=args.token)
        try:
            await client.connect(http)
            async with asyncio.timeout(args.seconds):
                first = await client.first_frame()
            print(f"first frame after {first * 1000:.0f} ms")
            await asyncio.sleep(args.seconds)
        except WhepClientError as exc:
            print(f"refused: {exc}")
            return 1
        except TimeoutError:
            print("no frame")
        finally:
            await client.close(http)
    print(f"{client.watch.frames} frames, sizes {sorted(client.watch.sizes)}")
    return 0 if client.watch.frames else 1


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m relay.webrtc.client", description=__doc__.splitlines()[0]
    )
    parser.add_argument("url", help="the camera's WHEP URL, e.g. http://127.0.0.1:8080/whep/gate")
    parser.add_argument("--seconds", type=float, default=5.0, help="how long to watch (default: 5)")
    parser.add_argument("--token", help="a Bearer token (POST /api/tokens, docs/api.md)")
    parser.add_argument("--host", help="ICE host address to offer, e.g. 127.0.0.1")
    raise SystemExit(asyncio.run(_main(parser.parse_args())))


if __name__ == "__main__":
    main()
