"""Where the tissue is on a slide, and the grid of fields a slide heatmap reads.

A tissue mask is computed on a thumbnail (see :meth:`~gusa_core.slides.reader.Slide.get_thumbnail`);
thumbnail pixel ``[r, c]`` covers level-0 pixels ``[c * d, (c + 1) * d) x [r * d, (r + 1) * d)``
where ``d`` is the thumbnail's downsample. Boxes are ``(x, y, width, height)`` in level-0 pixels.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

__all__ = ["detect_tissue", "field_grid", "tissue_fraction"]

# Glass and blank areas of H&E slides stay below this HSV saturation (0-255).
_GLASS_SATURATION = 25


def _remove_small(mask: np.ndarray, min_area: float, *, keep_border: bool = True) -> np.ndarray:
    """Drop connected components of ``mask`` smaller than ``min_area`` (those touching the border too unless ``keep_border``)."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_area
    if not keep_border:
        h, w = mask.shape
        x, y = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
        x1, y1 = x + stats[:, cv2.CC_STAT_WIDTH], y + stats[:, cv2.CC_STAT_HEIGHT]
        keep |= (x == 0) | (y == 0) | (x1 == w) | (y1 == h)
    keep[0] = False  # label 0 is the other phase
    return keep[labels]


def detect_tissue(
    thumbnail: np.ndarray,
    *,
    min_object_fraction: float = 0.001,
    max_hole_fraction: float = 0.01,
    min_saturation: int = _GLASS_SATURATION,
) -> np.ndarray:
    """Tissue mask of a slide thumbnail: Otsu on HSV saturation, small objects dropped, holes filled.

    Parameters
    ----------
    thumbnail : ndarray of shape (H, W, 3), uint8
        RGB thumbnail of the whole slide. Not modified.
    min_object_fraction : float
        Tissue pieces smaller than this fraction of the thumbnail are dropped (dust, debris).
    max_hole_fraction : float
        Enclosed background holes smaller than this fraction of the thumbnail are filled.
    min_saturation : int
        Saturation (0-255) that glass never reaches: the threshold never goes below it, and a
        thumbnail whose least saturated part is above it is tissue everywhere.

    Returns
    -------
    mask : ndarray of shape (H, W), bool
        True on tissue. An all-glass thumbnail gives all False, an all-tissue one all True.
    """
    image = np.asarray(thumbnail)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"thumbnail must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    sat = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2HSV)[..., 1]
    if min(sat.shape) >= 16:
        sat = cv2.medianBlur(sat, 3)
    if int(sat.max()) - int(sat.min()) < 10:  # one phase only: glass or tissue
        return np.full(sat.shape, bool(sat.mean() >= min_saturation))
    otsu, _ = cv2.threshold(sat, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    low = sat[sat <= otsu]
    # Otsu splits two stains when there is no glass: then the low class is tissue too
    threshold = otsu if low.size == 0 or low.mean() < min_saturation else min_saturation
    mask = sat > max(threshold, min_saturation)
    total = mask.size
    mask = _remove_small(mask, min_object_fraction * total)
    holes = _remove_small(~mask, max_hole_fraction * total, keep_border=False)
    return ~holes


def field_grid(
    slide_dims_level0: tuple[int, int], field_size_level0: tuple[int, int], *, overlap: float = 0.5
) -> list[tuple[int, int, int, int]]:
    """Boxes of fields covering a slide, row by row.

    Parameters
    ----------
    slide_dims_level0 : (int, int)
        ``(width, height)`` of level 0.
    field_size_level0 : (int, int)
        ``(width, height)`` of a field in level-0 pixels.
    overlap : float
        Fraction of a field shared with its neighbour, in [0, 1): the stride is
        ``round(size * (1 - overlap))`` (at least 1).

    Returns
    -------
    boxes : list of (int, int, int, int)
        ``(x, y, width, height)`` in level-0 pixels, all of the field size. The last field of
        each row and column is moved back to end at the slide's edge, so the slide is covered
        exactly and no field leaves it; a slide smaller than a field gets one field at (0, 0)
        that extends past it (reads there are white).
    """
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    (sw, sh), (fw, fh) = slide_dims_level0, field_size_level0
    if min(sw, sh, fw, fh) <= 0:
        raise ValueError(f"slide and field sizes must be positive, got {slide_dims_level0}, {field_size_level0}")

    def starts(size: int, field: int) -> list[int]:
        if size <= field:
            return [0]
        stride = max(1, round(field * (1.0 - overlap)))
        out = list(range(0, size - field + 1, stride))
        if out[-1] != size - field:
            out.append(size - field)
        return out

    return [(x, y, int(fw), int(fh)) for y in starts(int(sh), int(fh)) for x in starts(int(sw), int(fw))]


def _weights(n: int, lo: float, hi: float) -> np.ndarray:
    """Length of overlap of each unit cell ``[i, i + 1)``, ``i < n``, with ``[lo, hi)``."""
    edges = np.arange(n + 1, dtype=np.float64)
    return np.clip(np.minimum(edges[1:], hi) - np.maximum(edges[:-1], lo), 0.0, None)


def tissue_fraction(
    tissue_mask: np.ndarray, box_level0: tuple[float, float, float, float], downsample: float | tuple[float, float]
) -> float:
    """Fraction of a level-0 box that the tissue mask covers, weighting partly covered mask pixels by area.

    Parameters
    ----------
    tissue_mask : ndarray of shape (H, W), bool
        Mask from :func:`detect_tissue`.
    box_level0 : (float, float, float, float)
        ``(x, y, width, height)`` in level-0 pixels; parts outside the mask count as background.
    downsample : float or (float, float)
        Level-0 pixels per mask pixel (x and y), e.g. ``slide.dimensions[0] / mask.shape[1]``.

    Returns
    -------
    fraction : float
        In [0, 1].
    """
    dx, dy = (downsample, downsample) if np.isscalar(downsample) else downsample
    x, y, w, h = (float(v) for v in box_level0)
    if w <= 0 or h <= 0:
        raise ValueError(f"box size must be positive, got {box_level0}")
    mask = np.asarray(tissue_mask, bool)
    rows, cols = mask.shape
    c0, c1 = max(0, math.floor(x / dx)), min(cols, math.ceil((x + w) / dx))
    r0, r1 = max(0, math.floor(y / dy)), min(rows, math.ceil((y + h) / dy))
    if c1 <= c0 or r1 <= r0:
        return 0.0
    wx = _weights(c1 - c0, x / dx - c0, (x + w) / dx - c0)
    wy = _weights(r1 - r0, y / dy - r0, (y + h) / dy - r0)
    covered = float(wy @ mask[r0:r1, c0:c1].astype(np.float64) @ wx)
    return min(1.0, max(0.0, covered / ((w / dx) * (h / dy))))
