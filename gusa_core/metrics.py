"""Classification and RoI metrics of the paper's evaluation (Tables II-IV, eq. 9).

Accuracy, ROC AUC per class (one-vs-rest) and macro, ROC curves, the
row-normalised confusion matrix and the mean IoU of the binarised RoI map
against the ground-truth mask. Numbers come from scikit-learn where it has
them; this module only fixes the conventions (class order, missing classes,
empty rows) so every caller reports the same figures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "accuracy",
    "roc_auc",
    "roc_curves",
    "confusion_matrix",
    "iou",
    "mean_iou",
    "evaluate",
]


def _as_probs(probs, n_classes: int) -> np.ndarray:
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] != n_classes:
        raise ValueError(f"probs must be of shape (N, {n_classes}), got {probs.shape}")
    return probs


def _as_labels(y_true, n_classes: int) -> np.ndarray:
    y = np.asarray(y_true, dtype=np.int64).reshape(-1)
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes}), got {y.min()}..{y.max()}")
    return y


def accuracy(y_true, y_pred) -> float:
    """Share of correct predictions.

    Parameters
    ----------
    y_true, y_pred : array-like of int, shape (N,)

    Returns
    -------
    float
        In [0, 1]; NaN for no samples.
    """
    y_true = np.asarray(y_true).reshape(-1)
    y_pred = np.asarray(y_pred).reshape(-1)
    if y_true.size == 0:
        return float("nan")
    return float(np.mean(y_true == y_pred))


def roc_auc(
    y_true, probs, *, n_classes: int | None = None, class_names: Sequence[str] | None = None
) -> tuple[list[float], float, list[str]]:
    """One-vs-rest ROC AUC per class and their macro average.

    Parameters
    ----------
    y_true : array-like of int, shape (N,)
    probs : array-like of shape (N, C)
        Class probabilities (softmax outputs).
    n_classes : int, optional
        C; taken from ``probs`` when omitted.
    class_names : sequence of str, optional
        Names used in the notes (indices otherwise).

    Returns
    -------
    per_class : list of float
        AUC of each class; NaN for a class that has no positive or no negative
        sample in ``y_true`` (the AUC is undefined there).
    macro : float
        Mean over the classes whose AUC is defined (NaN if none is).
    notes : list of str
        One line per class left out of the macro average.
    """
    from sklearn.metrics import roc_auc_score

    probs = np.asarray(probs, dtype=np.float64)
    n_classes = probs.shape[1] if n_classes is None else n_classes
    probs = _as_probs(probs, n_classes)
    y = _as_labels(y_true, n_classes)
    per_class: list[float] = []
    notes: list[str] = []
    for c in range(n_classes):
        positives = y == c
        if positives.all() or not positives.any():
            per_class.append(float("nan"))
            which = "no" if not positives.any() else "only"
            name = class_names[c] if class_names is not None else c
            notes.append(f"class {name}: {which} samples of this class; AUC undefined, left out of the macro average")
            continue
        per_class.append(float(roc_auc_score(positives.astype(int), probs[:, c])))
    defined = [a for a in per_class if not math.isnan(a)]
    macro = float(np.mean(defined)) if defined else float("nan")
    return per_class, macro, notes


def roc_curves(y_true, probs, *, n_classes: int | None = None) -> list[dict[str, list[float]] | None]:
    """One-vs-rest ROC curve of each class.

    Returns
    -------
    list of dict or None
        Per class, ``{"fpr": [...], "tpr": [...], "thresholds": [...]}`` as
        plain lists (JSON-ready; an infinite first threshold becomes the
        largest finite float); ``None`` where the curve is undefined.
    """
    from sklearn.metrics import roc_curve

    probs = np.asarray(probs, dtype=np.float64)
    n_classes = probs.shape[1] if n_classes is None else n_classes
    probs = _as_probs(probs, n_classes)
    y = _as_labels(y_true, n_classes)
    curves: list[dict[str, list[float]] | None] = []
    for c in range(n_classes):
        positives = y == c
        if positives.all() or not positives.any():
            curves.append(None)
            continue
        fpr, tpr, thr = roc_curve(positives.astype(int), probs[:, c])
        thr = np.nan_to_num(thr, posinf=np.finfo(np.float64).max, neginf=-np.finfo(np.float64).max)
        curves.append({"fpr": fpr.tolist(), "tpr": tpr.tolist(), "thresholds": thr.tolist()})
    return curves


def confusion_matrix(y_true, y_pred, n_classes: int, *, normalize: bool = True) -> np.ndarray:
    """Confusion matrix over all ``n_classes`` (rows: true class, columns: predicted).

    Parameters
    ----------
    normalize : bool
        Divide each row by its count (Table IV); a row without samples stays
        all zeros rather than NaN.

    Returns
    -------
    ndarray of shape (C, C)
        float64 if normalised, else int64 counts.
    """
    from sklearn.metrics import confusion_matrix as _sk_confusion

    labels = list(range(n_classes))
    y_true = _as_labels(y_true, n_classes)
    y_pred = _as_labels(y_pred, n_classes)
    if y_true.size == 0:
        counts = np.zeros((n_classes, n_classes), dtype=np.int64)
    else:
        counts = _sk_confusion(y_true, y_pred, labels=labels).astype(np.int64)
    if not normalize:
        return counts
    rows = counts.sum(axis=1, keepdims=True).astype(np.float64)
    return np.divide(counts, rows, out=np.zeros((n_classes, n_classes)), where=rows > 0)


def iou(roi_map, mask, *, tau: float = 0.5) -> float:
    """IoU of one RoI map binarised at ``tau`` against a mask (eq. 9).

    Parameters
    ----------
    roi_map : ndarray of shape (H, W)
        ỹ in [0, 1] at the mask's resolution.
    mask : ndarray of shape (H, W)
        Ground truth; > 0.5 (so 255 or 1) is RoI.
    tau : float
        Binarisation threshold of ``roi_map``.

    Returns
    -------
    float
        1.0 when both the prediction and the mask are empty.
    """
    roi_map = np.asarray(roi_map)
    mask = np.asarray(mask)
    if roi_map.shape != mask.shape:
        raise ValueError(f"RoI map {roi_map.shape} and mask {mask.shape} differ in shape")
    pred = roi_map > tau
    truth = mask > 0.5
    union = np.logical_or(pred, truth).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(pred, truth).sum() / union)


def mean_iou(roi_maps: Sequence, masks: Sequence, *, tau: float = 0.5) -> tuple[float | None, list[float | None]]:
    """Mean IoU over the images that have a mask (eq. 9).

    Parameters
    ----------
    roi_maps : sequence of ndarray (H, W) or None
    masks : sequence of ndarray (H, W) or None
        Same length as ``roi_maps``; ``None`` where an image has no mask (or
        no map), which leaves it out of the mean.
    tau : float

    Returns
    -------
    miou : float or None
        None if no image has both a map and a mask.
    per_image : list of float or None
    """
    if len(roi_maps) != len(masks):
        raise ValueError(f"{len(roi_maps)} RoI maps but {len(masks)} masks")
    per_image: list[float | None] = []
    for roi_map, mask in zip(roi_maps, masks):
        per_image.append(None if roi_map is None or mask is None else iou(roi_map, mask, tau=tau))
    scored = [v for v in per_image if v is not None]
    return (float(np.mean(scored)) if scored else None), per_image


def _json_float(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def evaluate(y_true, probs, class_names: Sequence[str], *, roi=None, masks=None, tau: float = 0.5) -> dict:
    """All the paper's metrics in one JSON-ready dict.

    Parameters
    ----------
    y_true : array-like of int, shape (N,)
        True class indices into ``class_names``.
    probs : array-like of shape (N, C)
        Predicted class probabilities; the prediction is their argmax (eq. 5).
    class_names : sequence of str
    roi, masks : sequence of ndarray or None, optional
        RoI maps ỹ and ground-truth masks per image (``None`` entries skip
        that image), for the mean IoU.
    tau : float
        Threshold of eq. 9.

    Returns
    -------
    dict
        ``accuracy``, ``auc_macro``, ``auc_per_class`` {class: auc or None},
        ``roc`` {class: {fpr, tpr, thresholds} or None}, ``confusion`` (rows
        normalised, list of lists), ``confusion_counts``, ``miou`` (or None),
        ``iou_per_image``, ``n_images``, ``class_names``, ``notes``. Undefined
        numbers (an AUC of a class absent from ``y_true``) are ``None``.
    """
    class_names = [str(c) for c in class_names]
    n = len(class_names)
    probs = _as_probs(probs, n)
    y = _as_labels(y_true, n)
    if len(y) != len(probs):
        raise ValueError(f"{len(y)} labels but {len(probs)} probability rows")
    y_pred = probs.argmax(axis=1) if len(probs) else np.zeros(0, dtype=np.int64)
    if len(y):
        per_class, macro, notes = roc_auc(y, probs, n_classes=n, class_names=class_names)
    else:
        per_class, macro, notes = [float("nan")] * n, float("nan"), ["no images"]
    curves = roc_curves(y, probs, n_classes=n) if len(y) else [None] * n
    miou, per_image = (None, [])
    if roi is not None and masks is not None:
        miou, per_image = mean_iou(roi, masks, tau=tau)
    return {
        "accuracy": _json_float(accuracy(y, y_pred)),
        "auc_macro": _json_float(macro),
        "auc_per_class": {name: _json_float(a) for name, a in zip(class_names, per_class)},
        "roc": dict(zip(class_names, curves)),
        "confusion": confusion_matrix(y, y_pred, n).tolist(),
        "confusion_counts": confusion_matrix(y, y_pred, n, normalize=False).tolist(),
        "miou": miou,
        "iou_per_image": per_image,
        "n_images": int(len(y)),
        "class_names": class_names,
        "notes": notes,
    }
