"""H.265 recordings for a browser without HEVC in MSE: one transcode per playback session.

Recordings stay H.265 on disk. When a playback session says its browser cannot
take H.265, each part it is served (a segment's init part and its fragments from
a moment) is decoded and encoded to Constrained Baseline H.264 in fMP4, in a
thread, streamed to the client as fragments come out; its AAC audio, if it has
some, goes through as it was recorded. The media times are the
recording's own (`frag_discont`: a fragment's tfdt is its first frame's time) and
a keyframe falls where the camera put one, so the fragments cover the same
moments and the page maps them to wall time as it does the recorded ones.

At most `limit` sessions of the node transcode; a session keeps its slot until
it ends (DELETE, idle, shutdown). A session runs one transcode at a time: a new
request (a seek) stops the one before, and so does the end of the session or the
client going away.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import threading
from collections.abc import AsyncGenerator, Callable
from fractions import Fraction

import av

from relay.media.transcode import BROWSER_H264
from relay.refusal import Refused

logger = logging.getLogger(__name__)

# frag_discont with an edit list: the first fragment's tfdt is the first frame's
# time (without it the muxer starts media time at 0). Checked with PyAV 18's FFmpeg.
# skip_trailer: a stream for MSE needs no random-access index (mfra) at its end.
# max_interleave_delta: video waits at most 1 s for audio that may have stopped
# (FFmpeg's default is 10 s: the first fragment would wait that long).
MUX_OPTIONS = {
    "movflags": "frag_keyframe+empty_moov+default_base_moof+frag_discont+skip_trailer",
    "use_editlist": "1",
    "max_interleave_delta": "1000000",
}
CHUNKS = 16  # encoded chunks held for a slow client before the encoder waits
RETRY_AFTER = 30  # seconds, told to a refused client


class _Sink:
    """A write-only file for the muxer: each write handed on as it comes."""

    def __init__(self, emit: Callable[[bytes], None]) -> None:
        self.emit = emit

    def write(self, data: bytes) -> int:
        self.emit(bytes(data))
        return len(data)


def transcode(part: bytes, stop: threading.Event, emit: Callable[[bytes], None]) -> int:
    """Decodes an fMP4 part and hands H.264 fMP4 with the same media times to `emit`,
    chunk by chunk, until done or `stop`; the count of frames encoded. Blocking."""
    frames = 0
    with (
        av.open(io.BytesIO(part), "r", format="mp4") as source,
        av.open(_Sink(emit), "w", format="mp4", options=MUX_OPTIONS) as out,
    ):
        video = source.streams.video[0]
        stream = out.add_stream("libx264", rate=video.average_rate or Fraction(25))
        stream.width, stream.height = video.codec_context.width, video.codec_context.height
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = video.time_base or Fraction(1, 90000)
        stream.codec_context.options = {
            **BROWSER_H264,
            "forced-idr": "1",  # a keyframe where the camera put one (below), and only there
            "x264-params": "keyint=infinite:scenecut=0:bframes=0",
        }
        # the recording's AAC goes through as it is, beside the video
        sound = source.streams.audio[0] if source.streams.audio else None
        sound_out = out.add_stream_from_template(sound) if sound is not None else None
        for packet in source.demux(*(s for s in (video, sound) if s is not None)):
            if stop.is_set():
                return frames
            if packet.stream is not video:
                if packet.size and sound_out is not None:
                    packet.stream = sound_out
                    out.mux(packet)
                continue
            for frame in video.decode(packet):
                keyframe = frame.key_frame
                frame.pict_type = (
                    av.video.frame.PictureType.I if keyframe else av.video.frame.PictureType.NONE
                )
                for encoded in stream.encode(frame):
                    out.mux(encoded)
                frames += 1
        for encoded in stream.encode():
            out.mux(encoded)
    return frames


class Transcodes:
    """The node's transcoding playback sessions, at most `limit` at once (the
    config's of the moment: a reload applies to the next request)."""

    def __init__(self) -> None:
        self._stops: dict[str, threading.Event] = {}  # session -> stop of its transcode

    @property
    def sessions(self) -> int:
        return len(self._stops)

    def admit(self, session: str, limit: int) -> threading.Event:
        """A stop event for the session's new transcode; its earlier one stops."""
        if session not in self._stops and len(self._stops) >= limit:
            raise Refused(
                503,
                f"{len(self._stops)} playback sessions are transcoding H.265, the most this"
                " node allows (storage.playback_transcodes): close one or try later",
                retry_after=RETRY_AFTER,
            )
        earlier = self._stops.get(session)
        if earlier is not None:
            earlier.set()
        stop = self._stops[session] = threading.Event()
        return stop

    def end(self, session: str) -> None:
        """The session is over: its transcode stops, its slot is free."""
        stop = self._stops.pop(session, None)
        if stop is not None:
            stop.set()

    async def stream(self, session: str, part: bytes, limit: int) -> AsyncGenerator[bytes]:
        """The part transcoded, chunk by chunk; stopped when the caller stops reading."""
        stop = self.admit(session, limit)
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[bytes | None] = asyncio.Queue(CHUNKS)

        def emit(chunk: bytes | None) -> None:
            if chunk is None or not stop.is_set():
                asyncio.run_coroutine_threadsafe(chunks.put(chunk), loop).result()

        def work() -> int:
            try:
                return transcode(part, stop, emit)
            finally:
                emit(None)

        worker = asyncio.ensure_future(asyncio.to_thread(work))
        try:
            while (chunk := await chunks.get()) is not None:
                yield chunk
        finally:
            stop.set()
            while not worker.done():  # let a waiting encoder on, to see the stop
                with contextlib.suppress(asyncio.QueueEmpty):
                    while True:
                        chunks.get_nowait()
                await asyncio.wait([worker], timeout=0.05)
            if worker.exception() is not None:
                logger.warning("playback %s: transcode failed: %s", session, worker.exception())
