"""A cohort of slides: one output folder per slide, resumable, shardable across processes.

A slide whose folder holds a summary is done and skipped by a later run; a slide that fails is
recorded with its reason and the others go on. The cohort table is always rebuilt from the
slides' own folders (:func:`merge_cohort`), so it is the same whether the slides were swept by
one process, by several (each taking ``slides[rank::world]``), or over several resumed runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from ..atomic import atomic_write_text
from ..errors import GusaError
from ..imageio import IMAGE_SUFFIXES
from ..slides import SLIDE_SUFFIXES
from .outputs import unique_stem
from .slide import FieldSettings, SlideOptions, iter_predict_slide
from .slide_outputs import (
    COHORT_FILE,
    cohort_csv_text,
    read_slide_error,
    read_slide_summary,
    write_slide_error,
    write_slide_outputs,
)

__all__ = ["collect_slides", "slide_folders", "iter_cohort", "merge_cohort", "cohort_path"]


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
        ``"failed"`` (with ``"error"``) or ``"stopped"`` per slide.
    """
    folders = slide_folders(slides, out_dir)
    mine = list(range(rank, len(slides), max(1, world)))
    for n, i in enumerate(mine):
        path, folder = Path(slides[i]), folders[i]
        base = {"index": n, "slides": len(mine), "path": str(path), "folder": str(folder)}
        if not redo and read_slide_summary(folder) is not None:
            yield {**base, "stage": "skipped"}
            continue
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
            summary = write_slide_outputs(result, folder, colormap=colormap, tiff=tiff)
        except Exception as exc:  # noqa: BLE001 - one bad slide must not stop a cohort; its reason is recorded
            reason = str(exc) if isinstance(exc, (GusaError, OSError)) else f"{type(exc).__name__}: {exc}"
            write_slide_error(folder, path, reason)
            yield {**base, "stage": "failed", "error": reason}
            continue
        yield {**base, "stage": "done", "summary": summary}


def merge_cohort(slides: Sequence[Path], out_dir, class_names: Sequence[str]) -> tuple[Path, dict]:
    """Write the cohort table from the slides' folders; return its path and counts.

    Slides not yet swept (no summary and no error) are left out of the table.

    Returns
    -------
    path : Path
    counts : dict
        ``{"done": n, "failed": n, "pending": n}``.
    """
    rows, counts = [], {"done": 0, "failed": 0, "pending": 0}
    for path, folder in zip(slides, slide_folders(slides, out_dir)):
        summary = read_slide_summary(folder)
        if summary is not None:
            rows.append(summary)
            counts["done"] += 1
            continue
        error = read_slide_error(folder)
        if error is not None:
            rows.append(error)
            counts["failed"] += 1
        else:
            counts["pending"] += 1
    target = cohort_path(out_dir)
    atomic_write_text(target, cohort_csv_text(rows, class_names))
    return target, counts
