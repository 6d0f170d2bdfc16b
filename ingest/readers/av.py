"""The FFmpeg (PyAV) reader for network cameras: rtsp:// and http(s)://."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import av
import av.error
from av.audio.stream import AudioStream
from av.container import InputContainer
from av.packet import Packet
from av.video.stream import VideoStream

from ingest.errors import CameraError
from ingest.h264 import ParameterSets
from ingest.packet import MediaPacket, StreamInfo
from ingest.readers.base import POLL_SECONDS

VIDEO_CODECS = {"h264": "h264", "hevc": "h265"}


class AvReader:
    """Demuxes a network camera with FFmpeg; never decodes."""

    def __init__(self, url: str, *, connect_timeout: float) -> None:
        options = {"analyzeduration": "0", "probesize": "32768", "fflags": "nobuffer"}
        if url.startswith("rtsp"):
            options["rtsp_transport"] = "tcp"
        self._container: InputContainer = av.open(
            url, options=options, timeout=(connect_timeout, POLL_SECONDS)
        )
        try:
            self._video, self._audio = self._pick_streams()
            self.info = self._stream_info()
        except BaseException:
            self._container.close()
            raise
        self._h264 = ParameterSets(self.info.extradata) if self.info.codec == "h264" else None
        self._packets: Iterator[Packet[Any]] | None = None
        self._video_tb = Fraction(self._video.time_base or Fraction(1, 90000))
        self._audio_tb = Fraction(
            (self._audio.time_base if self._audio else None) or Fraction(1, 8000)
        )

    def _pick_streams(self) -> tuple[VideoStream, AudioStream | None]:
        videos = self._container.streams.video
        if not videos:
            raise CameraError("the camera sends no video")
        video = videos[0]
        name = video.codec_context.name
        if name not in VIDEO_CODECS:
            raise CameraError(f"the camera sends {name} video; use H.264 or H.265")
        audios = self._container.streams.audio
        return video, (audios[0] if audios else None)

    def _stream_info(self) -> StreamInfo:
        ctx = self._video.codec_context
        rate = self._video.average_rate or self._video.guessed_rate
        audio = self._audio.codec_context if self._audio else None
        return StreamInfo(
            codec=VIDEO_CODECS[ctx.name],
            profile=ctx.profile,
            width=ctx.width or None,
            height=ctx.height or None,
            fps=round(float(rate), 2) if rate else None,
            has_b_frames=bool(ctx.has_b_frames),
            audio_codec=audio.name if audio else None,
            audio_sample_rate=audio.sample_rate if audio else None,
            extradata=bytes(ctx.extradata or b""),
            audio_channels=audio.channels if audio else None,
            audio_extradata=bytes((audio.extradata if audio else None) or b""),
        )

    def read(self) -> MediaPacket | None:
        streams = [s for s in (self._video, self._audio) if s is not None]
        while True:
            if self._packets is None:
                self._packets = self._container.demux(streams)
            try:
                packet = next(self._packets)
            except (av.error.ExitError, StopIteration) as exc:
                # A read that waited POLL_SECONDS; FFmpeg may resume after it.
                self._packets = None
                if isinstance(exc, StopIteration):
                    raise EOFError from None
                return None
            if packet.size == 0:
                raise EOFError
            if packet.stream is self._video:
                return self._video_packet(packet)
            return self._audio_packet(packet)

    def _video_packet(self, packet: Packet[Any]) -> MediaPacket:
        data = bytes(packet)
        keyframe = packet.is_keyframe
        if self._h264 is not None:
            data, has_idr = self._h264.prepare(data)
            keyframe = keyframe or has_idr
        pts, dts = packet.pts, packet.dts
        if dts == pts or pts is None:
            dts = None
        elif dts is not None and not self.info.has_b_frames:
            self.info = dataclasses.replace(self.info, has_b_frames=True)
        return MediaPacket("video", data, pts, self._video_tb, keyframe, time.monotonic(), dts)

    def _audio_packet(self, packet: Packet[Any]) -> MediaPacket:
        return MediaPacket(
            "audio", bytes(packet), packet.pts, self._audio_tb, True, time.monotonic()
        )

    def close(self) -> None:
        self._container.close()
