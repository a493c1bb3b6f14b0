"""Suggested RoI masks: the ensemble's RoI map ỹ turned into a mask an annotator can accept.

ỹ (the mean of the folds' RoI maps, up-sampled to the image's resolution) is
binarised at ``tau`` the way the mean IoU of eq. 9 binarises it (``ỹ > τ``),
then cleaned as an annotator would draw it: specks smaller than a share of
the image are dropped and enclosed holes are filled.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["suggest_mask", "DEFAULT_MIN_ISLAND_FRACTION"]

#: Islands smaller than this share of the image are dropped (0.1 % of a 2048x1536 image is ~56x56 px);
#: on the demo's true masks, 0.5 % already removes real small ducts (benchmarks/roi_quality.py).
DEFAULT_MIN_ISLAND_FRACTION = 0.001


def suggest_mask(
    roi_map: np.ndarray,
    *,
    tau: float = 0.5,
    min_island_fraction: float = DEFAULT_MIN_ISLAND_FRACTION,
    fill_holes: bool = True,
) -> np.ndarray:
    """Binarise an RoI map into a suggested mask.

    Parameters
    ----------
    roi_map : ndarray of shape (H, W)
        ỹ in [0, 1] at the image's resolution (float; any real dtype).
    tau : float
        Threshold: a pixel is RoI where ``roi_map > tau`` (as in eq. 9).
    min_island_fraction : float
        Connected RoI regions (8-connectivity) whose area is below
        ``min_island_fraction * H * W`` pixels are removed; 0 keeps them all.
    fill_holes : bool
        Fill background regions (4-connectivity) that do not touch the image
        border, i.e. holes enclosed by RoI.

    Returns
    -------
    ndarray of shape (H, W), uint8
        255 where RoI is suggested, 0 elsewhere. The input is not modified.

    Raises
    ------
    ValueError
        ``roi_map`` is not 2-D, is empty or holds NaN, or an option is out of range.

    Examples
    --------
    >>> m = np.zeros((8, 8)); m[2:6, 2:6] = 0.9; m[3, 3] = 0.1
    >>> int(suggest_mask(m, min_island_fraction=0).sum() // 255)
    16
    """
    roi_map = np.asarray(roi_map)
    if roi_map.ndim != 2 or roi_map.size == 0:
        raise ValueError(f"roi_map must be a non-empty (H, W) array, got shape {roi_map.shape}")
    if not np.issubdtype(roi_map.dtype, np.number) or np.issubdtype(roi_map.dtype, np.complexfloating):
        raise ValueError(f"roi_map must be real-valued, got {roi_map.dtype}")
    if np.isnan(roi_map).any():
        raise ValueError("roi_map holds NaN")
    if not 0.0 <= min_island_fraction < 1.0:
        raise ValueError(f"min_island_fraction must lie in [0, 1), got {min_island_fraction}")
    fg = (roi_map > tau).astype(np.uint8)
    h, w = fg.shape
    if min_island_fraction > 0 and fg.any():
        n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
        keep = stats[:, cv2.CC_STAT_AREA] >= min_island_fraction * h * w
        keep[0] = False  # label 0 is the background
        fg = keep[labels].astype(np.uint8)
    if fill_holes and fg.any() and not fg.all():
        n, labels = cv2.connectedComponents(1 - fg, connectivity=4)
        border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
        hole = np.ones(n, dtype=bool)
        hole[border] = False
        hole[0] = False  # label 0 is the foreground here
        fg[hole[labels]] = 1
    return fg * np.uint8(255)
