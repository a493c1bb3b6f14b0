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
When every fold is finished, the temperature and the suggestion threshold
are fitted on the out-of-fold validation predictions and stored in
``run.json`` (:mod:`.calibrate`).
A resumed run gives the same weights as an uninterrupted one: the data order
and every augmentation draw are functions of ``(seed, fold, epoch, index)``
alone (see :class:`gusa_core.data.SeededSampler`).

On CUDA the forward pass runs under fp16 autocast with a gradient scaler and
channels-last memory; on the CPU under bf16 autocast where the CPU has
AVX-512 BF16 or AMX and in fp32 elsewhere (``TrainConfig.precision``, see
:mod:`gusa_core.training.precision`); the weights stay fp32. Launched by ``torchrun``, the same code trains
data-parallel (see :func:`gusa_core.device.setup_distributed`).

Importing this module does not import torch (the app reads ``TrainConfig``
on its GUI thread); :meth:`Trainer.run` does, through :mod:`gusa_core.device`
and the fold trainer, imported there for that reason.
"""

from __future__ import annotations

import threading
from pathlib import Path

from ..project import Project
from ..project.lock import ProjectLock
from ..runs import run_lock_path
from .config import Silent, TrainCallbacks, TrainConfig
from .seeding import seed_everything

__all__ = ["Trainer"]


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
            project = Project.open(project, read_only=True)  # training reads the project, writes only its run
        self.project = project
        self.out_dir = Path(out_dir)
        self.config = config or TrainConfig()
        self.callbacks = callbacks or Silent()
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
            exists without ``resume``), or another trainer holds the run
            folder's lock (`ProjectLockedError` naming it). Any exception
            marks the run "failed".

        Notes
        -----
        Training takes no project lock: it only reads the project, so the
        app may go on painting. It holds the run folder's lock
        (``runs/<name>/run.lock``, rank 0 for all ranks) while it writes.
        """
        # torch is imported here, not with the module (see the module's docstring).
        from ..device import setup_distributed
        from .fold_trainer import FoldTrainer
        from .setup import prepare

        self.config.validate()  # before anything is written
        seed_everything(self.config.seed)
        dist = setup_distributed(self.config.device)
        cb = self.callbacks if dist.is_main else Silent()
        state = None
        created = not self.out_dir.exists()
        lock_file = run_lock_path(self.out_dir)
        run_lock = ProjectLock(lock_file.parent, purpose="training", name=lock_file.name)
        try:
            if dist.is_main:
                run_lock.acquire()
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
            if not self.stopped and dist.is_main:
                self._calibrate(prep, state, cb)
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
            run_lock.release()
            if dist.is_main and created and self.out_dir.is_dir() and not any(self.out_dir.iterdir()):
                self.out_dir.rmdir()  # refused before anything was written: leave no empty folder
            dist.cleanup()

    def _calibrate(self, prep, state, cb) -> None:
        """Fit T and the suggestion threshold on the out-of-fold predictions (see :mod:`.calibrate`)."""
        from .calibrate import calibrate_run

        try:
            cal = calibrate_run(self.out_dir, prep.project, prep.splits, prep.classes, device=self.config.device, log=cb.on_log)
        except Exception as exc:  # a finished training stays finished: predictions are then uncalibrated
            cb.on_log(f"calibration skipped: {type(exc).__name__}: {exc}")
            cal = {"ensemble_temperature": 1.0, "notes": [f"calibration failed: {type(exc).__name__}: {exc}"]}
        state.meta["calibration"] = cal
        state.save()
