"""Zones and masks: polygons in 0..1 of the picture, rasterised once per picture
size; those drawn in the browser (kept in the database) override the file's."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from relay.config import CameraConfig, MotionConfig, MotionRegions

Point = tuple[float, float]


def raster(polygon: Sequence[Point], shape: tuple[int, int]) -> np.ndarray:
    """Which pixels of a `shape` (rows, columns) picture have their centre inside
    the polygon (even-odd rule, so a polygon may be any simple shape)."""
    rows, cols = shape
    ys = (np.arange(rows, dtype=np.float32)[:, None] + 0.5) / rows
    xs = (np.arange(cols, dtype=np.float32)[None, :] + 0.5) / cols
    inside = np.zeros(shape, dtype=bool)
    points = list(polygon)
    for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1], strict=True):
        if y1 == y2:
            continue
        crosses = (ys >= min(y1, y2)) & (ys < max(y1, y2))
        x_at = x1 + (ys - y1) * (x2 - x1) / (y2 - y1)
        inside ^= crosses & (xs < x_at)
    return inside


def allowed_area(
    zones: Sequence[Sequence[Point]], masks: Sequence[Sequence[Point]], shape: tuple[int, int]
) -> np.ndarray:
    """Inside some zone (everywhere when there are none) and outside every mask."""
    area = np.zeros(shape, dtype=bool) if zones else np.ones(shape, dtype=bool)
    for zone in zones:
        area |= raster(zone, shape)
    for mask in masks:
        area &= ~raster(mask, shape)
    return area


def with_regions(camera: CameraConfig, drawn: MotionRegions | None) -> CameraConfig:
    """The camera as analysed: its motion with the drawn zones and masks, if any."""
    if drawn is None or camera.motion is None:
        return camera
    motion = camera.motion.model_copy(update={"zones": drawn.zones, "masks": drawn.masks})
    return camera.model_copy(update={"motion": motion})


def same_but_regions(a: MotionConfig | None, b: MotionConfig | None) -> bool:
    """The same motion settings, zones and masks aside."""
    if a is None or b is None:
        return a is b
    no_regions: dict[str, list[object]] = {"zones": [], "masks": []}
    return a.model_copy(update=no_regions) == b.model_copy(update=no_regions)
