"""Zones and masks: polygons in 0..1 of the picture, rasterised once per picture size."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

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
