"""The daily inspection (巡检): per camera per local day, minutes online, offline
periods with their reasons and tamper periods, from the recorded state changes;
per village, the share of camera-hours online.

Each camera's day counts from when the node first knew it (its first recorded
state: the node's first start, or the camera added later), so a new node or a new
camera is not charged for the hours before it existed; a day before that has no
row at all. Time a camera spends idle (on demand, nobody watching) is left out of
its hours; time the node itself was stopped afterwards ("stopped") counts as not
online, since the village saw nothing then either."""

from __future__ import annotations

import datetime
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from relay.analysis.store import AnalysisStore
from relay.config import CameraConfig, Config

# Recording coverage, when the recorder provides it: (camera, since, until) -> share.
Coverage = Callable[[str, float, float], Awaitable[float | None]]
States = list[tuple[float, str, str | None]]


def day_bounds(day: datetime.date) -> tuple[float, float]:
    """A local calendar day as Unix times [start, end)."""
    start = datetime.datetime.combine(day, datetime.time()).astimezone()
    end = datetime.datetime.combine(day + datetime.timedelta(days=1), datetime.time()).astimezone()
    return start.timestamp(), end.timestamp()


def days_between(since: float, until: float) -> list[datetime.date]:
    first = datetime.datetime.fromtimestamp(since).date()
    last = datetime.datetime.fromtimestamp(max(since, until - 1e-3)).date()
    return [first + datetime.timedelta(days=n) for n in range((last - first).days + 1)]


@dataclass
class CameraDay:
    camera: str
    name: str
    site: str
    seconds: dict[str, float] = field(default_factory=dict)  # per state
    offline: list[dict[str, Any]] = field(default_factory=list)
    tamper: list[dict[str, Any]] = field(default_factory=list)
    recording: float | None = None
    known_since: float | None = None  # when counting began, if after the day's start

    @property
    def counted(self) -> float:
        return sum(s for state, s in self.seconds.items() if state != "idle")

    def as_json(self) -> dict[str, Any]:
        minutes = {k: round(v / 60, 1) for k, v in self.seconds.items()}
        online = minutes.get("online", 0.0)
        counted = round(self.counted / 60, 1)
        return {
            "camera": self.camera,
            "name": self.name,
            "online_minutes": online,
            "offline_minutes": minutes.get("offline", 0.0),
            "unknown_minutes": round(minutes.get("stopped", 0.0) + minutes.get("starting", 0.0), 1),
            "idle_minutes": minutes.get("idle", 0.0),
            "counted_minutes": counted,
            "share": round(online / counted, 4) if counted else None,
            "offline_periods": self.offline,
            "tamper_periods": self.tamper,
            "tamper_minutes": round(sum(p["minutes"] for p in self.tamper), 1),
            "recording": self.recording,
            "since": self.known_since,
        }


def camera_day(camera: CameraConfig, states: States, start: float, end: float) -> CameraDay | None:
    """Walk the state changes across [start, end): time per state, offline spells.
    None when the node did not know the camera yet (`states` are led by the one in
    force at the report's start, so the first one is the first ever when later)."""
    if not states or states[0][0] >= end:
        return None
    day = CameraDay(camera.id, camera.name, camera.site)
    if states[0][0] > start:
        start = day.known_since = states[0][0]
    current, reason, since = "stopped", None, start
    spell: dict[str, Any] | None = None
    for time, state, why in [*states, (end, "", None)]:
        if time > start:
            span = min(time, end) - max(since, start)
            if span > 0:
                day.seconds[current] = day.seconds.get(current, 0.0) + span
            if current != "offline":
                spell = None
            elif span > 0:
                if spell is None:
                    spell = {"start": max(since, start), "reasons": []}
                    day.offline.append(spell)
                spell["end"] = min(time, end)
                if reason and reason not in spell["reasons"]:
                    spell["reasons"].append(reason)
        if time >= end:
            break
        current, reason, since = state, why, time
    for spell in day.offline:
        spell["minutes"] = round((spell["end"] - spell["start"]) / 60, 1)
    return day


def tamper_day(
    periods: Sequence[tuple[float, float | None, str]], start: float, end: float, now: float
) -> list[dict[str, Any]]:
    out = []
    for first, last, reason in periods:
        a, b = max(first, start), min(last if last is not None else now, end)
        if b > a:
            out.append({"start": a, "end": b, "reason": reason, "minutes": round((b - a) / 60, 1)})
    return out


class Inspection:
    def __init__(self, config: Config, store: AnalysisStore) -> None:
        self.config = config
        self.store = store

    async def report(
        self,
        since: float,
        until: float,
        now: float,
        cameras: Sequence[CameraConfig],
        coverage: Coverage | None = None,
    ) -> list[dict[str, Any]]:
        """One entry per local day overlapping [since, until), days cut at `now`; a
        day the node knew none of the cameras has no villages (no data, not zeros).
        `coverage`: the recordings' share of a camera's span, where there are any."""
        ids = [c.id for c in cameras]
        states = await self.store.states(ids, since, min(until, now))
        tampers = await self.store.tamper_periods(ids, since, min(until, now))
        out = []
        for date in days_between(since, until):
            start, end = day_bounds(date)
            start, end = max(start, since), min(end, until, now)
            if end <= start:
                continue
            rows = []
            for camera in cameras:
                day = camera_day(camera, states[camera.id], start, end)
                if day is None:
                    continue
                counted_from = day.known_since or start
                day.tamper = tamper_day(tampers[camera.id], counted_from, end, now)
                if coverage is not None:
                    day.recording = await coverage(camera.id, counted_from, end)
                rows.append(day)
            out.append(
                {
                    "date": date.isoformat(),
                    "start": start,
                    "end": end,
                    "villages": self._villages(rows),
                }
            )
        return out

    def _villages(self, rows: list[CameraDay]) -> list[dict[str, Any]]:
        names = {s.id: s.name for s in self.config.sites}
        by_site: dict[str, list[CameraDay]] = {}
        for row in rows:
            by_site.setdefault(row.site, []).append(row)
        villages = []
        for site, days in by_site.items():
            counted = sum(d.counted for d in days)
            online = sum(d.seconds.get("online", 0.0) for d in days)
            cameras = sorted((d.as_json() for d in days), key=_worst_first)
            villages.append(
                {
                    "site": site,
                    "name": names.get(site, site),
                    "camera_hours": round(counted / 3600, 2),
                    "online_hours": round(online / 3600, 2),
                    "share": round(online / counted, 4) if counted else None,
                    "cameras": cameras,
                }
            )
        return sorted(villages, key=_worst_village_first)


def _worst_village_first(village: dict[str, Any]) -> tuple[float, str, str]:
    """Worst share first; equal ones by name, then id, the same every day."""
    share = village["share"] if village["share"] is not None else 2.0
    return (share, village["name"], village["site"])


def _worst_first(camera: dict[str, Any]) -> tuple[float, float, str]:
    share = camera["share"] if camera["share"] is not None else 2.0
    return (share, -camera["tamper_minutes"], camera["camera"])
