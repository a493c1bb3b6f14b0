"""Caches for the review and compare views: predictions per image and run, loaded predictors per run.

A prediction is keyed by ``(image id, image mtime, run folder, fold)``: editing
or replacing the image file changes its mtime and so misses the cache, and
a fold of ``None`` is the ensemble. Predictions hold an attention map at image
resolution (12 MB for a BACH image), so the memory cache is an LRU bounded in
bytes; the (tiny) class probabilities are kept for every image seen so the image
list can show them after the maps were evicted.

Loaded models are kept per ``(run folder, fold, device)`` in a
:class:`PredictorCache`, so moving between images never reloads weights. Both
caches are thread-safe: workers fill them, the GUI thread reads them.
Nothing here imports torch; :class:`PredictorCache` imports the core's
inference module only when it first loads a model (in a worker).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np

from gusa_core.lru import ByteLRU
from gusa_core.runs import run_json_path

__all__ = [
    "TrainedRun",
    "trained_run",
    "scan_runs",
    "PredictionKey",
    "run_version",
    "prediction_key",
    "PredictionCache",
    "PredictorCache",
    "fold_label",
    "default_fold",
    "shared_prediction_cache",
    "shared_predictor_cache",
]


class TrainedRun(NamedTuple):
    """The review room's record of a :class:`gusa_core.runs.Run` that has trained folds (no torch).

    Made by :func:`trained_run`; immutable, so a view can compare two listings.
    """

    folder: Path
    name: str
    variant: str
    folds: tuple[int, ...]  # folds with a finished model, in order
    status: str
    created: str
    signature: tuple[int, ...] = ()  # mtimes of the fold weights: changes when the run is retrained

    @property
    def title(self) -> str:
        """``"<name> (<variant>)"``."""
        return f"{self.name} ({self.variant})" if self.variant else self.name


def trained_run(run) -> TrainedRun | None:
    """The view record of a :class:`gusa_core.runs.Run` (or a run folder); ``None`` when it is not a run
    or has no trained fold yet. Reads JSON and file times only (no torch)."""
    from gusa_core.checkpoint import MODEL_FILE
    from gusa_core.errors import CheckpointError
    from gusa_core.runs import Run, fold_number

    try:
        run = run if isinstance(run, Run) else Run(run)
    except CheckpointError:
        return None
    folds = {}
    for d in run.fold_dirs():
        try:
            folds[fold_number(d)] = (d / MODEL_FILE).stat().st_mtime_ns
        except OSError:
            continue
    if not folds:
        return None
    order = tuple(sorted(folds))
    return TrainedRun(run.folder.resolve(), run.name, run.variant, order, run.status,
                   str(run.meta.get("created", "")), tuple(folds[k] for k in order))


def scan_runs(project_folder: str | os.PathLike) -> list[TrainedRun]:
    """The runs of the project in ``project_folder`` that have at least one trained fold, newest first.

    Through :func:`gusa_core.runs.list_runs`, which reads the JSON files only
    (no torch in the GUI thread); unreadable runs are skipped.
    """
    from gusa_core.runs import list_runs

    infos = [trained_run(run) for run in list_runs(project_folder)]
    return [info for info in infos if info is not None]  # list_runs' order: newest first


class PredictionKey(NamedTuple):
    """What a cached prediction depends on."""

    image_id: str
    mtime_ns: int
    run_dir: str
    fold: int | None
    #: ``run.json``'s modification time: training (or resuming) a run rewrites it, so its predictions are redone
    run_mtime_ns: int = -1


def _norm_run(run_dir: str | os.PathLike) -> str:
    return str(Path(run_dir).resolve())


def prediction_key(image_id: str, image_path: str | os.PathLike, run_dir: str | os.PathLike,
                   fold: int | None) -> PredictionKey:
    """The cache key of ``image_id`` (at ``image_path``) predicted by ``run_dir`` / ``fold``.

    A missing file gets mtime ``-1`` (the prediction will fail and not be cached).
    """
    try:
        mtime = os.stat(image_path).st_mtime_ns
    except OSError:
        mtime = -1
    return PredictionKey(str(image_id), int(mtime), _norm_run(run_dir), None if fold is None else int(fold),
                         run_version(run_dir))


def run_version(run_dir: str | os.PathLike) -> int:
    """The modification time of the run's ``run.json`` (-1 when missing): it changes whenever the run trains."""
    try:
        return os.stat(run_json_path(run_dir)).st_mtime_ns
    except OSError:
        return -1


def fold_label(fold: int | None, n_folds: int | None = None) -> str:
    """Human-readable name of a fold choice: ``"fold 2"`` or ``"ensemble (4 folds)"``."""
    if fold is None:
        return f"ensemble ({n_folds} folds)" if n_folds else "ensemble"
    return f"fold {fold}"


def default_fold(info: TrainedRun) -> int | None:
    """The fold a view uses unless told otherwise: the ensemble, or the only fold of a one-fold run."""
    return info.folds[0] if len(info.folds) == 1 else None


def _prediction_nbytes(prediction: Any) -> int:
    total = 256
    for name in ("attention", "probs"):
        value = getattr(prediction, name, None)
        if isinstance(value, np.ndarray):
            total += value.nbytes
    return total


class PredictionCache:
    """LRU of predictions, bounded in bytes, plus every (label, probs) summary seen.

    Parameters
    ----------
    max_bytes : int
        Memory budget for the stored predictions (attention maps dominate).
    """

    def __init__(self, max_bytes: int = 256 * 1024 * 1024):
        self._lru = ByteLRU(max_bytes, keep_last=True)  # the prediction just made is always kept
        self._summaries: dict[PredictionKey, tuple[str, np.ndarray]] = {}
        self._lock = threading.Lock()

    max_bytes = property(lambda self: self._lru.max_bytes)
    hits = property(lambda self: self._lru.hits)
    misses = property(lambda self: self._lru.misses)

    def __len__(self) -> int:
        return len(self._lru)

    def __contains__(self, key: PredictionKey) -> bool:
        return key in self._lru

    @property
    def nbytes(self) -> int:
        """Bytes held by the stored predictions."""
        return self._lru.nbytes

    def get(self, key: PredictionKey) -> Any | None:
        """The cached prediction for ``key`` (and mark it recently used), or ``None``."""
        return self._lru.get(key)

    def put(self, key: PredictionKey, prediction: Any) -> None:
        """Store ``prediction``; evicts the least recently used beyond the budget."""
        self._lru.put(key, prediction, _prediction_nbytes(prediction))
        probs = getattr(prediction, "probs", None)
        label = getattr(prediction, "label", None)
        if probs is not None and label is not None:
            with self._lock:
                self._summaries[key] = (str(label), np.asarray(probs, dtype=np.float32).copy())

    def summary(self, key: PredictionKey) -> tuple[str, np.ndarray] | None:
        """``(label, probs)`` of any prediction ever stored under ``key`` (survives eviction)."""
        with self._lock:
            return self._summaries.get(key)

    def invalidate_run(self, run_dir: str | os.PathLike) -> None:
        """Forget every prediction of ``run_dir`` (e.g. after it was retrained)."""
        run = _norm_run(run_dir)
        for key in [k for k in self._lru.keys() if k.run_dir == run]:
            self._lru.discard(key)
        with self._lock:
            for key in [k for k in self._summaries if k.run_dir == run]:
                del self._summaries[key]

    def clear(self) -> None:
        """Forget everything."""
        self._lru.clear()
        with self._lock:
            self._summaries.clear()


class PredictorCache:
    """Loaded :class:`gusa_core.inference.Predictor` objects per ``(run folder, fold, device)``.

    Parameters
    ----------
    max_predictors : int
        How many (run, fold) models stay loaded; the least recently used is dropped.
    factory : callable, optional
        ``factory(run_dir, fold=..., device=...) -> Predictor``; default
        ``Predictor.from_run`` (imported on first use).
    """

    def __init__(self, max_predictors: int = 4, factory: Callable[..., Any] | None = None):
        self.max_predictors = max(1, int(max_predictors))
        self._factory = factory
        self._items: OrderedDict[tuple[str, int | None, str], Any] = OrderedDict()
        self._versions: dict[tuple[str, int | None, str], int] = {}
        self._lock = threading.Lock()
        self._key_locks: dict[tuple[str, int | None, str], threading.Lock] = {}
        self.loads = 0

    def __len__(self) -> int:
        return len(self._items)

    def _make(self, run_dir: str, fold: int | None, device: str):
        factory = self._factory
        if factory is None:
            from gusa_core.inference import Predictor  # torch: only ever in a worker

            factory = Predictor.from_run
        return factory(run_dir, fold=fold, device=device)

    def get(self, run_dir: str | os.PathLike, fold: int | None = None, device: str = "auto"):
        """The predictor for ``run_dir`` / ``fold`` on ``device``, loading it the first time.

        Two threads asking for the same model at once load it only once.
        """
        key = (_norm_run(run_dir), None if fold is None else int(fold), str(device))
        version = run_version(run_dir)
        with self._lock:
            if key in self._items and self._versions.get(key) != version:
                del self._items[key]  # the run trained since its models were loaded: load them again
            self._versions[key] = version
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._items:
                    self._items.move_to_end(key)
                    return self._items[key]
            predictor = self._make(key[0], key[1], key[2])
            with self._lock:
                self.loads += 1
                self._items[key] = predictor
                while len(self._items) > self.max_predictors:
                    self._items.popitem(last=False)
            return predictor

    def engine_info(self, run_dir: str | os.PathLike, fold: int | None = None, device: str = "auto"):
        """The loaded predictor's :class:`~gusa_core.inference.backends.EngineInfo`, or None (never loads one)."""
        key = (_norm_run(run_dir), None if fold is None else int(fold), str(device))
        with self._lock:
            predictor = self._items.get(key)
        return getattr(predictor, "engine_info", None)

    def cached(self, run_dir: str | os.PathLike, fold: int | None = None, device: str = "auto") -> bool:
        """Whether that model is already loaded."""
        key = (_norm_run(run_dir), None if fold is None else int(fold), str(device))
        with self._lock:
            return key in self._items

    def invalidate_run(self, run_dir: str | os.PathLike) -> None:
        """Drop every loaded model of ``run_dir``."""
        run = _norm_run(run_dir)
        with self._lock:
            for key in [k for k in self._items if k[0] == run]:
                del self._items[key]

    def clear(self) -> None:
        """Drop every loaded model."""
        with self._lock:
            self._items.clear()


_shared_predictions: PredictionCache | None = None
_shared_predictors: PredictorCache | None = None


def shared_prediction_cache() -> PredictionCache:
    """The process-wide prediction cache shared by the review panel and the compare view."""
    global _shared_predictions
    if _shared_predictions is None:
        _shared_predictions = PredictionCache()
    return _shared_predictions


def shared_predictor_cache() -> PredictorCache:
    """The process-wide predictor cache shared by the review panel and the compare view."""
    global _shared_predictors
    if _shared_predictors is None:
        _shared_predictors = PredictorCache()
    return _shared_predictors
