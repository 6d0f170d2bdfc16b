"""One camera's analysis: motion and tamper on its decoded pictures.

The numpy work runs in the stream's decoder thread (relay.media.pictures), so the
event loop only hears of what changed: a motion period began or ended, a tamper
fault was confirmed or cleared."""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Callable
from dataclasses import dataclass

from relay.analysis.motion import MotionDetector
from relay.analysis.periods import PeriodTracker, armed_at
from relay.analysis.regions import same_but_regions
from relay.analysis.tamper import Debounced, TamperCheck
from relay.config import CameraConfig
from relay.media.hub import Hub
from relay.media.pictures import Picture, PictureWatch, pictures_of

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Change:
    """What one camera's pictures showed, handed to the loop."""

    kind: str  # "motion.start", "motion.end", "camera.tamper", "camera.ok"
    camera: CameraConfig
    time: float
    start: float = 0.0  # of the motion period
    box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    zones: tuple[str, ...] = ()
    peak: float = 0.0
    armed: bool = False
    reason: str | None = None
    image: bytes | None = None


class CameraAnalysis:
    def __init__(self, camera: CameraConfig, hub: Hub, tell: Callable[[Change], None]) -> None:
        self.camera = camera
        self.hub = hub
        self.tell = tell  # called on the loop
        self.watches: list[PictureWatch] = []
        self.detector = MotionDetector(camera.motion) if camera.motion else None
        self.tracker = PeriodTracker(camera.motion.cooldown) if camera.motion else None
        self.check = TamperCheck(camera.tamper) if camera.tamper else None
        self.debounced = Debounced(camera.tamper.debounce) if camera.tamper else None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tamper_at = 0.0

    def retune(self, camera: CameraConfig) -> bool:
        """Take the camera's new config while running, if only its name, place or
        motion zones and masks changed (the motion period goes on); False: the
        analysis must start again."""
        old = self.camera
        if old.tamper != camera.tamper or not same_but_regions(old.motion, camera.motion):
            return False
        if old.motion != camera.motion and camera.motion is not None:
            self.detector = MotionDetector(camera.motion)  # the decoder thread takes it next
        self.camera = camera
        return True

    def start(self) -> None:
        """One watch per stream analysed: motion and tamper on the same stream
        share its pictures (tamper takes every few)."""
        self._loop = asyncio.get_running_loop()
        motion, tamper = self.camera.motion, self.camera.tamper
        if motion and tamper and motion.stream == tamper.stream:
            self._watch(motion.stream, max(motion.fps, tamper.fps), self._both)
            return
        if motion:
            self._watch(motion.stream, motion.fps, self._motion)
        if tamper:
            self._watch(tamper.stream, tamper.fps, self._tamper)

    def _watch(self, stream: str, fps: float, on_picture: Callable[[Picture], None]) -> None:
        channel = self.hub.channel(self.camera.id, "sub" if stream == "sub" else "main")
        channel = channel or self.hub.channel(self.camera.id, "main")
        assert channel is not None  # every camera has a main stream
        self.watches.append(pictures_of(channel).watch(fps, on_picture))

    def stop(self) -> None:
        for watch in self.watches:
            watch.close()
        self.watches = []

    def _hand(self, change: Change) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.tell, change)

    # In the decoder's thread:

    def _both(self, picture: Picture) -> None:
        self._motion(picture)
        assert self.camera.tamper is not None
        if picture.monotonic - self._tamper_at >= 0.9 / self.camera.tamper.fps:
            self._tamper_at = picture.monotonic
            self._tamper(picture)

    def _motion(self, picture: Picture) -> None:
        assert self.detector is not None and self.tracker is not None and self.camera.motion
        result = self.tracker.update(self.detector.detect(picture.luma), picture.time)
        if result is None:
            return
        kind, period = result
        armed = armed_at(self.camera.motion.armed, datetime.datetime.fromtimestamp(period.start))
        image = picture.jpeg() if kind == "start" else None
        self._hand(
            Change(
                f"motion.{kind}",
                self.camera,
                period.last if kind == "end" else period.start,
                start=period.start,
                box=period.box,
                zones=tuple(sorted(period.zones)),
                peak=period.peak,
                armed=armed,
                image=image,
            )
        )

    def _tamper(self, picture: Picture) -> None:
        assert self.check is not None and self.debounced is not None
        result = self.debounced.update(self.check.fault(picture.luma, picture.time), picture.time)
        if result is None:
            return
        kind, reason = result
        logger.info("camera %s: %s %s", self.camera.id, kind, reason or "")
        image = picture.jpeg() if kind == "tamper" else None
        self._hand(Change(f"camera.{kind}", self.camera, picture.time, reason=reason, image=image))
