"""Tamper and video loss from the pictures of an online camera: covered (black or
uniform), frozen (identical pictures while packets arrive), blurred, or turned
away from the scene it showed. A fault must last `debounce` seconds to be
reported, and so must its end."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from relay.config import TamperConfig

UNIFORM_RANGE = 12.0  # luma levels between the 2nd and 98th percentile: nothing to see
DARK = 40.0
IDENTICAL = 0.1  # mean luma difference below which two pictures are the same picture
GAP = 3.0  # pictures further apart than this (no packets): the frozen clock restarts
BLURRED = 0.35  # sharpness below this share of the learned sharpness
TURNED = 0.4  # edge correlation with the learned scene below this
LEARN_RATE = 0.02


def edges(luma: np.ndarray) -> np.ndarray:
    """Gradient magnitude (|dy| + |dx|): what a scene's structure looks like."""
    picture = luma.astype(np.float32)
    return np.abs(np.diff(picture, axis=0))[:, :-1] + np.abs(np.diff(picture, axis=1))[:-1, :]


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    scale = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum()) / scale if scale > 0 else 0.0


class TamperCheck:
    """What is wrong with the picture right now (before any debounce)."""

    def __init__(self, config: TamperConfig) -> None:
        self.config = config
        self._previous: np.ndarray | None = None
        self._previous_time = 0.0
        self._same_since: float | None = None
        self._sharpness: float | None = None
        self._scene: np.ndarray | None = None
        self._learned = 0.0  # seconds of good pictures learned from

    def fault(self, luma: np.ndarray, now: float) -> str | None:
        low, high = np.percentile(luma[::2, ::2], (2, 98))  # every 4th pixel is plenty
        frozen = self._frozen(luma, now)
        if high - low < UNIFORM_RANGE:
            return "black" if high < DARK else "uniform"
        if frozen:
            return "frozen"
        return self._changed(luma)

    def _frozen(self, luma: np.ndarray, now: float) -> bool:
        previous, self._previous = self._previous, luma
        gap = now - self._previous_time > GAP
        self._previous_time = now
        if previous is None or gap or previous.shape != luma.shape:
            self._same_since = None
            return False
        same = float(np.abs(luma.astype(np.int16) - previous).mean()) < IDENTICAL
        if not same:
            self._same_since = None
            return False
        if self._same_since is None:
            self._same_since = now
        return now - self._same_since >= self.config.frozen_seconds

    def _changed(self, luma: np.ndarray) -> str | None:
        scene = edges(luma)
        sharp = float(scene.mean())
        if self._learned < self.config.learn_seconds or self._sharpness is None:
            self._learn(scene, sharp)
            return None
        assert self._scene is not None
        if sharp < BLURRED * self._sharpness:
            return "blurred"
        if self._scene.shape == scene.shape and correlation(scene, self._scene) < TURNED:
            return "moved"
        self._learn(scene, sharp)
        return None

    def _learn(self, scene: np.ndarray, sharp: float) -> None:
        if self._sharpness is None or self._scene is None or self._scene.shape != scene.shape:
            self._sharpness, self._scene, self._learned = sharp, scene, 0.0
        else:
            self._sharpness += LEARN_RATE * (sharp - self._sharpness)
            self._scene += LEARN_RATE * (scene - self._scene)
        self._learned += 1.0 / self.config.fps


@dataclass
class Debounced:
    """A fault reported once it has lasted `seconds`; its end likewise."""

    seconds: float
    reported: str | None = None  # the reason out now, None: camera.ok
    _since: float | None = None  # when the picture began to disagree with `reported`

    def update(self, fault: str | None, now: float) -> tuple[str, str | None] | None:
        """("tamper", reason) or ("ok", None) when the reported state changes."""
        if (fault is None) == (self.reported is None):
            self._since = None
            return None
        if self._since is None:
            self._since = now
        if now - self._since < self.seconds:
            return None
        self._since = None
        self.reported = fault
        return ("tamper", fault) if fault is not None else ("ok", None)
