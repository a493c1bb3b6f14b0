"""Assisted annotation: suggested RoI masks and what to annotate next.

- :func:`suggest_mask`: the ensemble's RoI map ỹ as a mask to accept or correct;
- :func:`uncertainty_scores` and :func:`rank_images`: the queue of images the
  model least knows (entropy, fold disagreement, RoI uncertainty), taken in
  turns from each predicted class (:func:`spread_by_class`);
- :func:`scan_project`: each fold model over a project's images (a generator),
  the input of :func:`annotation_queue` and :func:`suggestion`.
"""

from .scan import annotation_queue, mean_roi_map, scan_project, stitched_roi, suggester_key, suggestion
from .rank import DEFAULT_WEIGHTS, RankedItem, rank_images, spread_by_class, uncertainty_scores
from .suggest import DEFAULT_MIN_ISLAND_FRACTION, suggest_mask

__all__ = [
    "suggest_mask",
    "DEFAULT_MIN_ISLAND_FRACTION",
    "uncertainty_scores",
    "rank_images",
    "spread_by_class",
    "RankedItem",
    "DEFAULT_WEIGHTS",
    "scan_project",
    "annotation_queue",
    "mean_roi_map",
    "suggestion",
    "suggester_key",
    "stitched_roi",
]
