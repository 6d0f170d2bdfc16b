"""The motion detector and the tamper checks on plain pictures (numpy arrays)."""

from __future__ import annotations

import numpy as np

from relay.analysis.motion import MotionDetector
from relay.analysis.tamper import Debounced, TamperCheck
from relay.config import MotionConfig, TamperConfig

RNG = np.random.default_rng(7)


def scene(box_at: int | None = None, light: int = 0) -> np.ndarray:
    picture = np.tile(np.linspace(40, 200, 213, dtype=np.float32), (120, 1))
    picture += RNG.normal(0, 2, picture.shape).astype(np.float32)
    if box_at is not None:
        picture[50:66, box_at : box_at + 16] = 250
    return np.clip(picture + light, 0, 255).astype(np.uint8)


def test_a_lighting_change_is_not_motion_but_a_box_is() -> None:
    detector = MotionDetector(MotionConfig())
    for _ in range(10):
        assert detector.detect(scene()) is None
    assert detector.detect(scene(light=50)) is None, "lights on: the whole picture changed"
    assert detector.detect(scene(light=50)) is None
    found = detector.detect(scene(box_at=100, light=50))
    assert found is not None
    x, y, w, _h = found.box
    assert 0.4 < x < 0.5 and 0.38 < y < 0.45 and w < 0.15


def test_motion_outside_every_zone_is_ignored() -> None:
    left = {"name": "left", "polygon": [(0, 0), (0.3, 0), (0.3, 1), (0, 1)]}
    detector = MotionDetector(MotionConfig.model_validate({"zones": [left]}))
    for _ in range(5):
        detector.detect(scene())
    assert detector.detect(scene(box_at=150)) is None
    found = detector.detect(scene(box_at=20))
    assert found is not None and found.zones == ("left",)


def test_blur_and_a_turned_camera_after_learning() -> None:
    check = TamperCheck(TamperConfig(fps=5, learn_seconds=5))
    textured = (RNG.random((120, 213)) * 200).astype(np.uint8)
    t = 0.0
    for _ in range(30):
        t += 0.2
        assert check.fault(textured + RNG.integers(0, 3, textured.shape, dtype=np.uint8), t) is None
    smooth = np.tile(np.linspace(60, 120, 213, dtype=np.uint8), (120, 1))
    assert check.fault(smooth, t + 0.2) == "blurred"
    elsewhere = (RNG.random((120, 213)) * 200).astype(np.uint8)
    assert check.fault(elsewhere, t + 0.4) == "moved"


def test_debounce_reports_a_fault_once_it_lasts() -> None:
    debounced = Debounced(2.0)
    assert debounced.update("black", 0.0) is None
    assert debounced.update(None, 1.0) is None, "back before the debounce ran out"
    assert debounced.update("black", 1.5) is None
    assert debounced.update("black", 3.6) == ("tamper", "black")
    assert debounced.update(None, 4.0) is None
    assert debounced.update(None, 6.1) == ("ok", None)
