"""The motion detector and the tamper checks on plain pictures (numpy arrays)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.analysis.motion import MotionDetector, _label
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


def flood_groups(active: np.ndarray) -> set[frozenset[tuple[int, int]]]:
    """The 8-connected groups of active cells, by a plain flood fill."""
    rows, cols = active.shape
    seen: set[tuple[int, int]] = set()
    groups = set()
    for start in zip(*np.nonzero(active), strict=True):
        cell = (int(start[0]), int(start[1]))
        if cell in seen:
            continue
        group, todo = set(), [cell]
        seen.add(cell)
        while todo:
            r, c = todo.pop()
            group.add((r, c))
            for nr in range(max(0, r - 1), min(rows, r + 2)):
                for nc in range(max(0, c - 1), min(cols, c + 2)):
                    if active[nr, nc] and (nr, nc) not in seen:
                        seen.add((nr, nc))
                        todo.append((nr, nc))
        groups.add(frozenset(group))
    return groups


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 30).flatmap(
        lambda rows: st.integers(1, 50).flatmap(
            lambda cols: st.lists(st.booleans(), min_size=rows * cols, max_size=rows * cols).map(
                lambda cells: np.array(cells, dtype=bool).reshape(rows, cols)
            )
        )
    )
)
def test_moving_cells_are_grouped_as_a_flood_fill_groups_them(active: np.ndarray) -> None:
    labels = _label(active)
    assert ((labels > 0) == active).all()
    groups: dict[int, set[tuple[int, int]]] = {}
    for r, c in zip(*np.nonzero(labels), strict=True):
        groups.setdefault(int(labels[r, c]), set()).add((int(r), int(c)))
    assert {frozenset(g) for g in groups.values()} == flood_groups(active)


def test_a_winding_body_is_one_group() -> None:
    """A snake through the whole grid (the longest path a flood can take) is one."""
    active = np.ones((25, 45), dtype=bool)
    active[1::4, :-1] = False
    active[3::4, 1:] = False
    assert len(np.unique(_label(active)[active])) == 1
