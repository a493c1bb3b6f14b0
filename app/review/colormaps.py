"""Colour maps for attention overlays: an attention map in [0, 1] to RGBA layers.

Attention maps are ``(H, W)`` float arrays in ``[0, 1]`` (row, col indexing,
as everywhere in ``gusa_core``); the canvas takes ``(H, W, 4) uint8`` RGBA
layers. The look-up tables come from matplotlib (computed once per name).
Nothing here imports Qt, so these functions are also used by the PNG export.
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = [
    "COLORMAPS",
    "DEFAULT_COLORMAP",
    "colormap_lut",
    "apply_colormap",
    "attention_rgba",
    "threshold_outline",
    "contour_polygons",
    "mask_outline_rgba",
    "colorbar_image",
]

#: Colour maps offered in the review panel and the compare view (display name → matplotlib name).
COLORMAPS = {"jet": "jet", "viridis": "viridis", "inferno": "inferno", "magma": "magma", "grey": "gray"}
DEFAULT_COLORMAP = "jet"


@functools.lru_cache(maxsize=None)
def colormap_lut(name: str) -> np.ndarray:
    """The 256-entry RGB look-up table of colour map ``name``.

    Parameters
    ----------
    name : str
        One of :data:`COLORMAPS`.

    Returns
    -------
    lut : ndarray of shape (256, 3), uint8
    """
    if name not in COLORMAPS:
        raise ValueError(f"unknown colour map {name!r}; choose one of {', '.join(COLORMAPS)}")
    from matplotlib import colormaps  # lazily: only when a map is first drawn

    table = colormaps[COLORMAPS[name]](np.linspace(0.0, 1.0, 256))[:, :3]
    lut = np.round(table * 255).astype(np.uint8)
    lut.setflags(write=False)
    return lut


def _to_index(attention: np.ndarray) -> np.ndarray:
    a = np.asarray(attention, dtype=np.float32)
    if a.ndim != 2:
        raise ValueError(f"attention must be (H, W), got shape {a.shape}")
    return np.clip(np.nan_to_num(a) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def apply_colormap(attention: np.ndarray, colormap: str = DEFAULT_COLORMAP) -> np.ndarray:
    """Colour an attention map.

    Parameters
    ----------
    attention : ndarray of shape (H, W)
        Values in [0, 1] (clipped).
    colormap : str
        One of :data:`COLORMAPS`.

    Returns
    -------
    rgb : ndarray of shape (H, W, 3), uint8
    """
    return colormap_lut(colormap)[_to_index(attention)]


def threshold_outline(attention: np.ndarray, threshold: float, *, thickness: int = 2) -> np.ndarray:
    """The outline of the region ``attention > threshold``.

    Parameters
    ----------
    attention : ndarray of shape (H, W)
    threshold : float
        τ in [0, 1].
    thickness : int
        Line width in image pixels.

    Returns
    -------
    outline : ndarray of shape (H, W), bool
    """
    import cv2

    region = (np.asarray(attention) > threshold).astype(np.uint8)
    canvas = np.zeros(region.shape, np.uint8)
    contours, _ = cv2.findContours(region, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    if contours:
        cv2.drawContours(canvas, contours, -1, 1, thickness=max(1, int(thickness)))
    return canvas.astype(bool)


def contour_polygons(region: np.ndarray, *, min_points: int = 3) -> list[np.ndarray]:
    """The outlines of a binary region as polygons (for vector outlines on the canvas).

    Parameters
    ----------
    region : ndarray of shape (H, W)
        Non-zero inside.
    min_points : int
        Shorter contours are dropped.

    Returns
    -------
    polygons : list of ndarray of shape (N, 2)
        (row, col) vertices of each closed contour.
    """
    import cv2

    binary = (np.asarray(region) > 0).astype(np.uint8)
    contours, _ = cv2.findContours(binary, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    # OpenCV gives (x, y) = (col, row) pixel centres.
    return [c.reshape(-1, 2)[:, ::-1].astype(np.float64) + 0.5 for c in contours if len(c) >= min_points]


def attention_rgba(
    attention: np.ndarray,
    *,
    colormap: str = DEFAULT_COLORMAP,
    opacity: float = 0.45,
    threshold: float = 0.5,
    outline: bool = False,
    heatmap: bool = True,
    outline_color: tuple[int, int, int] = (255, 255, 255),
    thickness: int | None = None,
) -> np.ndarray:
    """An RGBA layer showing an attention map (and optionally its τ outline).

    Parameters
    ----------
    attention : ndarray of shape (H, W)
        Values in [0, 1].
    colormap : str
        One of :data:`COLORMAPS`.
    opacity : float
        Alpha of the heat map, in [0, 1].
    threshold : float
        τ: the outline follows ``attention > threshold``.
    outline : bool
        Draw the outline of ``attention > threshold`` (opaque).
    heatmap : bool
        Draw the coloured heat map (off: the outline alone).
    outline_color : tuple of int
        RGB of the outline.
    thickness : int, optional
        Outline width in pixels; default scales with the image (about 1/300 of its larger side).

    Returns
    -------
    rgba : ndarray of shape (H, W, 4), uint8
    """
    a = np.asarray(attention)
    h, w = a.shape[:2]
    rgba = np.zeros((h, w, 4), np.uint8)
    if heatmap:
        rgba[..., :3] = apply_colormap(a, colormap)
        rgba[..., 3] = int(round(np.clip(opacity, 0.0, 1.0) * 255))
    if outline:
        if thickness is None:
            thickness = max(2, round(max(h, w) / 300))
        line = threshold_outline(a, threshold, thickness=thickness)
        rgba[line, :3] = outline_color
        rgba[line, 3] = 255
    return rgba


def mask_outline_rgba(
    mask: np.ndarray,
    *,
    color: tuple[int, int, int] = (0, 255, 0),
    fill_alpha: float = 0.25,
    thickness: int | None = None,
) -> np.ndarray:
    """An RGBA layer for a ground-truth RoI mask: translucent fill plus an opaque outline.

    Parameters
    ----------
    mask : ndarray of shape (H, W)
        Non-zero inside the RoI.
    color : tuple of int
        RGB of fill and outline.
    fill_alpha : float
        Alpha of the fill in [0, 1] (0: outline only).
    thickness : int, optional
        Outline width; default about 1/300 of the larger side.

    Returns
    -------
    rgba : ndarray of shape (H, W, 4), uint8
    """
    m = np.asarray(mask) > 0
    h, w = m.shape
    if thickness is None:
        thickness = max(2, round(max(h, w) / 300))
    rgba = np.zeros((h, w, 4), np.uint8)
    rgba[m, :3] = color
    rgba[m, 3] = int(round(np.clip(fill_alpha, 0.0, 1.0) * 255))
    line = threshold_outline(m.astype(np.float32), 0.5, thickness=thickness)
    rgba[line, :3] = color
    rgba[line, 3] = 255
    return rgba


def colorbar_image(colormap: str = DEFAULT_COLORMAP, *, width: int = 256, height: int = 12) -> np.ndarray:
    """A horizontal colour bar, 0 on the left, 1 on the right.

    Returns
    -------
    rgb : ndarray of shape (height, width, 3), uint8
    """
    ramp = np.linspace(0.0, 1.0, max(1, int(width)), dtype=np.float32)
    return np.ascontiguousarray(np.broadcast_to(apply_colormap(ramp[None, :], colormap), (int(height), int(width), 3)))
