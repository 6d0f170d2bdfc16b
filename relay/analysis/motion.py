"""Motion in a picture (numpy only): blurred luma against a running-average
background, thresholded, dilated, and the moving areas that are big enough, inside
a zone and outside every mask. A change of the whole picture at once (lights
switched on, the camera's day/night switch) is taken as the new background, not
as motion."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from relay.analysis.regions import allowed_area, raster
from relay.config import MotionConfig

BACKGROUND_RATE = 0.1  # per picture: at 5 fps the background follows in about 2 s
WHOLE_PICTURE = 0.4  # this share changed at once is a lighting change, not motion
CELL = 4  # moving pixels are grouped into areas on a grid of this many pixels
BLUR = 2  # box blur radius, pixels


@dataclass(frozen=True)
class Motion:
    area: float  # the moving share of the picture
    box: tuple[float, float, float, float]  # x, y, width, height in 0..1
    zones: tuple[str, ...]


def threshold(sensitivity: int) -> float:
    """Luma difference that counts: 5 levels at sensitivity 100, 20 at 70, 54 at 1."""
    return 5.0 + (100 - sensitivity) * 0.5


def blur(picture: np.ndarray, radius: int = BLUR) -> np.ndarray:
    """A box blur: shifted slices summed, each axis in turn (edges repeated)."""
    size = 2 * radius + 1
    rows, cols = picture.shape
    padded = np.empty((rows + 2 * radius, cols + 2 * radius), dtype=np.float32)
    padded[radius:-radius, radius:-radius] = picture
    padded[:radius, radius:-radius] = picture[0]
    padded[-radius:, radius:-radius] = picture[-1]
    padded[:, :radius] = padded[:, radius : radius + 1]
    padded[:, -radius:] = padded[:, -radius - 1 : -radius]
    summed = padded[:rows].copy()
    for shift in range(1, size):
        summed += padded[shift : rows + shift]
    out = summed[:, :cols].copy()
    for shift in range(1, size):
        out += summed[:, shift : cols + shift]
    out *= 1.0 / (size * size)
    return out


def dilate(changed: np.ndarray) -> np.ndarray:
    """Each changed pixel spreads to its 8 neighbours, closing gaps in a body."""
    out = changed.copy()
    out[1:, :] |= changed[:-1, :]
    out[:-1, :] |= changed[1:, :]
    grown = out.copy()
    grown[:, 1:] |= out[:, :-1]
    grown[:, :-1] |= out[:, 1:]
    return grown


class MotionDetector:
    def __init__(self, config: MotionConfig) -> None:
        self.config = config
        self.limit = threshold(config.sensitivity)
        self.background: np.ndarray | None = None
        self._allowed: np.ndarray | None = None
        self._zones: list[tuple[str, np.ndarray]] = []
        self.lighting_changes = 0

    def _prepare(self, shape: tuple[int, int]) -> None:
        cfg = self.config
        self._allowed = allowed_area([z.polygon for z in cfg.zones], cfg.masks, shape)
        self._zones = [(z.name, raster(z.polygon, shape)) for z in cfg.zones]

    def detect(self, luma: np.ndarray) -> Motion | None:
        picture = blur(luma)
        background = self.background
        if background is None or background.shape != picture.shape:
            self.background = picture
            self._prepare((picture.shape[0], picture.shape[1]))
            return None
        # Brightness shifts of the whole picture (auto exposure) cancel out here.
        # One new array for all the steps below, worked on in place.
        diff = picture - background
        diff -= picture.mean() - background.mean()
        changed = np.abs(diff, out=diff) > self.limit
        if changed.mean() > WHOLE_PICTURE:
            self.background = picture
            self.lighting_changes += 1
            return None
        np.subtract(picture, background, out=diff)
        diff *= BACKGROUND_RATE
        background += diff
        assert self._allowed is not None
        moving = dilate(changed) & self._allowed
        return self._areas(moving)

    def _areas(self, moving: np.ndarray) -> Motion | None:
        rows, cols = moving.shape
        h, w = -(-rows // CELL), -(-cols // CELL)
        padded = np.zeros((h * CELL, w * CELL), dtype=bool)
        padded[:rows, :cols] = moving
        counts = padded.reshape(h, CELL, w, CELL).sum(axis=(1, 3))
        total = rows * cols
        if counts.sum() < self.config.min_area * total:
            return None  # all of it together is too small: no need to group (most pictures)
        labels = _label(counts > 0)
        sizes = np.bincount(labels.ravel(), weights=counts.ravel())
        big = sizes / total >= self.config.min_area
        big[0] = False  # label 0: no motion
        if not big.any():
            return None
        ys, xs = np.nonzero(big[labels])
        y0, y1 = int(ys.min()) * CELL, min(rows, (int(ys.max()) + 1) * CELL)
        x0, x1 = int(xs.min()) * CELL, min(cols, (int(xs.max()) + 1) * CELL)
        area = float(moving[y0:y1, x0:x1].sum()) / total
        zones = tuple(name for name, inside in self._zones if (inside & moving)[y0:y1, x0:x1].any())
        box = (x0 / cols, y0 / rows, (x1 - x0) / cols, (y1 - y0) / rows)
        x, y, bw, bh = (round(v, 4) for v in box)
        return Motion(round(area, 4), (x, y, bw, bh), zones)


def _label(active: np.ndarray) -> np.ndarray:
    """8-connected groups of active cells, numbered from 1 (0: inactive).

    The cells of a row come in runs (found by numpy); a run joins each run of the
    row above that touches it, corners included, in a union-find over runs. A
    moving body is a few runs a row however large it is, so this is a short
    Python loop where a flood of cells would be a long one."""
    rows, cols = active.shape
    padded = np.zeros((rows, cols + 2), dtype=np.int8)
    padded[:, 1:-1] = active
    edges = np.diff(padded, axis=1)  # 1 where a run starts, -1 just after it ends
    row_of, first = np.nonzero(edges == 1)
    end = np.nonzero(edges == -1)[1]  # exclusive
    count = len(first)
    parent = list(range(count))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    starts, ends = first.tolist(), end.tolist()
    row_begins = np.searchsorted(row_of, np.arange(rows + 1)).tolist()
    for row in range(1, rows):
        for i in range(row_begins[row], row_begins[row + 1]):
            for j in range(row_begins[row - 1], row_begins[row]):
                if starts[j] <= ends[i] and starts[i] <= ends[j]:  # touching, corners too
                    a, b = root(i), root(j)
                    if a != b:
                        parent[max(a, b)] = min(a, b)
    ids = np.array([root(i) + 1 for i in range(count)], dtype=np.intp)
    lengths = end - first
    # every active cell's flat index, run after run, and its run's group
    cells = np.repeat(row_of * cols + first - np.cumsum(lengths) + lengths, lengths)
    cells += np.arange(int(lengths.sum()))
    out = np.zeros(rows * cols, dtype=np.intp)
    out[cells] = np.repeat(ids, lengths)
    return out.reshape(rows, cols)
