"""Run every fold model of a run over a project's images: the inputs of suggestions and the queue.

:func:`scan_project` is a generator (one record per image, so a GUI worker can
abort between images and a test simply runs ``list(...)``); each record keeps
the fold models' own outputs, not only their mean, because fold disagreement
is one of the uncertainty measures. :func:`annotation_queue` and
:func:`suggestion` turn the records into the queue and a suggested mask.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np

from ..calibration import apply_temperature
from ..checkpoint import weights_sha256
from ..errors import GusaError
from ..imageio import read_image
from ..inference import Predictor
from ..runs import model_folders
from .rank import RankedItem, rank_images, uncertainty_scores
from .suggest import DEFAULT_MIN_ISLAND_FRACTION, suggest_mask

__all__ = ["scan_project", "annotation_queue", "mean_roi_map", "suggestion", "suggester_key", "stitched_roi"]


def suggester_key(run_dir) -> str:
    """Who suggests: the run's name and a digest of its fold models' weights.

    A rejected suggestion is recorded in the project under this key
    (:meth:`gusa_core.project.Project.reject_suggestion`), so the same
    weights never suggest it again, while another run, or this run
    retrained, may.

    Parameters
    ----------
    run_dir : path-like
        A run folder or one model folder.

    Returns
    -------
    str
        ``"<run name>@<16 hex digits>"``.
    """
    folders = model_folders(run_dir)
    digest = hashlib.sha256("\n".join(sorted(weights_sha256(f) for f in folders)).encode()).hexdigest()[:16]
    path = Path(run_dir)
    name = (path.parent if path.is_file() else path).name
    return f"{name}@{digest}"


def scan_project(
    run_dir,
    project,
    *,
    ids: Iterable[str] | None = None,
    temperature: float | None = None,
    device: str = "auto",
    backend: str = "auto",
    stitch: bool = False,
) -> Iterator[dict]:
    """Classify a project's images with each fold model of a run, one image at a time.

    Parameters
    ----------
    run_dir : path-like
        A run folder (every finished fold) or one fold folder.
    project : Project
        An open project.
    ids : iterable of str, optional
        The images to scan (default: all, in project order).
    temperature : float, optional
        Temperature-scale each fold's softmax (``softmax(log p / T)``, equal to
        ``softmax(z / T)``); None or 1 leaves it as it is.
    device, backend : str
        As for :class:`gusa_core.inference.Predictor`.
    stitch : bool
        ỹ at stride 8 instead of 16, from four passes per fold
        (:func:`stitched_roi`): finer suggestions at four times the cost.

    Yields
    ------
    dict
        ``done``, ``total``, ``id``, ``error`` (str or None, the image is then
        skipped), ``fold_probs`` ndarray (F, C), ``fold_roi`` ndarray
        (F, h, w) float32 at the network's grid (twice as fine with
        ``stitch``) or None (variant without RoI branch), ``image_shape`` (H, W), ``class_names``, ``suggester``
        (:func:`suggester_key` of the run) and ``rejected`` (the project
        records that this suggester's suggestion for the image was rejected:
        :func:`suggestion` then gives None).
    """
    suggester = suggester_key(run_dir)
    predictors = [Predictor.from_run(folder, device=device, backend=backend, temperature=1.0) for folder in model_folders(run_dir)]
    names = list(predictors[0].class_names)
    for p in predictors[1:]:
        if list(p.class_names) != names:
            raise GusaError(f"{run_dir}: the fold models disagree on the classes ({names} vs {list(p.class_names)})")
    with_roi = all(p.attention_kind == "roi" for p in predictors)
    wanted = list(project.ids() if ids is None else ids)
    for i, image_id in enumerate(wanted):
        rec = {"done": i + 1, "total": len(wanted), "id": image_id, "error": None, "fold_probs": None,
               "fold_roi": None, "image_shape": None, "class_names": names, "suggester": suggester,
               "rejected": image_id in project and project.is_suggestion_rejected(image_id, suggester)}
        try:
            image = read_image(project.image_path(image_id))
        except GusaError as exc:
            rec["error"] = str(exc)
            yield rec
            continue
        if stitch and with_roi:
            outs = [stitched_roi(p, image) for p in predictors]
            probs = np.stack([o[0] for o in outs])
            maps = [o[1] for o in outs]
        else:
            preds = [p.predict_image(image) for p in predictors]
            probs = np.stack([p.probs for p in preds])
            maps = [p.attention_lowres for p in preds] if with_roi else None
        if temperature is not None and temperature != 1.0:
            probs = apply_temperature(np.log(np.clip(probs, 1e-12, None)), temperature)
        rec["fold_probs"] = probs
        if with_roi:
            if len({m.shape for m in maps}) == 1:
                rec["fold_roi"] = np.stack(maps).astype(np.float32)
            else:  # folds trained at different sizes: compare them at the image's size / 16
                h, w = max(m.shape[0] for m in maps), max(m.shape[1] for m in maps)
                rec["fold_roi"] = np.stack([_resize(m, (h, w)) for m in maps])
        rec["image_shape"] = tuple(int(v) for v in image.shape[:2])
        yield rec


def stitched_roi(predictor, image: np.ndarray, *, raw: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """ỹ at stride 8 by shift-and-stitch (Long et al., CVPR 2015), without changing the network.

    The network's RoI grid has stride 16. Four passes over the input moved
    by 0 or 8 pixels down and right interleave into a grid of stride 8:
    sample ``(2i + 1, 2j + 1)`` is the unshifted pass's cell ``(i, j)``.

    Parameters
    ----------
    predictor : Predictor
        One model (or models sharing one input setting); temperature 1.
    image : ndarray of shape (H, W, 3), uint8
    raw : bool
        Return the interleaved grid as it is: sample ``k`` at input pixel
        ``8k - 0.5``. By default it is moved by half a sample (the mean of
        neighbours) to the half-pixel convention of a stride-8 grid (sample
        ``k`` at ``8k + 3.5``), which :func:`mean_roi_map` and the predictor
        up-sample with.

    Returns
    -------
    probs : ndarray of shape (C,)
        The unshifted pass's class probabilities.
    roi : ndarray of shape (2h, 2w), float32
        ỹ in [0, 1].
    """
    shape, xs = predictor.prepare(image)
    if len(xs) != 1:
        raise GusaError("shift-and-stitch needs models that share one input size and colour reference")
    x = xs[0]
    _, h, w = x.shape
    fine = np.zeros((h // 8, w // 8), np.float32)
    probs = None
    for dy in (0, 8):
        for dx in (0, 8):
            shifted = np.ascontiguousarray(np.pad(x, ((0, 0), (dy, 0), (dx, 0)), mode="reflect")[:, :h, :w])
            pred = predictor.predict_prepared([(shape, [shifted])])[0]
            fine[1 - dy // 8::2, 1 - dx // 8::2] = pred.attention_lowres
            if dy == dx == 0:
                probs = pred.probs
    if not raw:
        fine = 0.5 * (fine + np.concatenate([fine[1:], fine[-1:]], axis=0))
        fine = 0.5 * (fine + np.concatenate([fine[:, 1:], fine[:, -1:]], axis=1))
    return probs, fine.astype(np.float32)


def _resize(m: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    m = np.ascontiguousarray(m, dtype=np.float32)
    if m.shape == tuple(shape):
        return m.copy()
    out = cv2.resize(m, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)  # half-pixel centres, as the predictor
    return np.clip(out, 0.0, 1.0, out=out)


def mean_roi_map(record: Mapping) -> np.ndarray | None:
    """ỹ of the ensemble (mean of the folds' maps) bilinearly up-sampled to the image, or None."""
    if record.get("fold_roi") is None:
        return None
    return _resize(np.mean(record["fold_roi"], axis=0), record["image_shape"])


def suggestion(
    record: Mapping,
    *,
    tau: float = 0.5,
    min_island_fraction: float = DEFAULT_MIN_ISLAND_FRACTION,
    fill_holes: bool = True,
) -> np.ndarray | None:
    """The suggested mask (H, W) uint8 {0, 255} of one scan record.

    None without an RoI map, or when the record says the suggestion was
    rejected (``record["rejected"]``, see :func:`scan_project`).
    """
    if record.get("rejected"):
        return None
    roi = mean_roi_map(record)
    if roi is None:
        return None
    return suggest_mask(roi, tau=tau, min_island_fraction=min_island_fraction, fill_holes=fill_holes)


def annotation_queue(
    records: Sequence[Mapping],
    project,
    *,
    weights: Mapping[str, float] | None = None,
    spread: bool = True,
) -> list[RankedItem]:
    """The annotation queue of a project from :func:`scan_project` records.

    Labels and masks come from ``project``; records with an error are left
    out. See :func:`gusa_core.assist.rank_images` for who is queued and why;
    ``spread`` (the default) takes the queue in turns from each predicted
    class (:func:`gusa_core.assist.spread_by_class`), False orders by score alone.
    """
    ok = [r for r in records if r.get("error") is None and r.get("fold_probs") is not None]
    if not ok:
        return []
    names = list(ok[0]["class_names"])
    fold_probs = np.stack([r["fold_probs"] for r in ok], axis=1)  # (F, N, C)
    fold_roi = None
    if all(r.get("fold_roi") is not None for r in ok) and len({r["fold_roi"].shape for r in ok}) == 1:
        fold_roi = np.stack([r["fold_roi"] for r in ok], axis=1)
    scores = uncertainty_scores(fold_probs, fold_roi)
    records_ = [project.image(r["id"]) for r in ok]
    labels = [rec.label if rec.label in names else None for rec in records_]
    return rank_images(
        [r["id"] for r in ok], scores, labels=labels, has_mask=[bool(rec.mask) for rec in records_],
        class_names=names, weights=weights, spread=spread,
    )
