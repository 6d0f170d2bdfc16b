"""A built-in camera: a moving test pattern with the camera's name and a clock.

`synthetic://640x360?fps=15&keyframe_interval=2&bitrate=800` encodes H.264
(Constrained Baseline, no B-frames) with libx264 in the source's thread, paced by
the wall clock, so downstream code cannot tell it from an RTSP camera.

With `&loop=SECONDS` it encodes that many seconds once, when opened (rounded up
to whole keyframe intervals), and then sends the same packets round and round
with timestamps that keep counting: a camera that costs next to no CPU, for
benchmarks of everything downstream of the camera (its clock overlay loops too).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import av
import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont

from ingest.errors import CameraError
from ingest.packet import MediaPacket, StreamInfo
from ingest.readers.base import POLL_SECONDS

TIME_BASE = Fraction(1, 90000)
CJK_FONTS = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
)


@dataclass(frozen=True)
class Pattern:
    """What a synthetic:// URL asks for."""

    width: int
    height: int
    fps: int
    keyframe_interval: float
    kbps: int
    loop: float  # s encoded once and sent round and round; 0: encoded live


def parse_url(url: str) -> Pattern:
    parts = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    try:
        width, height = (int(n) for n in (parts.netloc or "640x360").lower().split("x"))
        fps = int(query.pop("fps", "15"))
        interval = float(query.pop("keyframe_interval", "2"))
        kbps = int(query.pop("bitrate", "800"))
        loop = float(query.pop("loop", "0"))
    except ValueError:
        raise CameraError(f"bad synthetic camera URL {url!r}") from None
    if query:
        raise CameraError(f"unknown synthetic camera options: {', '.join(sorted(query))}")
    if not (16 <= width <= 3840 and 16 <= height <= 2160 and width % 2 == 0 == height % 2):
        raise CameraError("synthetic camera size must be even, 16x16 to 3840x2160")
    if not (1 <= fps <= 60 and 0.1 <= interval <= 60 and 50 <= kbps <= 20000):
        raise CameraError("synthetic camera fps 1-60, keyframe_interval 0.1-60 s, bitrate 50-20000")
    if not 0 <= loop <= 60:
        raise CameraError("synthetic camera loop 0-60 s")
    return Pattern(width, height, fps, interval, kbps, loop)


class SyntheticReader:
    def __init__(self, url: str, *, label: str) -> None:
        pattern = parse_url(url)
        self.width, self.height, self.fps = pattern.width, pattern.height, pattern.fps
        interval, kbps = pattern.keyframe_interval, pattern.kbps
        self._label = label
        self._encoder = av.CodecContext.create("libx264", "w")
        self._encoder.width, self._encoder.height = self.width, self.height
        self._encoder.pix_fmt = "yuv420p"
        self._encoder.time_base = TIME_BASE
        self._encoder.framerate = Fraction(self.fps)
        self._encoder.bit_rate = kbps * 1000
        gop = max(1, round(self.fps * interval))
        self._encoder.gop_size = gop
        self._encoder.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "profile": "baseline",
            "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:repeat-headers=1",
        }
        self._encoder.open()
        self.info = StreamInfo(
            codec="h264",
            profile="Constrained Baseline",
            width=self.width,
            height=self.height,
            fps=float(self.fps),
            has_b_frames=False,
            audio_codec=None,
        )
        self._pattern = _gradient(self.width, self.height)
        self._chroma = _chroma(label, self.width, self.height)
        self._font = _font(max(12, self.height // 18))
        self._overlay: tuple[int, npt.NDArray[np.uint8]] | None = None
        self._frame_index = 0
        self._pending: list[MediaPacket] = []
        self._clip = self._encode_clip(-(-round(pattern.loop * self.fps) // gop) * gop)
        self._start = time.monotonic()

    def _encode_clip(self, frames: int) -> list[tuple[bytes, bool]]:
        """`frames` pictures encoded once, as (data, keyframe); none for a live camera."""
        if not frames:
            return []
        clip = [p for _ in range(frames) for p in self._encode(self._render())]
        clip += self._encode(None)
        self._frame_index = 0
        return [(p.data, p.keyframe) for p in clip]

    def read(self) -> MediaPacket | None:
        while not self._pending:
            due = self._start + self._frame_index / self.fps
            wait = due - time.monotonic()
            if wait > POLL_SECONDS:
                time.sleep(POLL_SECONDS)
                return None
            if wait > 0:
                time.sleep(wait)
            self._pending.extend(self._replay() if self._clip else self._encode(self._render()))
        return self._pending.pop(0)

    def _replay(self) -> list[MediaPacket]:
        data, keyframe = self._clip[self._frame_index % len(self._clip)]
        pts = round(self._frame_index * 90000 / self.fps)
        self._frame_index += 1
        return [MediaPacket("video", data, pts, TIME_BASE, keyframe, time.monotonic())]

    def _render(self) -> av.VideoFrame:
        w, h, n = self.width, self.height, self._frame_index
        shift = (n * 4) % w
        yuv = np.empty((h * 3 // 2, w), np.uint8)
        yuv[:h] = self._pattern[:, shift : shift + w]
        box = max(8, h // 8)
        x = (n * 6) % (w - box)
        y = int((h - box) * (0.5 + 0.4 * np.sin(n / 10)))
        yuv[y : y + box, x : x + box] = 235
        yuv[h:] = self._chroma
        text = self._text_overlay()
        yuv[: text.shape[0], : text.shape[1]] = np.maximum(
            yuv[: text.shape[0], : text.shape[1]] // 3, text
        )
        frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        frame.pts = round(n * 90000 / self.fps)
        frame.time_base = TIME_BASE
        self._frame_index += 1
        return frame

    def _text_overlay(self) -> npt.NDArray[np.uint8]:
        now = int(time.time())
        if self._overlay is None or self._overlay[0] != now:
            stamp = datetime.fromtimestamp(now).strftime("%Y-%m-%d %H:%M:%S")
            line = f"{self._label}  {stamp}"
            right, bottom = self._font.getbbox(line)[2:]
            size = (min(self.width, int(right) + 16), int(bottom) + 12)
            image = Image.new("L", size, 16)
            ImageDraw.Draw(image).text((8, 6), line, fill=235, font=self._font)
            self._overlay = (now, np.asarray(image, np.uint8))
        return self._overlay[1]

    def _encode(self, frame: av.VideoFrame | None) -> list[MediaPacket]:
        now = time.monotonic()
        return [
            MediaPacket("video", bytes(p), p.pts, TIME_BASE, p.is_keyframe, now)
            for p in self._encoder.encode(frame)
        ]

    def close(self) -> None:
        self._pending.clear()


def _gradient(width: int, height: int) -> npt.NDArray[np.uint8]:
    """Twice as wide as the picture, so a moving window of it is a plain slice."""
    x = np.arange(width * 2)[None, :]
    y = np.arange(height)[:, None]
    wave = (x * 255 // width + y // 4) % 220 + 16
    return wave.astype(np.uint8)


def _chroma(label: str, width: int, height: int) -> npt.NDArray[np.uint8]:
    """A tint of its own for each camera (U plane rows, then V plane rows)."""
    hue = (sum(label.encode()) % 360) * np.pi / 180
    u, v = 128 + 48 * np.cos(hue), 128 + 48 * np.sin(hue)
    chroma = np.empty((height // 2, width), np.uint8)
    chroma[: height // 4] = int(u)
    chroma[height // 4 :] = int(v)
    return chroma


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for path in CJK_FONTS:
        if Path(path).exists():
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size)
