"""Training the GuSA model family with the paper's protocol, cancellable and resumable.

Protocol (``GUSA.md``): Adam (lr 5e-5, L2 weight decay 1e-5), mini-batch 5,
learning rate times 0.9 every 10 epochs, loss = cross-entropy + lambda * dice
(eq. 8), every layer fine-tuned, augmentation on the training images only,
stratified k-fold cross-validation over the labelled images. Images without a
mask train the classifier only.

Each fold writes ``fold-k/`` in the run folder: the best epoch's model (by
validation accuracy, ties broken by the lower validation loss),
``fold-k/last/`` (the final epoch's model) and, while the fold is
unfinished, ``fold-k/last.pt-state/``: everything needed to continue after
the last completed epoch (weights, optimizer, scheduler, gradient scaler,
random generators, history), saved after every epoch without pickle.
A resumed run gives the same weights as an uninterrupted one: the data order
and every augmentation draw are functions of ``(seed, fold, epoch, index)``
alone (see :class:`gusa_core.data.SeededSampler`).

On CUDA the forward pass runs under fp16 autocast with a gradient scaler and
channels-last memory; on the CPU in fp32 (bf16 autocast has no fast path on
CPUs without AVX-512/AMX). Launched by ``torchrun``, the same code trains
data-parallel (see :mod:`gusa_core.distributed`).
"""

from __future__ import annotations

import math
import os
import random
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import DEFAULT_INPUT_SIZE, __version__
from .atomic import atomic_write_json
from .checkpoint import RUN_FILE, STATE_DIR, now_iso
from .errors import CheckpointError, GusaError
from .folds import BEST_BY, FoldTrainer, make_folds

__all__ = ["TrainConfig", "TrainCallbacks", "Trainer", "train_from_cli", "BEST_BY"]

@dataclass
class TrainConfig:
    """Training settings; the defaults are the paper's protocol.

    Extra fields beyond the contract: ``channels_last`` and
    ``memory_efficient`` (gradient checkpointing of the dense layers) take
    ``None`` for the device's default, chosen by ``benchmarks/bench_train.py``.
    """

    variant: str = "fa-gusa"
    folds: int = 4
    val_fraction: float = 0.25
    epochs: int = 30
    batch_size: int = 5
    lr: float = 5e-5
    lr_decay: float = 0.9
    lr_step: int = 10
    weight_decay: float = 1e-5
    dice_weight: float = 1.0
    input_size: tuple[int, int] = DEFAULT_INPUT_SIZE
    device: str = "auto"
    pretrained: str = "auto"
    seed: int = 0
    augment: bool = True
    workers: int | None = None
    color_normalize: bool = True
    channels_last: bool | None = None
    memory_efficient: bool | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_size"] = [int(v) for v in self.input_size]
        return d


class TrainCallbacks:
    """Receives training progress; subclass and override what you need (all no-ops).

    Records are plain dicts of numbers and strings (JSON-ready); a metric that
    cannot be computed (AUC with one class, mIoU without masks) is ``None``.
    """

    def on_run_start(self, info: dict) -> None:
        """Once: run folder, device, folds, image counts, messages."""

    def on_fold_start(self, fold: int, folds: int) -> None:
        """Before each fold that is trained."""

    def on_batch_end(self, rec: dict) -> None:
        """After each training batch: fold, epoch, epochs, batch, batches, loss, ce, dice, images_per_s, lr."""

    def on_epoch_end(self, rec: dict) -> None:
        """After each epoch: train and validation metrics, lr, seconds, best, saved."""

    def on_fold_end(self, fold: int, metrics: dict) -> None:
        """After each fold (not called for a fold interrupted by a stop)."""

    def on_log(self, message: str) -> None:
        """Human-readable notes (fallbacks, resume, saving, errors)."""

    def on_run_end(self, summary: dict) -> None:
        """Once, with the run summary (also when stopped)."""


class _Silent(TrainCallbacks):
    pass


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state() -> dict:
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": _py_state_to_json(random.getstate()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def _py_state_to_json(state):
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(cached)))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda"]))


class Trainer:
    """Train a model on a project, fold by fold.

    Parameters
    ----------
    project : Project or path-like
        The project (opened if a path is given). Only labelled images are used.
    out_dir : path-like
        The run folder, e.g. ``project/runs/<name>``.
    config : TrainConfig, optional
    callbacks : TrainCallbacks, optional
    resume : bool
        Continue an unfinished run in ``out_dir``: finished folds are kept,
        the unfinished one continues after its last completed epoch.

    Notes
    -----
    ``run()`` may be called from a worker thread; ``request_stop()`` from any
    thread. The stop is honoured before the next batch (and between
    validation batches); the last completed epoch's state stays on disk and
    ``run.json`` says ``"stopped"``.
    """

    def __init__(self, project, out_dir, config: TrainConfig | None = None, *, callbacks: TrainCallbacks | None = None, resume: bool = False):
        if not hasattr(project, "images"):
            from .project import Project

            project = Project.open(project)
        self.project = project
        self.out_dir = Path(out_dir)
        self.config = config or TrainConfig()
        self.callbacks = callbacks or _Silent()
        self.resume = bool(resume)
        self._stop = threading.Event()
        self.stopped = False
        self.summary: dict | None = None
        #: The model of the last fold trained (in memory; identical on every rank under DDP).
        self.last_model = None

    # ------------------------------------------------------------ control
    def request_stop(self) -> None:
        """Ask the run to stop before its next batch (thread-safe)."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    # ---------------------------------------------------------------- run
    def run(self) -> dict:
        """Train every fold; return the run summary.

        Returns
        -------
        dict
            ``status`` ("finished" or "stopped"), ``run_dir``, ``folds`` (one
            summary per fold), ``messages``.

        Raises
        ------
        GusaError
            Bad settings or project (too few labelled images, run folder
            exists without ``resume``). Any exception marks the run "failed".
        """
        from .device import setup_distributed

        dist = setup_distributed(self.config.device)
        cb = self.callbacks if dist.is_main else _Silent()
        state = None
        try:
            prep = _prepare(self, dist, cb)
            state = prep.run_state
            for k, (train_ids, val_ids) in enumerate(prep.splits):
                if state.fold_finished(k):
                    cb.on_log(f"fold {k}: already finished, kept")
                    continue
                if self._stop.is_set():
                    break
                cb.on_fold_start(k, len(prep.splits))
                result = FoldTrainer(self, prep, dist, cb, k, train_ids, val_ids).run()
                state.set_fold(k, result)
                if result["status"] != "finished":
                    break
                cb.on_fold_end(k, result)
            self.stopped = self._stop.is_set() or any(f.get("status") != "finished" for f in state.fold_list(len(prep.splits)))
            status = "stopped" if self.stopped else "finished"
            state.finish(status)
            summary = state.summary(len(prep.splits))
            if self.stopped:
                summary["resume_hint"] = f"gusa train {self.project.folder} --out {self.out_dir} --resume"
            self.summary = summary
            cb.on_run_end(summary)
            return summary
        except BaseException as exc:
            if state is not None:
                try:
                    state.finish("failed", error=f"{type(exc).__name__}: {exc}")
                except Exception:
                    pass
            if not isinstance(exc, KeyboardInterrupt):
                cb.on_log(f"training failed: {type(exc).__name__}: {exc}")
            raise
        finally:
            dist.cleanup()


# ------------------------------------------------------------ run setup
#: CPU defaults chosen with benchmarks/bench_train.py (see its output in the report).
CPU_CHANNELS_LAST = False
CPU_MEMORY_EFFICIENT = False


class RunState:
    """``run.json`` of a run folder, kept up to date (only the main rank writes)."""

    def __init__(self, run_dir: Path, meta: dict, *, write: bool):
        self.run_dir = run_dir
        self.meta = meta
        self.write_enabled = write

    def save(self) -> None:
        self.meta["updated"] = now_iso()
        if self.write_enabled:
            atomic_write_json(self.run_dir / RUN_FILE, self.meta)

    def fold_list(self, n: int) -> list[dict]:
        results = self.meta.setdefault("fold_results", [])
        while len(results) < n:
            results.append({"fold": len(results), "status": "pending"})
        return results

    def fold_finished(self, k: int) -> bool:
        results = self.meta.get("fold_results", [])
        done = k < len(results) and results[k].get("status") == "finished"
        folder = self.run_dir / f"fold-{k}"
        return done and (folder / "model.safetensors").is_file() and (folder / "model.json").is_file()

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
        folds = self.fold_list(n)
        done = [f for f in folds if f.get("status") == "finished"]

        def mean(key):
            vals = [f[key] for f in done if f.get(key) is not None]
            return float(np.mean(vals)) if vals else None

        return {
            "status": self.meta.get("status"),
            "run_dir": str(self.run_dir),
            "variant": self.meta.get("variant"),
            "folds": folds,
            "mean_val_acc": mean("val_acc"),
            "mean_val_auc": mean("val_auc"),
            "mean_val_miou": mean("val_miou"),
            "messages": list(self.meta.get("messages", [])),
            "selection": BEST_BY,
        }


class _Prepared:
    """Everything the folds share: project, device, splits, normaliser, cache."""


def _normalizer(project, config: TrainConfig, stored: dict | None, cb: TrainCallbacks):
    """The Reinhard normaliser of the run (the stored one when resuming), or None."""
    from .stain import ReinhardNormalizer

    if not config.color_normalize:
        return None
    if stored:
        return ReinhardNormalizer.from_dict(stored)
    ref = getattr(project, "reinhard_reference", None)
    if ref:
        try:
            if isinstance(ref, dict):
                return ReinhardNormalizer.from_dict(ref)
            path = Path(project.folder) / ref
            if path.suffix.lower() == ".json" and path.is_file():
                import json

                return ReinhardNormalizer.from_dict(json.loads(path.read_text(encoding="utf-8")))
            ids = {r.id for r in project.images}
            from .imageio import read_image

            image = read_image(project.image_path(ref) if ref in ids else path)
            norm = ReinhardNormalizer().fit(image)
            norm.source = str(ref)
            return norm
        except (GusaError, ValueError, OSError) as exc:
            cb.on_log(f"colour reference {ref!r} unusable ({exc}); using the shipped default")
    return ReinhardNormalizer.default()


def _prepare(trainer: "Trainer", dist, cb: TrainCallbacks) -> _Prepared:
    from .imageio import DownsampleCache
    from .models_registry import VARIANT_NAMES

    cfg = trainer.config
    if cfg.variant not in VARIANT_NAMES:
        raise GusaError(f"unknown variant {cfg.variant!r} (known: {', '.join(VARIANT_NAMES)})")
    w, h = (int(v) for v in cfg.input_size)
    if w <= 0 or h <= 0 or w % 16 or h % 16:
        raise GusaError(f"input size {w}x{h} must be positive and divisible by 16")
    if cfg.epochs < 1 or cfg.batch_size < 1:
        raise GusaError("epochs and batch size must be at least 1")
    cfg.input_size = (w, h)
    project = trainer.project
    prep = _Prepared()
    prep.project, prep.config, prep.device = project, cfg, dist.device
    prep.run_dir = trainer.out_dir
    cpu = dist.device.type == "cpu"
    if not cpu:
        torch.backends.cudnn.benchmark = True
    prep.amp = dist.device.type == "cuda"
    prep.channels_last = cfg.channels_last if cfg.channels_last is not None else (not cpu or CPU_CHANNELS_LAST)
    prep.memory_efficient = cfg.memory_efficient if cfg.memory_efficient is not None else (cpu and CPU_MEMORY_EFFICIENT)
    if cfg.workers is not None:
        prep.workers = max(0, int(cfg.workers))
    else:  # the CPU spends ~1 s per image in the network and ~15 ms loading it: no worker needed
        prep.workers = 0 if cpu else min(4, max(0, (os.cpu_count() or 1) - 1))
    prep.classes = list(project.classes)

    run_file = prep.run_dir / RUN_FILE
    stored = None
    if run_file.is_file():
        if not trainer.resume:
            raise GusaError(f"run folder {prep.run_dir} already holds a run: choose another --out or pass --resume")
        from .checkpoint import Run

        stored = Run(prep.run_dir).meta
        for key, now in (("variant", cfg.variant), ("class_names", prep.classes), ("input_size", [w, h])):
            if stored.get(key) != now:
                raise CheckpointError(run_file, f"cannot resume: {key} was {stored.get(key)!r}, now {now!r}")
    elif trainer.resume:
        cb.on_log(f"nothing to resume in {prep.run_dir}: starting a new run")

    messages: list[str] = []
    if stored and stored.get("splits"):
        splits = [(list(s["train"]), list(s["val"])) for s in stored["splits"]]
        messages = list(stored.get("messages", []))
    else:
        records = [r for r in project.images if r.label is not None]
        unknown = [r.id for r in records if r.label not in prep.classes]
        if unknown:
            messages.append(f"{len(unknown)} image(s) have a label that is not a class and are skipped: {', '.join(unknown[:5])}")
        records = [r for r in records if r.label in prep.classes]
        skipped = len(project.images) - len(records) - len(unknown)
        if skipped:
            messages.append(f"{skipped} unlabelled image(s) skipped")
        labels = [prep.classes.index(r.label) for r in records]
        index_splits, split_msgs = make_folds(labels, folds=cfg.folds, val_fraction=cfg.val_fraction, seed=cfg.seed)
        messages += split_msgs
        ids = [r.id for r in records]
        splits = [([ids[i] for i in tr], [ids[i] for i in va]) for tr, va in index_splits]
    prep.splits = splits
    n_masked = sum(1 for r in project.images if r.label in prep.classes and r.mask is not None)
    prep.normalizer = _normalizer(project, cfg, stored.get("reinhard") if stored else None, cb)
    prep.normalizer_dict = prep.normalizer.to_dict() if prep.normalizer is not None else None
    prep.cache = DownsampleCache(project.cache_dir)

    meta = stored or {
        "format": "gusa-run",
        "variant": cfg.variant,
        "class_names": prep.classes,
        "input_size": [w, h],
        "created": now_iso(),
        "project": str(Path(project.folder).resolve()),
        "gusa_version": __version__,
    }
    meta.update(
        config=cfg.to_dict(), folds=len(splits), status="running", reinhard=prep.normalizer_dict, messages=messages,
        splits=[{"train": tr, "val": va} for tr, va in splits], selection=BEST_BY,
        device=str(dist.device), world_size=dist.world_size,
    )
    dist.barrier()  # every rank has checked the folder before rank 0 writes into it
    prep.run_state = RunState(prep.run_dir, meta, write=dist.is_main)
    if dist.is_main:
        prep.run_dir.mkdir(parents=True, exist_ok=True)
    prep.run_state.fold_list(len(splits))
    prep.run_state.save()
    for m in messages:
        cb.on_log(m)
    cb.on_run_start(
        {
            "run_dir": str(prep.run_dir), "device": str(dist.device), "world_size": dist.world_size,
            "folds": len(splits), "epochs": cfg.epochs, "variant": cfg.variant,
            "n_labelled": len(splits[0][0]) + len(splits[0][1]), "n_masked": n_masked,
            "n_train": [len(tr) for tr, _ in splits], "n_val": [len(va) for _, va in splits],
            "channels_last": prep.channels_last, "memory_efficient": prep.memory_efficient,
            "amp": prep.amp, "workers": prep.workers, "messages": messages, "resume": trainer.resume,
        }
    )
    return prep


class ProgressCallbacks(TrainCallbacks):
    """Terminal progress for ``gusa train``: a tqdm bar per epoch and a line per epoch."""

    def __init__(self, *, enabled: bool = True, stream=None):
        import sys

        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.bar = None
        self.folds = 1

    def write(self, text: str) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        tqdm.write(text, file=self.stream)

    def on_run_start(self, info: dict) -> None:
        self.folds = info["folds"]
        self.write(
            f"training {info['variant']} on {info['device']}"
            + (f" x{info['world_size']} processes" if info["world_size"] > 1 else "")
            + f": {info['n_labelled']} labelled images ({info['n_masked']} with RoI masks), "
            f"{info['folds']} fold(s), {info['epochs']} epochs -> {info['run_dir']}"
        )

    def on_log(self, message: str) -> None:
        self.write(message)

    def on_batch_end(self, rec: dict) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        if self.bar is None or rec["batch"] == 1:
            self.close()
            self.bar = tqdm(
                total=rec["batches"], file=self.stream, leave=False, unit="batch",
                desc=f"fold {rec['fold'] + 1}/{self.folds} epoch {rec['epoch']}/{rec['epochs']}",
            )
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{rec['loss']:.3f}", img_s=f"{rec['images_per_s']:.2f}", refresh=False)

    def on_epoch_end(self, rec: dict) -> None:
        self.close()
        f = _fmt
        self.write(
            f"fold {rec['fold'] + 1}/{self.folds} epoch {rec['epoch']}/{rec['epochs']}: "
            f"train loss {f(rec['train_loss'])} acc {f(rec['train_acc'])} | val loss {f(rec['val_loss'])} "
            f"acc {f(rec['val_acc'])} AUC {f(rec['val_auc'])} mIoU {f(rec['val_miou'])} | "
            f"{rec['images_per_s']:.2f} img/s, {rec['seconds']:.0f} s" + ("  * saved" if rec.get("best") else "")
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def print_summary(self, summary: dict) -> None:
        print(f"run {summary['status']}: {summary['run_dir']}  (best epoch per fold by {summary['selection']})")
        for fr in summary["folds"]:
            print(
                f"  fold {fr['fold']}: {fr.get('status')}, best epoch {fr.get('best_epoch')}, val acc {_fmt(fr.get('val_acc'))}, "
                f"AUC {_fmt(fr.get('val_auc'))}, mIoU {_fmt(fr.get('val_miou'))}"
            )
        if summary.get("mean_val_acc") is not None:
            print(
                f"  mean: val acc {_fmt(summary['mean_val_acc'])}, AUC {_fmt(summary['mean_val_auc'])}, "
                f"mIoU {_fmt(summary['mean_val_miou'])}"
            )
        if summary.get("resume_hint"):
            print(f"stopped; continue with: {summary['resume_hint']}")


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.3f}"


# ------------------------------------------------------------------- CLI
def train_from_cli(args) -> int:
    """``gusa train``: train with a progress bar and print a summary.

    Ctrl+C requests a stop: the current batch ends, the last completed epoch
    stays saved, and the command to resume is printed.
    """
    import signal

    config = TrainConfig(
        variant=args.variant,
        folds=args.folds,
        val_fraction=args.val_fraction,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        dice_weight=args.dice_weight,
        input_size=tuple(args.input_size),
        device=args.device,
        pretrained=args.pretrained,
        seed=args.seed,
        augment=not args.no_augment,
        workers=args.workers,
    )
    from .device import configure_cpu_threads

    rank = int(os.environ.get("RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    if args.device in ("cpu", "auto"):
        # One share of the CPUs per local process: oversubscribed threads slow training many times over.
        configure_cpu_threads(max(1, _cpu_count() // local_world) if local_world > 1 else None)
    callbacks = ProgressCallbacks(enabled=rank == 0)
    trainer = Trainer(args.project, args.out, config, callbacks=callbacks, resume=args.resume)

    def _on_sigint(signum, frame):
        if trainer.stop_requested:  # a second Ctrl+C aborts at once
            raise KeyboardInterrupt
        callbacks.write("stopping after the current batch (Ctrl+C again to abort) ...")
        trainer.request_stop()

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, _on_sigint)
    try:
        summary = trainer.run()
    finally:
        callbacks.close()
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if rank == 0:
        callbacks.print_summary(summary)
    return 0
