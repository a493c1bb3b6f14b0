"""The end of a run: temperature scaling and the suggestion threshold, fitted on out-of-fold predictions.

Each fold scores its own validation images, the images it never trained on
(the paper's protocol); those out-of-fold (OOF) predictions are pooled, and

- one **ensemble temperature** ``T`` is fitted on the pooled OOF
  log-probabilities (:func:`gusa_core.calibration.fit_temperature`); the
  predictor applies it to the ensemble mean ``softmax(log p̄ / T)``. A fold
  predicting alone uses its own T (``fold_temperatures``), fitted on its
  own OOF images only. Members are never scaled before averaging.
  The OOF predictions come from each fold's best model, the one that
  predicts (``source="best"``); the last-epoch models (``"last"``), which no
  validation score chose, are the alternative. On held-out demo images the
  best models' T halved the ECE on every run measured, the last models'
  on one of three (``benchmarks/calibration.py``): what T mostly corrects there is
  that the mean of the folds is less confident than any one fold, not the
  optimism of the epoch selection.
- the **RoI threshold** ``roi_tau`` of suggested masks is the τ of a grid
  that maximises the mean IoU of :func:`gusa_core.assist.suggest_mask` of
  the best models' ỹ against the validation masks (the benchmark
  ``roi_quality.py`` found ỹ covering about twice the RoI at τ = 0.5 on
  small inputs).

With fewer than :data:`MIN_SAMPLES` OOF images the run stores T = 1 and a
note: a handful of images cannot calibrate a model. The ECE/Brier/NLL before
and after are measured on the same OOF images the T was fitted on
(in-sample; ``benchmarks/calibration.py`` scores fresh images).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..assist import suggest_mask
from ..calibration import apply_temperature, calibration_summary, fit_temperature
from ..errors import GusaError
from ..imageio import read_image
from ..inference import Predictor
from ..metrics import iou
from ..checkpoint import is_model_folder
from ..runs import fold_dir, last_model_dir

__all__ = ["MIN_SAMPLES", "TAU_GRID", "calibrate_run"]

#: Fewest pooled out-of-fold predictions a temperature is fitted on (else T = 1).
MIN_SAMPLES = 20
#: Thresholds tried for ``roi_tau``.
TAU_GRID = tuple(round(0.3 + 0.05 * i, 2) for i in range(14))  # 0.30 .. 0.95


def _fold_oof(predictor, roi_predictor, project, val_ids, names, tau_sums: np.ndarray, counts: list) -> tuple[list, list]:
    """Log-probabilities of ``predictor`` on a fold's validation images; ``roi_predictor``'s ỹ scored per τ."""
    logp, labels = [], []
    for image_id in val_ids:
        rec = project.image(image_id)
        if rec.label not in names:
            continue
        try:
            image = read_image(project.image_path(image_id))
        except GusaError:
            continue
        pred = predictor.predict_image(image)
        logp.append(np.log(np.clip(pred.probs, 1e-12, None)))
        labels.append(names.index(rec.label))
        if roi_predictor is not None and rec.mask:
            try:
                mask = project.load_mask(image_id)
            except GusaError:
                mask = None
            if mask is not None:
                roi = (pred if roi_predictor is predictor else roi_predictor.predict_image(image)).attention
                for j, tau in enumerate(TAU_GRID):
                    tau_sums[j] += iou(suggest_mask(roi, tau=tau) > 0, mask > 0)
                counts[0] += 1
    return logp, labels


def calibrate_run(
    run_dir,
    project,
    splits,
    class_names,
    *,
    device: str = "auto",
    source: str = "best",
    log: Callable[[str], None] | None = None,
) -> dict:
    """Fit the ensemble temperature, the per-fold temperatures and ``roi_tau`` of a trained run.

    Parameters
    ----------
    run_dir : path-like
        The run folder (its ``fold-k/`` models are read).
    project : Project
    splits : list of (train_ids, val_ids)
        The run's folds.
    class_names : list of str
    device : str
    source : {"best", "last"}
        Which model of each fold scores its validation images for T:
        ``"best"`` (the model the predictor uses; those same images chose its
        epoch) or ``"last"`` (the final epoch's model, which no validation
        score chose; the best model where a fold has no ``last/``).
        ``roi_tau`` is always fitted on the best models' ỹ.
    log : callable, optional
        Receives one line per result.

    Returns
    -------
    dict
        JSON-ready, stored as ``run.json``'s ``calibration``: ``method``,
        ``n`` (pooled OOF images), ``source`` (per fold: the model that
        scored them, "last" or "best"), ``ensemble_temperature``,
        ``fold_temperatures``, ``before`` and ``after`` (ECE, Brier, NLL and
        the reliability diagram of the pooled OOF predictions, see
        :func:`gusa_core.calibration.calibration_summary`), ``roi_tau``
        (None without an RoI branch or validation masks), ``roi_miou_by_tau``,
        ``n_masks`` and ``notes``.
    """
    names = list(class_names)
    notes: list[str] = []
    pooled_logp, pooled_y, fold_ts = [], [], []
    tau_sums = np.zeros(len(TAU_GRID))
    counts = [0]
    with_roi = None
    if source not in ("last", "best"):
        raise ValueError(f"source must be 'last' or 'best', got {source!r}")
    used = []
    for k, (_, val_ids) in enumerate(splits):
        folder = fold_dir(run_dir, k)
        best = Predictor.from_run(folder, device=device, backend="torch", temperature=1.0)
        if with_roi is None:
            with_roi = best.attention_kind == "roi"
        last = last_model_dir(folder)
        scorer = best
        if source == "last" and is_model_folder(last):
            scorer = Predictor.from_run(last, device=device, backend="torch", temperature=1.0)
        used.append("last" if scorer is not best else "best")
        logp, labels = _fold_oof(scorer, best if with_roi else None, project, val_ids, names, tau_sums, counts)
        del best, scorer
        if len(labels) >= MIN_SAMPLES:
            fold_ts.append(float(fit_temperature(np.array(logp), np.array(labels))))
        else:
            fold_ts.append(1.0)
        pooled_logp += logp
        pooled_y += labels
    if source == "last" and "best" in used:
        notes.append(f"folds without a last-epoch model calibrated on their best model: {[k for k, u in enumerate(used) if u == 'best']}")
    n = len(pooled_y)
    result: dict = {"method": "temperature scaling on pooled out-of-fold validation predictions", "n": n, "source": used,
                    "min_samples": MIN_SAMPLES, "ensemble_temperature": 1.0, "fold_temperatures": fold_ts,
                    "before": None, "after": None, "roi_tau": None, "roi_miou_by_tau": None, "n_masks": counts[0],
                    "notes": notes}
    if n:
        z, y = np.array(pooled_logp), np.array(pooled_y)
        t = float(fit_temperature(z, y)) if n >= MIN_SAMPLES else 1.0
        if n < MIN_SAMPLES:
            notes.append(f"only {n} out-of-fold predictions (< {MIN_SAMPLES}): temperature left at 1")
        if any(len(v) < MIN_SAMPLES for _, v in splits) and n >= MIN_SAMPLES:
            notes.append(f"folds with fewer than {MIN_SAMPLES} validation images keep T = 1 when predicting alone")
        result["ensemble_temperature"] = t
        result["before"] = calibration_summary(apply_temperature(z, 1.0), y)
        result["after"] = calibration_summary(apply_temperature(z, t), y)
        if log:
            log(f"calibration: T = {t:.3f} on {n} out-of-fold images; ECE {result['before']['ece']:.4f} -> "
                f"{result['after']['ece']:.4f} (in-sample)")
    if with_roi and counts[0]:
        mious = tau_sums / counts[0]
        best = int(np.argmax(mious))
        result["roi_tau"] = float(TAU_GRID[best])
        result["roi_miou_by_tau"] = {f"{t:.2f}": float(m) for t, m in zip(TAU_GRID, mious)}
        if log:
            log(f"suggestions: tau = {TAU_GRID[best]:.2f} (mean IoU {mious[best]:.3f} on {counts[0]} validation masks)")
    elif with_roi:
        notes.append("no validation image has a mask: the suggestion threshold stays 0.5")
    return result
