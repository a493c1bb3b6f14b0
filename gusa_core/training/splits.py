"""Splitting labelled images into folds.

The paper's protocol is 4-fold cross-validation, stratified so that each fold
holds a quarter of every class (``GUSA.md``). ``folds=1`` is a single
stratified split that keeps ``val_fraction`` of each class for validation.
Small projects rarely satisfy stratification exactly; the fallbacks are
explained in the messages returned beside the splits.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence

import numpy as np

from ..errors import GusaError

__all__ = ["make_folds"]


def make_folds(
    labels: Sequence[int], *, folds: int, val_fraction: float = 0.25, seed: int = 0, groups: Sequence[str] | None = None
) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[str]]:
    """Split sample indices into ``(train, validation)`` index arrays.

    Parameters
    ----------
    labels : sequence of int
        Class index of each labelled sample.
    folds : int
        ``>= 2``: stratified k-fold (scikit-learn ``StratifiedKFold``,
        shuffled with ``seed``); ``1``: one stratified split.
    val_fraction : float
        Validation share when ``folds == 1``.
    seed : int
    groups : sequence of str, optional
        Group of each sample (the slide a field was cut from, the image's own id otherwise).
        When some group holds several samples the split is by group (scikit-learn
        ``StratifiedGroupKFold``): a group is never in both training and validation.

    Returns
    -------
    splits : list of (ndarray, ndarray)
        Sorted training and validation indices of each fold.
    messages : list of str
        Explanations of any fallback taken (empty when none was needed).

    Raises
    ------
    GusaError
        Too few labelled images for the requested split.
    """
    if groups is not None and len(set(groups)) < len(groups):
        return _group_folds(labels, groups, folds=folds, val_fraction=val_fraction, seed=seed)
    from sklearn.model_selection import KFold, ShuffleSplit, StratifiedKFold, StratifiedShuffleSplit

    y = np.asarray(labels, dtype=np.int64)
    n = int(y.size)
    folds = int(folds)
    messages: list[str] = []
    if folds < 1:
        raise GusaError(f"folds must be 1 or more, got {folds}")
    if n < 2:
        raise GusaError(f"training needs at least 2 labelled images (one to train, one to validate); the project has {n}")
    counts = Counter(y.tolist())
    smallest = min(counts.values())
    X = np.zeros((n, 1))
    if folds >= 2:
        if n < folds:
            raise GusaError(f"{folds} folds need at least {folds} labelled images; the project has {n}: use fewer folds")
        if max(counts.values()) < folds:
            messages.append(
                f"every class has fewer than {folds} images: folds are not stratified (plain shuffled k-fold)"
            )
            splitter = KFold(n_splits=folds, shuffle=True, random_state=seed)
        else:
            if smallest < folds:
                thin = ", ".join(f"class {c}: {k}" for c, k in sorted(counts.items()) if k < folds)
                messages.append(
                    f"some classes have fewer images than folds ({thin}): "
                    f"they are missing from the validation set of some folds"
                )
            splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the thin-class warning is in ``messages``
            splits = [(np.sort(tr), np.sort(va)) for tr, va in splitter.split(X, y)]
        return splits, messages
    if not 0.0 < val_fraction < 1.0:
        raise GusaError(f"val_fraction must lie strictly between 0 and 1, got {val_fraction}")
    n_val = max(1, int(round(n * val_fraction)))
    n_val = min(n_val, n - 1)
    if n_val < len(counts) <= n - len(counts) and smallest >= 2:
        messages.append(f"validation split enlarged from {n_val} to {len(counts)} images: one per class")
        n_val = len(counts)
    if smallest >= 2 and len(counts) <= n_val <= n - len(counts):
        splitter = StratifiedShuffleSplit(n_splits=1, test_size=n_val, random_state=seed)
        tr, va = next(splitter.split(X, y))
    else:
        messages.append(
            f"cannot stratify a {n_val}-image validation split of {n} images over {len(counts)} classes "
            f"(smallest class: {smallest} images): random split instead"
        )
        tr, va = next(ShuffleSplit(n_splits=1, test_size=n_val, random_state=seed).split(X))
    return [(np.sort(tr), np.sort(va))], messages


def _group_folds(labels, groups, *, folds: int, val_fraction: float, seed: int):
    """Stratified folds that keep every group (slide) whole; ``folds == 1`` takes one of ``1 / val_fraction`` folds."""
    from sklearn.model_selection import StratifiedGroupKFold

    y = np.asarray(labels, dtype=np.int64)
    g = np.asarray(list(groups))
    n_groups = len(set(g.tolist()))
    folds = int(folds)
    messages: list[str] = []
    if folds < 1:
        raise GusaError(f"folds must be 1 or more, got {folds}")
    if folds == 1 and not 0.0 < val_fraction < 1.0:
        raise GusaError(f"val_fraction must lie strictly between 0 and 1, got {val_fraction}")
    k = folds if folds >= 2 else max(2, int(round(1.0 / val_fraction)))
    if n_groups < 2:
        raise GusaError(
            "fields of one slide cannot validate a model trained on that slide: "
            "training needs at least 2 slides (or slides and labelled images)"
        )
    if n_groups < k:
        if folds >= 2:
            raise GusaError(f"{folds} folds split by slide need at least {folds} slides or images; the project has {n_groups}: use fewer folds")
        messages.append(f"validation split by slide: {n_groups} slides or images allow 1/{n_groups} for validation")
        k = n_groups
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        splits = [(np.sort(tr), np.sort(va)) for tr, va in splitter.split(np.zeros((len(y), 1)), y, g)]
    splits = [s for s in splits if len(s[0]) and len(s[1])]
    if folds == 1:
        splits = splits[:1]
    messages.append("folds are split by slide: the fields of one slide are never in both training and validation")
    return splits, messages
