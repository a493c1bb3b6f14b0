"""Scoring a trained run on a labelled project (what ``gusa evaluate`` prints).

Two protocols:

* default: the ensemble (or one fold, ``fold=k``) classifies every labelled
  image of the project;
* ``validation=True``, the paper's: each fold model scores only its own
  validation images (``validation_ids`` in its ``model.json``), so every
  image is scored by the one model that never trained on it.

The RoI mean IoU (eq. 9) is computed, for the RoI variants, on the images
that have a mask, at the image's own resolution, one image at a time (no
full-size map is kept).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..calibration import apply_temperature, calibration_summary
from ..checkpoint import read_model_meta
from ..errors import GusaError
from ..inference import Predictor, classify_paths
from ..metrics import evaluate, iou
from ..project import Project
from ..runs import model_folders

__all__ = ["evaluate_run", "format_result"]


def _open_project(project):
    return project if hasattr(project, "images") and hasattr(project, "labelled") else Project.open(project, read_only=True)


def _score(predictor, project, records, out: list, errors: list, notes: list, progress, done_total) -> None:
    """Classify ``records`` (ImageRecords) with ``predictor``, appending one row per image to ``out``."""
    names = predictor.class_names
    paths = [project.image_path(r.id) for r in records]
    for rec in classify_paths(predictor, paths, batch_size=4):
        image_rec = records[rec["index"]]
        done_total[0] += 1
        if progress is not None:
            progress(done_total[0], done_total[1])
        if rec["error"]:
            errors.append({"id": image_rec.id, "path": rec["path"], "error": rec["error"]})
            continue
        pred = rec["prediction"]
        score = None
        if predictor.attention_kind == "roi" and image_rec.mask:
            try:
                mask = project.load_mask(image_rec.id)
            except GusaError as exc:
                notes.append(f"{image_rec.id}: mask left out of the mean IoU ({exc})")
                mask = None
            if mask is not None:
                score = iou(pred.attention, mask)
        out.append(
            {
                "id": image_rec.id,
                "path": rec["path"],
                "label": image_rec.label,
                "predicted": pred.label,
                "probs": {c: float(p) for c, p in zip(names, pred.probs)},
                "iou": score,
                "temperature": predictor.temperature,
            }
        )


def evaluate_run(
    run_dir,
    project,
    *,
    fold: int | None = None,
    validation: bool = False,
    device: str = "auto",
    backend: str = "auto",
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Score a run on the labelled images of a project.

    Parameters
    ----------
    run_dir : path-like
        A run folder or one fold folder.
    project : Project or path-like
    fold : int, optional
        Only this fold (default: the ensemble, or every fold with ``validation``).
    validation : bool
        The paper's protocol: each fold scores only its own validation images.
    device : str
    backend : {"auto", "openvino", "onnxruntime", "torch"}
    progress : callable, optional
        ``progress(done, total)`` after each image.

    Returns
    -------
    dict
        The dict of :func:`gusa_core.metrics.evaluate` plus ``predictions``
        (``[{id, path, label, predicted, probs, iou, temperature}]``),
        ``calibration`` (``temperature``, ``scaled``, ``before`` and
        ``after``: :func:`gusa_core.calibration.calibration_summary` without
        and with the run's temperature), ``misclassified``
        (ids), ``errors`` (``[{id, path, error}]``), ``protocol``, ``run``,
        ``variant``, ``n_models`` and ``attention_kind``.

    Raises
    ------
    GusaError
        No labelled image to score, or the run's classes do not cover the
        project's labels.
    """
    project = _open_project(project)
    labelled = list(project.labelled())
    notes: list[str] = []
    rows: list[dict] = []
    errors: list[dict] = []

    if validation:
        plan = []
        for folder in model_folders(run_dir, fold=fold):
            predictor = Predictor.from_run(folder, device=device, backend=backend)
            meta = read_model_meta(folder)
            wanted = set(meta.get("validation_ids") or [])
            if not wanted:
                notes.append(f"{Path(folder).name}: no validation images recorded; fold skipped")
            plan.append((predictor, [r for r in labelled if r.id in wanted]))
    else:
        plan = [(Predictor.from_run(run_dir, fold=fold, device=device, backend=backend), labelled)]
    predictor0 = plan[0][0]
    names = list(predictor0.class_names)
    unknown = sorted({r.label for _, recs in plan for r in recs if r.label not in names})
    if unknown:
        notes.append(f"labels unknown to the model left out: {', '.join(unknown)}")
        plan = [(p, [r for r in recs if r.label in names]) for p, recs in plan]
    total = sum(len(recs) for _, recs in plan)
    if total == 0:
        raise GusaError(
            f"nothing to evaluate in {project.folder}: "
            + ("no validation image of this run is a labelled image of the project" if validation else "no labelled image with a class the model knows")
        )
    counter = [0, total]
    for predictor, recs in plan:
        _score(predictor, project, recs, rows, errors, notes, progress, counter)
    if not rows:
        raise GusaError(f"none of the {total} images of {project.folder} could be read")

    y_true = np.array([names.index(r["label"]) for r in rows], dtype=np.int64)
    probs = np.array([[r["probs"][c] for c in names] for r in rows], dtype=np.float64)
    result = evaluate(y_true, probs, names)
    scores = [r["iou"] for r in rows if r["iou"] is not None]
    result["calibration"] = _calibration(probs, y_true, np.array([r["temperature"] for r in rows], dtype=np.float64))
    result["miou"] = float(np.mean(scores)) if scores else None
    result["iou_per_image"] = [r["iou"] for r in rows]
    result["n_masks"] = len(scores)
    result["notes"] = list(result.get("notes") or []) + notes
    if errors:
        result["notes"].append(f"{len(errors)} image(s) could not be read and are left out")
    result["predictions"] = rows
    result["misclassified"] = [r["id"] for r in rows if r["predicted"] != r["label"]]
    result["errors"] = errors
    result["protocol"] = "validation" if validation else ("fold" if fold is not None else "ensemble")
    result["run"] = str(run_dir)
    result["variant"] = predictor0.variant
    result["n_models"] = sum(p.n_models for p, _ in plan) if validation else predictor0.n_models
    result["attention_kind"] = predictor0.attention_kind
    return result


def _calibration(probs: np.ndarray, y: np.ndarray, temps: np.ndarray) -> dict:
    """ECE, Brier, NLL and the reliability diagram with the run's temperature ("after") and without ("before").

    The predictor returns ``softmax(log p / T)``; ``softmax(T · log p_T)``
    gives back the raw ``p`` (softmax ignores a per-row constant).
    """
    after = np.clip(probs, 1e-300, None)
    before = apply_temperature(np.log(after) * temps[:, None], 1.0)
    uniq = sorted({float(t) for t in temps})
    return {"temperature": uniq[0] if len(uniq) == 1 else uniq, "scaled": any(t != 1.0 for t in uniq),
            "before": calibration_summary(before, y), "after": calibration_summary(probs, y)}


def _fmt(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}f}"


def _fmt_t(t) -> str:
    return ", ".join(f"{v:.3f}" for v in t) if isinstance(t, list) else f"{t:.3f}"


def format_result(result: dict) -> str:
    """The plain-text summary ``gusa evaluate`` prints."""
    names = result["class_names"]
    lines = [
        f"images      {result['n_images']}  ({result.get('protocol', '')}, {result.get('variant', '')}, {result.get('n_models', '')} model(s))",
        f"accuracy    {_fmt(result['accuracy'])}",
        f"AUC (macro) {_fmt(result['auc_macro'])}",
        f"mean IoU    {_fmt(result.get('miou'))}" + (f"  ({result.get('n_masks', 0)} masks)" if result.get("miou") is not None else ""),
    ]
    cal = result.get("calibration")
    if cal:
        b, a = cal["before"], cal["after"]
        lines += [
            f"ECE         {_fmt(a['ece'])}  (before temperature scaling {_fmt(b['ece'])}; T = {_fmt_t(cal['temperature'])})",
            f"Brier       {_fmt(a['brier'])}  (before {_fmt(b['brier'])})",
        ]
    lines += [
        "",
        "per-class AUC",
    ]
    width = max(len(n) for n in names) + 2
    for n in names:
        lines.append(f"  {n:<{width}}{_fmt(result['auc_per_class'].get(n))}")
    lines += ["", "confusion matrix (rows: true, columns: predicted; row-normalised)"]
    col = max(width, 8)
    lines.append(" " * (width + 2) + "".join(f"{n[:col - 1]:>{col}}" for n in names))
    for n, row in zip(names, result["confusion"]):
        lines.append(f"  {n:<{width}}" + "".join(f"{v:>{col}.2f}" for v in row))
    for note in result.get("notes") or []:
        lines.append(f"note: {note}")
    return "\n".join(lines)
