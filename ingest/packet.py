"""What a source hands downstream: immutable encoded packets and stream facts."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal

MediaKind = Literal["video", "audio"]


@dataclass(frozen=True, slots=True)
class MediaPacket:
    """One encoded access unit, shared as-is by every consumer.

    `data` is immutable bytes: video is H.264/H.265 Annex-B, and an H.264 keyframe
    always carries its SPS and PPS, so any consumer can start at any keyframe.
    """

    kind: MediaKind
    data: bytes
    pts: int | None
    time_base: Fraction
    keyframe: bool
    received: float  # time.monotonic() when the packet left the demuxer
    # The decode time, where the demuxer knows one and it differs from pts
    # (B-frames); None means "decoded when presented".
    dts: int | None = None
    # What consumers derive from the packet once for all of them (RTP payloads).
    derived: dict[str, object] = field(default_factory=dict, compare=False, repr=False)

    @property
    def seconds(self) -> float | None:
        return None if self.pts is None else float(self.pts * self.time_base)


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """What the camera sends, as far as the demuxer knows at connect time."""

    codec: str  # "h264" or "h265"
    profile: str | None
    width: int | None
    height: int | None
    fps: float | None
    has_b_frames: bool
    audio_codec: str | None  # "pcm_alaw", "pcm_mulaw", "aac", ...
    audio_sample_rate: int | None = None
    extradata: bytes = b""
    audio_channels: int | None = None
    audio_extradata: bytes = b""  # AAC's AudioSpecificConfig

    def as_dict(self) -> dict[str, object]:
        return {
            "codec": self.codec,
            "profile": self.profile,
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "has_b_frames": self.has_b_frames,
            "audio_codec": self.audio_codec,
        }
