"""A slide's heatmaps as one RGBA layer for the canvas (no Qt here).

The layer shows either the class map (each heatmap pixel in the colour of its most probable
class, classes toggled one by one), one class's probability or the attention map through a
colour map, with a chosen opacity and the τ outline (where the shown value, or for the class
map the winning probability, crosses τ). Pixels off the classified tissue stay transparent.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from app.review.colormaps import attention_rgba, threshold_outline

__all__ = ["CLASS_MAP", "ATTENTION", "HEATMAP_LAYER", "heatmap_rgba", "field_at"]

#: The canvas overlay that shows a slide's heatmap.
HEATMAP_LAYER = "slide_heatmap"
CLASS_MAP = "Class map"
ATTENTION = "Attention"


def heatmap_rgba(
    result,
    mode: str,
    *,
    colormap: str = "viridis",
    opacity: float = 0.5,
    tau: float = 0.5,
    outline: bool = True,
    visible: Sequence[bool] | None = None,
    class_colors: Sequence[tuple[int, int, int]] = (),
) -> np.ndarray:
    """The overlay of a :class:`~gusa_core.inference.slide.SlideResult`.

    Parameters
    ----------
    result : SlideResult
    mode : str
        :data:`CLASS_MAP`, :data:`ATTENTION` or a class name.
    colormap : str
        For a probability or the attention (see :mod:`app.review.colormaps`).
    opacity : float
        Alpha of the covered pixels, in [0, 1].
    tau : float
        The outline's threshold.
    outline : bool
    visible : sequence of bool, optional
        Per class, whether the class map shows it (default: all).
    class_colors : sequence of (int, int, int)
        The class map's colours, in class order.

    Returns
    -------
    rgba : ndarray of shape (H, W, 4), uint8
        At the heatmap's resolution (``result.downsample`` level-0 pixels per pixel).
    """
    covered = result.valid
    n = len(result.class_names)
    if mode == CLASS_MAP:
        labels = np.argmax(result.probs, axis=0)
        best = np.max(result.probs, axis=0)
        shown = covered.copy()
        if visible is not None:
            shown &= np.asarray(list(visible) + [True] * (n - len(visible)), bool)[labels]
        palette = np.array([tuple(class_colors[k]) if k < len(class_colors) else (200, 200, 200) for k in range(n)], np.uint8)
        out = np.zeros(labels.shape + (4,), np.uint8)
        out[..., :3] = palette[labels]
        out[..., 3] = np.where(shown, round(255 * opacity), 0)
        if outline:
            line = threshold_outline(np.where(shown, best, 0.0), tau, thickness=1)
            out[line] = (255, 255, 255, 255)
        return out
    if mode == ATTENTION:
        values = result.attention
    elif mode in result.class_names:
        values = result.probs[result.class_names.index(mode)]
    else:
        raise ValueError(f"unknown heatmap {mode!r}")
    out = attention_rgba(np.where(covered, values, 0.0), colormap=colormap, opacity=opacity, threshold=tau,
                         outline=outline, thickness=1)
    out[~covered] = 0
    return out


def field_at(result, x: float, y: float):
    """The classified field under level-0 point ``(x, y)`` whose centre is nearest, or None."""
    best, dist = None, None
    for f in result.fields:
        fx, fy, fw, fh = f.box
        if fx <= x < fx + fw and fy <= y < fy + fh:
            d = (x - fx - fw / 2) ** 2 + (y - fy - fh / 2) ** 2
            if dist is None or d < dist:
                best, dist = f, d
    return best
