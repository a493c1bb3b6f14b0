"""Worker-side training code and the small pure helpers of the training panel.

Split out of :mod:`app.training.training_panel` so the panel file holds only widgets.
Here live the bridge that carries :class:`gusa_core.training.Trainer`
callbacks to the GUI thread as a Qt signal, the stop control, the job that runs
in the worker thread, and helpers that need no widgets (input-size parsing,
the ImageNet weights path, default run names, device detection). Nothing here
imports torch at import time: ``gusa_core.training`` and ``gusa_core.device``
are imported inside the functions that need them.
"""

from __future__ import annotations

import dataclasses
import re
import time
from datetime import datetime

from PySide6.QtCore import QObject, Signal

from gusa_core.models_registry import imagenet_weights_path

__all__ = [
    "TRAINING_PRESETS",
    "INPUT_SIZE_PRESETS",
    "parse_input_size",
    "imagenet_weights_path",
    "default_run_name",
]

INPUT_SIZE_PRESETS = ("512x384", "256x192", "128x96", "64x48")


#: Settings a user can apply in one click: (label, tooltip, values).
TRAINING_PRESETS = (
    ("Paper protocol (BACH)",
     "Yang et al. 2020: 4-fold CV, 30 epochs, 512x384, batch 5, Adam 5e-5; meant for ImageNet weights and a GPU",
     {"folds": 4, "epochs": 30, "input_size": "512x384", "batch_size": 5, "lr": 5e-5}),
    ("Quick look (CPU, about a minute on the demo)",
     "One validation split, 10 epochs at 128x96, Adam 1e-3 (random weights need a larger step than fine-tuning)",
     {"folds": 1, "epochs": 10, "input_size": "128x96", "batch_size": 5, "lr": 1e-3}),
)


def parse_input_size(text: str) -> tuple[int, int]:
    """Parse ``"WxH"`` (both multiples of 16, at least 32) into ``(width, height)``.

    Raises
    ------
    ValueError
        With a message for the user.
    """
    m = re.fullmatch(r"\s*(\d+)\s*[x×X*,]\s*(\d+)\s*", text or "")
    if not m:
        raise ValueError(f"input size {text!r} is not WIDTHxHEIGHT, e.g. 512x384")
    w, h = int(m.group(1)), int(m.group(2))
    if w < 32 or h < 32:
        raise ValueError(f"input size {w}x{h} is too small: both sides must be at least 32")
    if w % 16 or h % 16:
        raise ValueError(f"input size {w}x{h}: both sides must be multiples of 16 (e.g. {w // 16 * 16 or 32}x{h // 16 * 16 or 32})")
    return w, h


def default_run_name(variant: str) -> str:
    """``"20250102-1304_fa-gusa"``: a timestamp and the variant."""
    return f"{datetime.now():%Y%m%d-%H%M%S}_{variant}"


def _detect_devices() -> list[tuple[str, str]]:
    from gusa_core.device import available_devices

    return available_devices()


# --------------------------------------------------------------- the worker side
class _TrainingBridge(QObject):
    """Carries trainer callbacks to the GUI thread: ``(kind, payload, perf_counter)``."""

    event = Signal(object)


class _Control:
    """Connects the GUI's Stop to a trainer created in the worker thread."""

    def __init__(self):
        self.trainer = None
        self.stop = False

    def attach(self, trainer) -> None:
        self.trainer = trainer
        if self.stop:
            trainer.request_stop()

    def request_stop(self) -> None:
        self.stop = True
        trainer = self.trainer
        if trainer is not None:
            trainer.request_stop()


def _make_callbacks(base, bridge: _TrainingBridge):
    emit = bridge.event.emit

    class _QtCallbacks(base):
        def on_run_start(self, info):
            emit(("run_start", dict(info), time.perf_counter()))

        def on_fold_start(self, fold, folds):
            emit(("fold_start", (int(fold), int(folds)), time.perf_counter()))

        def on_batch_end(self, rec):
            emit(("batch_end", dict(rec), time.perf_counter()))

        def on_epoch_end(self, rec):
            emit(("epoch_end", dict(rec), time.perf_counter()))

        def on_fold_end(self, fold, metrics):
            emit(("fold_end", (int(fold), dict(metrics or {})), time.perf_counter()))

        def on_log(self, message):
            emit(("log", str(message), time.perf_counter()))

        def on_run_end(self, summary):
            emit(("run_end", dict(summary or {}), time.perf_counter()))

    return _QtCallbacks()


def _train_job(project, out_dir, config_kwargs, bridge, control, resume):
    """Runs in the worker thread: build the trainer and run it."""
    from gusa_core import training

    names = {f.name for f in dataclasses.fields(training.TrainConfig)}
    config = training.TrainConfig(**{k: v for k, v in config_kwargs.items() if k in names})
    callbacks = _make_callbacks(training.TrainCallbacks, bridge)
    trainer = training.Trainer(project, out_dir, config, callbacks=callbacks, resume=resume)
    control.attach(trainer)
    summary = dict(trainer.run() or {})
    summary.setdefault("status", "stopped" if trainer.stopped else "finished")
    summary.setdefault("run_dir", str(out_dir))
    return summary

