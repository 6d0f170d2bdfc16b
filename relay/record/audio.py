"""Audio in recordings: AAC as the camera sent it, G.711 transcoded once to AAC.

Browsers' MSE (and MP4 players at large) take AAC but not G.711, so a camera's
G.711 (`pcm_alaw`, `pcm_mulaw`) is decoded and encoded to AAC-LC with FFmpeg's
native `aac` encoder, once per recorded camera, in the writer's thread. Audio is
cheap: 8 kHz mono costs a small fraction of what a video decode would, and video
is never decoded. AAC comes in as raw access units with its AudioSpecificConfig;
it is kept as it is when that config is AAC-LC (what the MP4 muxer describes),
and not recorded otherwise (HE-AAC), which is logged once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av

from ingest.packet import MediaPacket, StreamInfo

logger = logging.getLogger(__name__)

G711 = frozenset({"pcm_alaw", "pcm_mulaw"})
RECORDED = G711 | {"aac"}
GAP = Fraction(1, 4)  # G.711 this far from where it should be: the encoder starts afresh


@dataclass(frozen=True)
class AudioFormat:
    """A camera's audio, as the demuxer knows it."""

    codec: str  # aac, pcm_alaw, pcm_mulaw
    rate: int
    channels: int
    extradata: bytes  # AAC's AudioSpecificConfig


def audio_format(info: StreamInfo) -> AudioFormat | None:
    """The camera's audio if a recording can hold it, else None."""
    if info.audio_codec not in RECORDED or not info.audio_sample_rate:
        return None
    return AudioFormat(
        info.audio_codec, info.audio_sample_rate, info.audio_channels or 1, info.audio_extradata
    )


def aac_encoder(rate: int, channels: int) -> Any:
    encoder: Any = av.CodecContext.create("aac", "w")
    encoder.sample_rate = rate
    encoder.layout = "mono" if channels == 1 else "stereo"
    encoder.format = "fltp"
    encoder.time_base = Fraction(1, rate)
    return encoder


def add_aac_stream(output: Any, fmt: AudioFormat) -> Any:
    """An AAC-LC track; PyAV describes it with its encoder's config (never fed)."""
    stream = output.add_stream("aac", rate=fmt.rate)
    stream.codec_context.layout = "mono" if fmt.channels == 1 else "stereo"
    stream.time_base = Fraction(1, fmt.rate)
    return stream


class AacSource:
    """One camera's audio as AAC access units, each with its pts in 1/rate.

    Lives in the writer's thread for as long as the recorder does, so the G.711
    encoder runs on without a break across files."""

    def __init__(self, fmt: AudioFormat, camera: str) -> None:
        self.fmt = fmt
        self.time_base = Fraction(1, fmt.rate)
        self.usable = fmt.codec in G711 or self._lc_config(fmt, camera)
        self._decoder: Any = None
        self._encoder: Any = None
        self._next: int | None = None  # the pts the next G.711 sample should have

    @staticmethod
    def _lc_config(fmt: AudioFormat, camera: str) -> bool:
        encoder = aac_encoder(fmt.rate, fmt.channels)
        encoder.open()
        same = bytes(encoder.extradata or b"")[:2] == fmt.extradata[:2]
        if not same:
            logger.info(
                "camera %s: its AAC (config %s) is not AAC-LC and is not recorded",
                camera,
                fmt.extradata.hex(),
            )
        return same

    def units(self, packet: MediaPacket) -> list[tuple[bytes, int]]:
        if packet.pts is None or not self.usable:
            return []
        pts = round(packet.pts * packet.time_base * self.fmt.rate)
        if self.fmt.codec == "aac":
            return [(packet.data, pts)]
        return self._transcode(packet.data, pts)

    def _transcode(self, data: bytes, pts: int) -> list[tuple[bytes, int]]:
        if self._next is None or abs(pts - self._next) > GAP * self.fmt.rate:
            self._start()
            self._next = pts
        units = []
        for frame in self._decoder.decode(av.Packet(data)):
            frame.pts, frame.time_base = self._next, self.time_base
            self._next += frame.samples
            units += [(bytes(p), p.pts) for p in self._encoder.encode(frame)]
        return units

    def _start(self) -> None:
        self._decoder = av.CodecContext.create(self.fmt.codec, "r")
        self._decoder.sample_rate = self.fmt.rate
        self._decoder.layout = "mono" if self.fmt.channels == 1 else "stereo"
        self._encoder = aac_encoder(self.fmt.rate, self.fmt.channels)
        self._encoder.open()
