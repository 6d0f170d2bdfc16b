"""Motion periods: one start and one end for a stretch of motion, not one per
picture; motion again within the cooldown continues the same period."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass, field

from relay.analysis.motion import Motion

CONFIRM = 2  # pictures in a row with motion before a period starts (one is a flicker)


def armed_at(windows: Sequence[str], when: datetime.datetime) -> bool:
    """Whether a local time falls in one of the "HH:MM-HH:MM" windows (which may
    cross midnight; "00:00-24:00" is all day)."""
    minute = when.hour * 60 + when.minute
    for window in windows:
        first, last = (int(p[:2]) * 60 + int(p[3:]) for p in window.split("-"))
        if first <= last and first <= minute < last:
            return True
        if first > last and (minute >= first or minute < last):
            return True
    return False


@dataclass
class Period:
    start: float  # wall clock of its first moving picture
    box: tuple[float, float, float, float]
    zones: set[str] = field(default_factory=set)
    last: float = 0.0  # wall clock of its last moving picture
    peak: float = 0.0  # the largest moving share seen

    def grow(self, motion: Motion, now: float) -> None:
        x0, y0 = min(self.box[0], motion.box[0]), min(self.box[1], motion.box[1])
        x1 = max(self.box[0] + self.box[2], motion.box[0] + motion.box[2])
        y1 = max(self.box[1] + self.box[3], motion.box[1] + motion.box[3])
        self.box = (x0, y0, round(x1 - x0, 4), round(y1 - y0, 4))
        self.zones.update(motion.zones)
        self.last = now
        self.peak = max(self.peak, motion.area)


class PeriodTracker:
    def __init__(self, cooldown: float) -> None:
        self.cooldown = cooldown
        self.open: Period | None = None
        self._streak = 0

    def update(self, motion: Motion | None, now: float) -> tuple[str, Period] | None:
        """("start", period), ("end", period) or None, for one analysed picture."""
        period = self.open
        if motion is None:
            self._streak = 0
            if period is not None and now - period.last >= self.cooldown:
                self.open = None
                return "end", period
            return None
        self._streak += 1
        if period is not None:
            period.grow(motion, now)
            return None
        if self._streak < CONFIRM:
            return None
        self.open = Period(now, motion.box, set(motion.zones), now, motion.area)
        return "start", self.open
