"""Training run folders: the one module that builds their paths, reads them and writes them.

A run is a folder ``<project>/runs/<name>/``::

    run.json                 settings, splits, status and per-fold results (RUN_FILE)
    fold-k/                  fold k's best model (a model folder, see gusa_core.checkpoint)
    fold-k/last/             fold k's final-epoch model
    fold-k/last.pt-state/    the resume state of an unfinished fold

Paths inside a model folder (``model.safetensors``, ``model.json``) and inside
a resume-state folder belong to :mod:`gusa_core.checkpoint`. Reading a run
(listing, metadata, summary) never imports torch; loading its models does.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__
from .atomic import atomic_write_json
from .checkpoint import is_model_folder, load_model, now_iso, read_json, save_model
from .errors import CheckpointError
from .stain import ReinhardNormalizer

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = [
    "RUN_FILE",
    "RUN_FORMAT",
    "RUNS_DIR",
    "Run",
    "RunState",
    "list_runs",
    "runs_dir",
    "run_json_path",
    "run_lock_path",
    "RUN_LOCK",
    "new_run_meta",
    "fold_dir",
    "fold_number",
    "last_model_dir",
    "state_dir",
    "model_folders",
    "project_candidates",
    "read_run_meta",
    "summarize",
    "check_run_meta",
    "write_untrained_run",
    "read_calibration",
    "stored_temperature",
    "stored_roi_tau",
]

RUN_FILE = "run.json"
#: The lock of a run being trained (one trainer per run folder).
RUN_LOCK = "run.lock"
RUN_FORMAT = "gusa-run"
RUNS_DIR = "runs"
_FOLD_PREFIX = "fold-"
_LAST_DIR = "last"
_STATE_DIR = "last.pt-state"


# ------------------------------------------------------------------ paths
def runs_dir(project_folder: str | os.PathLike) -> Path:
    """The folder that holds a project's runs."""
    return Path(project_folder) / RUNS_DIR


def run_lock_path(run_dir: str | os.PathLike) -> Path:
    """``<run_dir>/run.lock``: held while a trainer writes the run."""
    return Path(run_dir) / RUN_LOCK


def run_json_path(run_dir: str | os.PathLike) -> Path:
    """The ``run.json`` of a run folder."""
    return Path(run_dir) / RUN_FILE


def fold_dir(run_dir: str | os.PathLike, k: int) -> Path:
    """The folder of fold ``k`` (its best model) in ``run_dir``."""
    return Path(run_dir) / f"{_FOLD_PREFIX}{int(k)}"


def fold_number(path: str | os.PathLike) -> int | None:
    """The fold index of a fold folder (``fold-3`` -> 3), or None for any other name."""
    name = Path(path).name
    if not name.startswith(_FOLD_PREFIX):
        return None
    digits = name[len(_FOLD_PREFIX):]
    return int(digits) if digits.isdigit() else None


def last_model_dir(fold_folder: str | os.PathLike) -> Path:
    """The final-epoch model folder of a fold."""
    return Path(fold_folder) / _LAST_DIR


def state_dir(fold_folder: str | os.PathLike) -> Path:
    """The resume-state folder of an unfinished fold."""
    return Path(fold_folder) / _STATE_DIR


# --------------------------------------------------------------- reading
def read_run_meta(folder: str | os.PathLike) -> dict | None:
    """The content of ``folder/run.json``, or None when it is missing, unreadable or not a GuSA run.

    Never raises: for views that list whatever is on disk.
    """
    try:
        meta = json.loads((Path(folder) / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("format") not in (None, RUN_FORMAT):
        return None
    return meta


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_run_meta(path: str | os.PathLike, meta: dict) -> None:
    """Refuse a ``run.json`` whose fields have the wrong types (a damaged or hand-edited file).

    Only the fields present are checked: a run being created lacks some.

    Raises
    ------
    CheckpointError
        Naming ``path`` and the field.
    """
    problems = []
    if "variant" in meta and not isinstance(meta["variant"], str):
        problems.append("variant is not a name")
    names = meta.get("class_names", [])
    if not isinstance(names, list) or not all(isinstance(c, str) for c in names):
        problems.append("class_names is not a list of names")
    size = meta.get("input_size", [16, 16])
    if not (isinstance(size, list) and len(size) == 2 and all(_is_int(v) and v > 0 for v in size)):
        problems.append(f"input_size is not [width, height] ({size!r:.60})")
    for key in ("folds",):
        if key in meta and not (_is_int(meta[key]) and meta[key] >= 0):
            problems.append(f"{key} is not a count ({meta[key]!r:.60})")
    for key in ("status", "created"):
        if key in meta and not isinstance(meta[key], str):
            problems.append(f"{key} is not text")
    for key in ("config", "reinhard"):
        if meta.get(key) is not None and not isinstance(meta[key], dict):
            problems.append(f"{key} is not an object")
    if isinstance(meta.get("reinhard"), dict):
        try:
            ReinhardNormalizer.from_dict(meta["reinhard"])
        except (ValueError, TypeError) as exc:
            problems.append(f"the stain reference 'reinhard' is broken ({exc})")
    splits = meta.get("splits", [])
    if not isinstance(splits, list) or not all(
        isinstance(sp, dict) and all(isinstance(sp.get(k), list) and all(isinstance(i, str) for i in sp[k]) for k in ("train", "val"))
        for sp in splits
    ):
        problems.append("splits is not a list of {train: [...], val: [...]} image ids")
    messages = meta.get("messages", [])
    if not isinstance(messages, list) or not all(isinstance(m, str) for m in messages):
        problems.append("messages is not a list of text")
    results = meta.get("fold_results", [])
    if not isinstance(results, list) or not all(isinstance(r, dict) or r is None for r in results):
        problems.append("fold_results is not a list of objects")
    if problems:
        raise CheckpointError(path, "damaged run description: " + "; ".join(problems)
                              + " (restore the file, or train a new run in another folder)")


def read_calibration(path: str | os.PathLike) -> tuple[dict, int | None]:
    """The ``calibration`` block of the run that ``path`` belongs to, and the fold ``path`` names.

    ``path`` is a run folder (fold None) or a fold folder inside one; a
    model folder outside any run gives ``({}, None)``. Never raises.
    """
    path = Path(path)
    if path.is_file():
        path = path.parent
    meta = read_run_meta(path)
    fold = None
    if meta is None:
        fold = fold_number(path)
        meta = read_run_meta(path.parent) if fold is not None else None
    cal = (meta or {}).get("calibration")
    return (dict(cal) if isinstance(cal, dict) else {}), fold


def _positive(value) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if v > 0 and v == v and v != float("inf") else None


def stored_temperature(path: str | os.PathLike, *, fold: int | None = None) -> float:
    """The temperature the run stored for predicting with ``path`` (1.0 when none was stored).

    A run folder with ``fold=None`` is the ensemble: ``ensemble_temperature``
    (one T fitted on the pooled out-of-fold predictions, applied to the mean
    of the folds' softmax). One fold (``fold=k``, or ``path`` a fold folder)
    gets that fold's own ``fold_temperatures[k]``.
    """
    cal, path_fold = read_calibration(path)
    fold = path_fold if fold is None else fold
    if fold is None:
        return _positive(cal.get("ensemble_temperature")) or 1.0
    temps = cal.get("fold_temperatures") or []
    return (_positive(temps[fold]) if isinstance(temps, list) and 0 <= fold < len(temps) else None) or 1.0


def stored_roi_tau(path: str | os.PathLike) -> float | None:
    """The RoI threshold τ the run validated for suggestions (``roi_tau``), or None."""
    tau = _positive(read_calibration(path)[0].get("roi_tau"))
    return tau if tau is not None and tau < 1 else None


def summarize(meta: dict, run_dir: str | os.PathLike, n_folds: int | None = None) -> dict:
    """The metrics summary of a run's ``run.json`` content (what training returns and reports).

    Parameters
    ----------
    meta : dict
        ``run.json``'s content.
    run_dir : path-like
    n_folds : int, optional
        Report this many folds (pending ones padded); default ``meta["folds"]``.

    Returns
    -------
    dict
        ``status``, ``run_dir``, ``variant``, ``folds`` (one record per fold),
        ``mean_val_acc``, ``mean_val_auc``, ``mean_val_miou`` (means over
        finished folds, None when none has the value), ``messages``, ``selection``.
    """
    n = int(meta.get("folds", 0) or 0) if n_folds is None else int(n_folds)
    folds = [dict(f) for f in meta.get("fold_results", []) if isinstance(f, dict)]
    while len(folds) < n:
        folds.append({"fold": len(folds), "status": "pending"})
    done = [f for f in folds if f.get("status") == "finished"]

    def mean(key):
        vals = [float(f[key]) for f in done if isinstance(f.get(key), (int, float))]
        return sum(vals) / len(vals) if vals else None

    return {
        "status": meta.get("status"),
        "run_dir": str(run_dir),
        "variant": meta.get("variant"),
        "folds": folds,
        "mean_val_acc": mean("val_acc"),
        "mean_val_auc": mean("val_auc"),
        "mean_val_miou": mean("val_miou"),
        "messages": list(meta.get("messages", [])),
        "selection": meta.get("selection"),
    }


class Run:
    """A training run folder: ``run.json`` and ``fold-k/`` model folders.

    Parameters
    ----------
    folder : path-like

    Raises
    ------
    CheckpointError
        ``run.json`` is missing or invalid.
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.meta = read_json(self.folder / RUN_FILE)
        if self.meta.get("format") not in (None, RUN_FORMAT):
            raise CheckpointError(self.folder / RUN_FILE, f"not a GuSA run (format {self.meta.get('format')!r})")
        check_run_meta(self.folder / RUN_FILE, self.meta)

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def variant(self) -> str:
        return self.meta.get("variant", "")

    @property
    def class_names(self) -> list[str]:
        return list(self.meta.get("class_names", []))

    @property
    def input_size(self) -> tuple[int, int]:
        w, h = self.meta.get("input_size", (0, 0))
        return int(w), int(h)

    @property
    def status(self) -> str:
        return self.meta.get("status", "unknown")

    @property
    def folds(self) -> int:
        return int(self.meta.get("folds", 0))

    @property
    def resumable(self) -> bool:
        """Whether the run ended before finishing (stopped, failed, interrupted) and can be continued.

        A ``"running"`` run is not listed: it may be training right now, in
        another process (one whose process died stays ``"running"``; resume it by name).
        """
        return self.status in ("stopped", "failed", "interrupted")

    def epoch_history(self) -> list[dict]:
        """The epoch records of every fold so far (``fold`` from 0, ``epoch`` from 1), in training order."""
        records = []
        for result in self.meta.get("fold_results", []):
            records += [dict(r) for r in result.get("history", []) if isinstance(r, dict)]
        return records

    def fold_dirs(self, fold: int | None = None) -> list[Path]:
        """The fold folders that hold a saved model, in fold order.

        With ``fold``, only that fold's folder; :class:`CheckpointError` when it has no model.
        """
        found = [(fold_number(d), d) for d in self.folder.glob(f"{_FOLD_PREFIX}*")]
        dirs = [d for k, d in sorted((k, d) for k, d in found if k is not None) if is_model_folder(d)]
        if fold is None:
            return dirs
        chosen = [d for d in dirs if fold_number(d) == int(fold)]
        if not chosen:
            names = ", ".join(d.name for d in dirs) or "none"
            raise CheckpointError(self.folder, f"fold {fold} has no finished model (trained folds: {names})")
        return chosen

    def summary(self) -> dict:
        """The metrics summary (see :func:`summarize`)."""
        return summarize(self.meta, self.folder)

    def load_models(self, *, device: str | torch.device = "cpu") -> list[tuple[nn.Module, dict]]:
        """Load every fold's (best) model: a list of ``(model, meta)``.

        Raises
        ------
        CheckpointError
            No fold has a model, or one of them is invalid.
        """
        dirs = self.fold_dirs()
        if not dirs:
            raise CheckpointError(self.folder, "the run has no trained fold model yet")
        return [load_model(d, device=device) for d in dirs]

    def __repr__(self) -> str:
        return f"Run({str(self.folder)!r}, variant={self.variant!r}, status={self.status!r})"


def list_runs(project_folder: str | os.PathLike) -> list[Run]:
    """The runs in ``project_folder/runs/``, newest first; unreadable ones, and hidden folders
    (a run being deleted is renamed to ``.name`` first), are skipped."""
    runs = []
    for p in runs_dir(project_folder).glob(f"*/{RUN_FILE}"):
        if p.parent.name.startswith("."):
            continue
        try:
            runs.append(Run(p.parent))
        except CheckpointError:
            continue
    runs.sort(key=lambda r: (r.meta.get("created", ""), r.name), reverse=True)
    return runs


def model_folders(path: str | os.PathLike, *, fold: int | None = None) -> list[Path]:
    """The model folders to predict with: a run's trained folds, or the one model folder given.

    Parameters
    ----------
    path : path-like
        A run folder, a model folder, or a file inside a model folder.
    fold : int, optional
        Only this fold of a run.

    Raises
    ------
    CheckpointError
        No such folder, or no finished model.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(path, "no such run folder")
    if path.is_file() or is_model_folder(path):
        return [path.parent if path.is_file() else path]
    folders = Run(path).fold_dirs(fold)
    if not folders:
        raise CheckpointError(path, "the run holds no finished fold model (train it first)")
    return folders


def project_candidates(model_folder: str | os.PathLike) -> list[Path]:
    """Where the project a fold model was trained from may be, most likely first.

    ``run.json``'s ``project``, then the folder two levels above the run
    (``<project>/runs/<name>/fold-k``); the caller checks which holds a project.
    """
    run_folder = Path(model_folder).parent
    meta = read_run_meta(run_folder) or {}
    found = [Path(meta["project"])] if meta.get("project") else []
    return found + [run_folder.parent.parent]


# --------------------------------------------------------------- writing
class RunState:
    """``run.json`` of a run being trained, kept up to date (only the main rank writes)."""

    def __init__(self, run_dir: Path, meta: dict, *, write: bool):
        self.run_dir = Path(run_dir)
        self.meta = meta
        self.write_enabled = write

    def save(self) -> None:
        self.meta["updated"] = now_iso()
        if self.write_enabled:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.run_dir / RUN_FILE, self.meta)

    def fold_list(self, n: int) -> list[dict]:
        results = self.meta.setdefault("fold_results", [])
        while len(results) < n:
            results.append({"fold": len(results), "status": "pending"})
        return results

    def fold_finished(self, k: int) -> bool:
        results = self.meta.get("fold_results", [])
        done = k < len(results) and results[k].get("status") == "finished"
        return done and is_model_folder(fold_dir(self.run_dir, k))

    def set_fold(self, k: int, result: dict) -> None:
        self.fold_list(k + 1)[k] = dict(result)
        self.save()

    def finish(self, status: str, *, error: str | None = None) -> None:
        self.meta["status"] = status
        if error is not None:
            self.meta["error"] = error
        else:
            self.meta.pop("error", None)
        self.save()

    def summary(self, n: int) -> dict:
        """The metrics summary over ``n`` folds (see :func:`summarize`)."""
        self.fold_list(n)
        return summarize(self.meta, self.run_dir, n)


def new_run_meta(*, variant: str, class_names: Sequence[str], input_size: Sequence[int], project=None) -> dict:
    """The fixed part of a new ``run.json``: format, variant, classes, input size, creation."""
    meta = {
        "format": RUN_FORMAT,
        "variant": variant,
        "class_names": list(class_names),
        "input_size": [int(v) for v in input_size],
        "created": now_iso(),
        "gusa_version": __version__,
    }
    if project is not None:
        meta["project"] = str(Path(project).resolve())
    return meta


def write_untrained_run(
    folder: str | os.PathLike,
    *,
    variant: str,
    class_names: Sequence[str],
    input_size: Sequence[int],
    folds: int = 1,
    seed: int = 0,
    reinhard: dict | None = None,
    validation_ids: Sequence[Sequence[str]] | None = None,
) -> Run:
    """Write a finished-looking run whose fold models hold random weights (self-test, test fixtures).

    Fold ``k``'s model is built with ``torch.manual_seed(seed + k)``; its
    BatchNorm statistics and scales are randomised too, so that eval-mode
    outputs differ between images and between folds.

    Parameters
    ----------
    folder : path-like
        The run folder (created).
    variant, class_names, input_size
        As in training; ``input_size`` is ``(width, height)``.
    folds : int
    seed : int
    reinhard : dict, optional
        A :meth:`ReinhardNormalizer.to_dict` stored with each model (None: no colour normalisation).
    validation_ids : sequence of sequences of str, optional
        The validation image ids of each fold.

    Returns
    -------
    Run
    """
    # torch, the models and data are imported here, lazily: reading runs stays torch-free
    import torch

    from .data import IMAGENET_MEAN, IMAGENET_STD
    from .models import build_model

    folder = Path(folder)
    w, h = (int(v) for v in input_size)
    results = []
    for k in range(int(folds)):
        torch.manual_seed(int(seed) + k)
        model = build_model(variant, num_classes=len(class_names), pretrained="none").eval()
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.1, 0.1)
                    m.running_var.uniform_(0.5, 1.5)
                    m.weight.uniform_(0.5, 1.5)
        val = list(validation_ids[k]) if validation_ids is not None else []
        meta = {
            "variant": variant, "class_names": list(class_names), "input_size": [w, h], "reinhard": reinhard,
            "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "training": {"note": "random weights"},
            "history": [], "fold": k, "folds": int(folds), "validation_ids": val, "metrics": {}, "kind": "best",
        }
        save_model(fold_dir(folder, k), model, meta)
        results.append({"fold": k, "status": "finished", "n_val": len(val)})
    run_meta = new_run_meta(variant=variant, class_names=class_names, input_size=(w, h))
    run_meta.update(folds=int(folds), status="finished", reinhard=reinhard, fold_results=results,
                    messages=["random weights (untrained)"], updated=now_iso())
    atomic_write_json(folder / RUN_FILE, run_meta)
    return Run(folder)
