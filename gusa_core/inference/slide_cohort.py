"""A cohort of slides: one output folder per slide, resumable, shardable across processes.

A slide whose folder holds a summary written with the same sweep settings
(:func:`sweep_settings`: the run's weights, the field, the overlap, the tissue threshold, the
heatmap resolution, the outputs) is done and skipped by a later run; one swept with other
settings is redone, and says why. A slide that fails is recorded with its reason and the others
go on. The cohort table is always rebuilt from the slides' own folders (:func:`merge_cohort`),
so it is the same whether the slides were swept by one process, by several (each taking
``slides[rank::world]``), or over several resumed runs.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from ..atomic import atomic_write_text
from ..checkpoint import weights_sha256
from ..errors import GusaError
from ..imageio import IMAGE_SUFFIXES
from ..slides import SLIDE_SUFFIXES
from .outputs import unique_stem
from .slide import FieldSettings, SlideOptions, iter_predict_slide
from .slide_outputs import (
    COHORT_FILE,
    clear_slide_summary,
    cohort_csv_text,
    read_slide_error,
    read_slide_summary,
    write_slide_error,
    write_slide_outputs,
)

__all__ = [
    "collect_slides",
    "slide_folders",
    "iter_cohort",
    "merge_cohort",
    "cohort_path",
    "sweep_settings",
    "settings_changes",
    "slide_rank",
]


def collect_slides(inputs: Sequence[os.PathLike | str]) -> list[Path]:
    """Slide files named or found (not recursively) in folders, sorted within each folder.

    A folder contributes files with a slide or image suffix (``.svs``, ``.tif``, ``.png``, ...);
    a file named directly is taken whatever its suffix. An ``.mrxs`` is one file.

    Raises
    ------
    GusaError
        A path that does not exist.
    """
    suffixes = set(SLIDE_SUFFIXES) | set(IMAGE_SUFFIXES)
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out += sorted(c for c in p.iterdir() if c.is_file() and c.suffix.lower() in suffixes)
        elif p.exists():
            out.append(p)
        else:
            raise GusaError(f"{p}: no such file or folder")
    seen, unique = set(), []
    for p in out:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def slide_folders(slides: Sequence[Path], out_dir) -> list[Path]:
    """The output folder of each slide: ``out_dir/<stem>``, de-duplicated in list order (same on every rank)."""
    used: set[str] = set()
    return [Path(out_dir) / unique_stem(Path(s), used) for s in slides]


def cohort_path(out_dir) -> Path:
    """Where the cohort table is written."""
    return Path(out_dir) / COHORT_FILE


def sweep_settings(
    predictor,
    options: SlideOptions | None = None,
    settings: FieldSettings | None = None,
    *,
    tiff: bool = True,
    colormap: str = "viridis",
) -> dict:
    """Everything that decides a slide's outputs, as a JSON-ready dict stored in its summary.

    A resumed cohort redoes a slide whose summary holds other settings (see
    :func:`settings_changes`). ``weights`` is a SHA-256 over the ensemble members' weights
    (each model's ``weights_sha256``), so another run, another fold or retrained weights count
    as a change; the number of reader threads and the batch size do not.
    """
    from .slide import field_settings

    options = options or SlideOptions()
    settings = settings or field_settings(predictor.metas)
    members = []
    for meta, folder in zip(predictor.metas, predictor.folders):
        sha = meta.get("weights_sha256")
        if not sha and folder is not None:
            try:
                sha = weights_sha256(folder)
            except OSError:
                sha = None
        members.append(str(sha or meta.get("variant")))
    digest = hashlib.sha256("\n".join(members).encode()).hexdigest()
    out = {
        "weights": digest,
        "models": len(members),
        "temperature": float(getattr(predictor, "temperature", 1.0)),
        "classes": list(predictor.class_names),
        "input_size": [int(v) for v in predictor.input_size],
        "field_size": [int(v) for v in settings.size],
        "field_mpp": float(settings.mpp),
        "overlap": float(options.overlap),
        "min_tissue": float(options.min_tissue),
        "heatmap_mpp": None if options.heatmap_mpp is None else float(options.heatmap_mpp),
        "max_heatmap_side": int(options.max_heatmap_side),
        "thumbnail_size": int(options.thumbnail_size),
        "top_k": int(options.top_k),
        "tiff": bool(tiff),
        "colormap": str(colormap),
    }
    return json.loads(json.dumps(out))


_SETTING_NAMES = {
    "weights": "run weights", "models": "models in the ensemble", "temperature": "temperature", "classes": "classes",
    "input_size": "network input size", "field_size": "field size", "field_mpp": "field µm/px",
    "overlap": "overlap", "min_tissue": "tissue threshold", "heatmap_mpp": "heatmap µm/px",
    "max_heatmap_side": "heatmap size cap", "thumbnail_size": "tissue thumbnail size", "top_k": "top fields",
    "tiff": "TIFF heatmaps", "colormap": "colormap",
}


def settings_changes(old: dict | None, new: dict) -> list[str]:
    """What differs between the settings a slide was swept with and ``new``, one phrase each.

    Empty when they agree. A summary written without settings (by an older version) gives
    ``["settings not recorded"]``.
    """
    if not isinstance(old, dict):
        return ["settings not recorded"]
    out = []
    for key, value in new.items():
        before = old.get(key)
        if before == value:
            continue
        name = _SETTING_NAMES.get(key, key)
        if key == "weights":
            out.append(f"{name} {str(before)[:8]} → {str(value)[:8]}")
        else:
            out.append(f"{name} {_show(before)} → {_show(value)}")
    return out


def _show(value) -> str:
    if value is None:
        return "default"
    if isinstance(value, list):
        return "x".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def slide_rank(index: int, world: int) -> int:
    """The rank that sweeps slide ``index`` of the cohort (``slides[rank::world]``)."""
    return index % max(1, world)


def iter_cohort(
    predictor,
    slides: Sequence[Path],
    out_dir,
    *,
    options: SlideOptions | None = None,
    settings: FieldSettings | None = None,
    rank: int = 0,
    world: int = 1,
    redo: bool = False,
    tiff: bool = True,
    colormap: str = "viridis",
    should_stop: Callable[[], bool] | None = None,
) -> Iterator[dict]:
    """Sweep this process's share of the slides, writing each one's outputs.

    Parameters
    ----------
    predictor : gusa_core.inference.Predictor
    slides : sequence of Path
        The whole cohort, in the same order on every rank.
    out_dir : path-like
    options, settings
        See :func:`~gusa_core.inference.slide.iter_predict_slide`.
    rank, world : int
        This process takes ``slides[rank::world]``.
    redo : bool
        Sweep slides that are already done.
    tiff, colormap
        See :func:`~gusa_core.inference.slide_outputs.write_slide_outputs`.
    should_stop : callable, optional
        Polled between batches.

    Yields
    ------
    record : dict
        The slide's progress records (``"stage"``: ``"tissue"``, ``"fields"``) with ``"index"``
        and ``"slides"`` added, and one of ``"skipped"``, ``"done"`` (with ``"summary"``),
        ``"failed"`` (with ``"error"``) or ``"stopped"`` per slide. A slide done before with
        other settings first yields ``"redo"`` with ``"changes"`` (see :func:`settings_changes`).
    """
    folders = slide_folders(slides, out_dir)
    current = sweep_settings(predictor, options, settings, tiff=tiff, colormap=colormap)
    mine = list(range(rank, len(slides), max(1, world)))
    for n, i in enumerate(mine):
        path, folder = Path(slides[i]), folders[i]
        base = {"index": n, "slides": len(mine), "path": str(path), "folder": str(folder)}
        note = None
        previous = None if redo else read_slide_summary(folder)
        if previous is not None:
            changes = settings_changes(previous.get("settings"), current)
            if not changes:
                yield {**base, "stage": "skipped"}
                continue
            note = "redone: swept before with other settings (" + "; ".join(changes) + ")"
            yield {**base, "stage": "redo", "changes": changes}
            clear_slide_summary(folder)
        try:
            result = None
            for rec in iter_predict_slide(predictor, path, options=options, settings=settings, should_stop=should_stop):
                if rec["stage"] == "done":
                    result = rec["result"]
                elif rec["stage"] == "stopped":
                    yield {**base, "stage": "stopped"}
                    return
                else:
                    yield {**rec, **base}
            summary = write_slide_outputs(result, folder, colormap=colormap, tiff=tiff, sweep=current, note=note)
        except Exception as exc:  # noqa: BLE001 - one bad slide must not stop a cohort; its reason is recorded
            reason = str(exc) if isinstance(exc, (GusaError, OSError)) else f"{type(exc).__name__}: {exc}"
            write_slide_error(folder, path, reason)
            yield {**base, "stage": "failed", "error": reason}
            continue
        yield {**base, "stage": "done", "summary": summary}


def merge_cohort(
    slides: Sequence[Path],
    out_dir,
    class_names: Sequence[str],
    *,
    sweep: dict | None = None,
    world: int = 1,
    missing_ranks: Sequence[int] = (),
    missing_reason: str | None = None,
) -> tuple[Path, dict]:
    """Write the cohort table from the slides' folders; return its path and counts.

    Every slide has a row: ``done`` (its summary; a ``note`` when it was redone), ``stale``
    (done with settings other than ``sweep``), ``failed`` (its reason) or ``not done`` (never
    swept; when its rank, ``index % world``, is in ``missing_ranks`` the reason names it, or is
    ``missing_reason`` when given).

    Returns
    -------
    path : Path
    counts : dict
        ``{"done": n, "failed": n, "stale": n, "pending": n}``.
    """
    rows, counts = [], {"done": 0, "failed": 0, "stale": 0, "pending": 0}
    missing = set(int(r) for r in missing_ranks)
    for i, (path, folder) in enumerate(zip(slides, slide_folders(slides, out_dir))):
        summary = read_slide_summary(folder)
        if summary is not None:
            changes = settings_changes(summary.get("settings"), sweep) if sweep is not None else []
            if changes:
                rows.append({**summary, "status": "stale",
                             "error": "swept with other settings (" + "; ".join(changes) + "); rerun to redo it"})
                counts["stale"] += 1
            else:
                rows.append(summary)
                counts["done"] += 1
            continue
        error = read_slide_error(folder)
        if error is not None:
            rows.append(error)
            counts["failed"] += 1
            continue
        rank = slide_rank(i, world)
        reason = "not swept yet"
        if rank in missing:
            reason = missing_reason or f"rank {rank} stopped before sweeping it (died or hung); rerun to finish it"
        rows.append({"slide": Path(path).name, "path": str(path), "status": "not done", "error": reason})
        counts["pending"] += 1
    target = cohort_path(out_dir)
    atomic_write_text(target, cohort_csv_text(rows, class_names))
    return target, counts
