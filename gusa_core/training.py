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
data-parallel (see :func:`gusa_core.device.setup_distributed`).

Importing this module does not import torch (the app reads ``TrainConfig``
on its GUI thread); :meth:`Trainer.run` does.
"""

from __future__ import annotations

import os
import random
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import DEFAULT_INPUT_SIZE

#: How the saved ("best") model of a fold is chosen.
BEST_BY = "val_acc, ties broken by the lower val_loss"

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
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state() -> dict:
    import torch

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
    import torch

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
        from .folds import FoldTrainer
        from .run_setup import prepare

        _seed_everything(self.config.seed)
        dist = setup_distributed(self.config.device)
        cb = self.callbacks if dist.is_main else _Silent()
        state = None
        try:
            prep = prepare(self, dist, cb)
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
            self.stopped = any(f.get("status") != "finished" for f in state.fold_list(len(prep.splits)))
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
                try:  # an abort (second Ctrl+C) leaves a resumable run, as a stop does
                    aborted = isinstance(exc, KeyboardInterrupt)
                    state.finish("stopped" if aborted else "failed", error=None if aborted else f"{type(exc).__name__}: {exc}")
                except Exception:
                    pass
            if not isinstance(exc, KeyboardInterrupt):
                cb.on_log(f"training failed: {type(exc).__name__}: {exc}")
            raise
        finally:
            dist.cleanup()


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

    run_file = Path(args.out) / "run.json"
    if args.resume and run_file.is_file():
        # A resumed run keeps its own settings (the command line's defaults would not fit it).
        import json

        stored = json.loads(run_file.read_text(encoding="utf-8")).get("config", {})
        known = {k: v for k, v in stored.items() if k in TrainConfig.__dataclass_fields__}
        known.update(device=args.device, workers=args.workers)
        config = TrainConfig(**known)
        config.input_size = tuple(config.input_size)
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
