"""Training settings and the callbacks that receive training progress (torch-free: the app reads them on its GUI thread)."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass

from .. import DEFAULT_INPUT_SIZE
from ..checkpoint import MAX_INPUT_SIDE
from ..errors import GusaError
from ..models_registry import VARIANT_NAMES

__all__ = ["TrainConfig", "TrainCallbacks", "Silent", "effective_lr", "effective_schedule", "LR_SCHEDULES", "CLASS_WEIGHTS"]

#: Learning-rate schedules (``TrainConfig.lr_schedule``).
LR_SCHEDULES = ("auto", "step", "cosine")
#: Values of :attr:`TrainConfig.class_weights`.
CLASS_WEIGHTS = ("none", "balanced")


@dataclass
class TrainConfig:
    """Training settings; the defaults are the paper's protocol.

    Extra fields beyond the contract: ``channels_last`` and
    ``memory_efficient`` (gradient checkpointing of the dense layers) take
    ``None`` for the device's default, chosen by ``benchmarks/bench_train.py``.

    ``suggested_masks`` (``"include"``, ``"weight"``, ``"exclude"``) says what
    training does with masks accepted from a model's suggestion unedited;
    ``suggested_weight`` is their dice weight with ``"weight"`` (see
    :class:`gusa_core.data.ProjectDataset`).

    ``class_weights``: ``"none"`` (the paper's plain cross-entropy) or
    ``"balanced"``: each class's cross-entropy term weighted by
    ``n / (k · n_c)`` over the fold's training images (scikit-learn's
    ``class_weight="balanced"``), so a cohort of mostly normal fields does not
    teach the network that most fields are normal.

    ``precise_bn`` re-estimates the BatchNorm running statistics over the
    training images (not augmented) after every epoch, before validation;
    None: only when the trunk starts from random weights. Such a trunk, trained
    at a high rate for a few batches an epoch, outruns the running averages
    (momentum 0.1): the network in evaluation mode then answers from stale
    statistics, its validation accuracy swings from epoch to epoch, and on the
    demo a run at 0.8 validation accuracy called half the invasive fields of a
    slide normal; with the statistics re-estimated, the same weights called
    all of them invasive. It costs one forward pass over the training images.

    ``random_init_lr`` is the learning rate when the trunk starts from random
    weights (``pretrained="none"``, or ``"auto"`` without the ImageNet file):
    the paper's ``lr`` of 5e-5 is a fine-tuning rate, under which a random
    trunk stays at chance on the demo for tens of epochs, while 1e-3 learns it
    in ten (``benchmarks/demo_learnability.py``). None uses ``lr`` in every case.

    ``lr_schedule`` is ``"step"`` (the paper's: times ``lr_decay`` every
    ``lr_step`` epochs), ``"cosine"`` (from the starting rate down to 0 over
    ``epochs``) or ``"auto"``: cosine for a random trunk, step otherwise.
    From random weights at 1e-3 the step schedule is still at a high rate
    when a short run ends, and the validation accuracy swings from epoch to
    epoch (1.00 then 0.59 at the last epoch, ``benchmarks/roi_quality.py``);
    annealed to 0, the last five epochs of both folds stayed at 1.00.

    ``precision`` (``auto``, ``fp32`` or ``bf16``) is what the forward pass is
    autocast to; the weights stay fp32 (see :mod:`gusa_core.training.precision`).

    Slides train through fields of ``field_size`` pixels at ``field_mpp`` µm/px (the BACH
    field by default) laid every ``field_stride`` of a field over their painted regions; a
    field needs ``field_min_cover`` of it painted with one class (at most
    ``fields_per_class`` per class and slide, None: all).
    """

    variant: str = "fa-gusa"
    folds: int = 4
    val_fraction: float = 0.25
    epochs: int = 30
    batch_size: int = 5
    lr: float = 5e-5
    random_init_lr: float | None = 1e-3
    lr_decay: float = 0.9
    lr_step: int = 10
    lr_schedule: str = "auto"
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
    precise_bn: bool | None = None
    suggested_masks: str = "include"
    suggested_weight: float = 0.5
    class_weights: str = "none"
    precision: str = "auto"
    field_mpp: float = 0.42
    field_size: tuple[int, int] = (2048, 1536)
    field_stride: float = 0.5
    field_min_cover: float = 0.5
    fields_per_class: int | None = None

    def validate(self, source: str | os.PathLike | None = None) -> "TrainConfig":
        """Refuse settings that cannot train (NaN learning rate, absurd input size, ...).

        Parameters
        ----------
        source : path-like, optional
            The file the settings came from (a ``run.json`` being resumed),
            named in the message; without it the command-line options are named.

        Returns
        -------
        TrainConfig
            ``self``, with ``input_size`` and ``field_size`` as tuples.

        Raises
        ------
        GusaError
            One message listing every setting out of range.
        """
        problems = [p for p in _problems(self) if p]
        if problems:
            where = f"{os.fspath(source)}: " if source is not None else ""
            fix = "restore the file or start a new run" if source is not None else "fix the option"
            raise GusaError(f"{where}invalid training settings: {'; '.join(problems)} ({fix})")
        self.input_size = tuple(int(v) for v in self.input_size)
        self.field_size = tuple(int(v) for v in self.field_size)
        return self

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_size"] = [int(v) for v in self.input_size]
        d["field_size"] = [int(v) for v in self.field_size]
        return d


def effective_lr(config: TrainConfig, pretrained_source: str) -> float:
    """The learning rate a model starts at: ``random_init_lr`` for a random trunk (if set), else ``lr``.

    Parameters
    ----------
    config : TrainConfig
    pretrained_source : str
        The model's ``pretrained_source`` (``"random"``, ``"imagenet:..."``, ``"file:..."``).
    """
    if pretrained_source == "random" and config.random_init_lr is not None:
        return float(config.random_init_lr)
    return float(config.lr)


def effective_schedule(config: TrainConfig, pretrained_source: str) -> str:
    """``"step"`` or ``"cosine"``: ``lr_schedule``, with ``"auto"`` resolved (cosine for a random trunk)."""
    if config.lr_schedule != "auto":
        return config.lr_schedule
    return "cosine" if pretrained_source == "random" else "step"


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _problems(c: TrainConfig):
    """Yield a short text for each setting out of range (``None`` for those in range)."""
    yield None if c.variant in VARIANT_NAMES else f"unknown variant {c.variant!r:.40} (known: {', '.join(VARIANT_NAMES)})"
    yield None if _int(c.folds) and 1 <= c.folds <= 100 else f"folds must be 1 to 100 (--folds), got {c.folds!r:.40}"
    yield None if _num(c.val_fraction) and 0 < c.val_fraction < 1 else f"val_fraction must be between 0 and 1 (--val-fraction), got {c.val_fraction!r:.40}"
    yield None if _int(c.epochs) and 1 <= c.epochs <= 100_000 else f"epochs must be 1 to 100000 (--epochs), got {c.epochs!r:.40}"
    yield None if _int(c.batch_size) and 1 <= c.batch_size <= 4096 else f"batch_size must be 1 to 4096 (--batch-size), got {c.batch_size!r:.40}"
    yield None if _num(c.lr) and 0 < c.lr <= 10 else f"lr must be a finite number above 0 and at most 10 (--lr), got {c.lr!r:.40}"
    yield None if c.random_init_lr is None or (_num(c.random_init_lr) and 0 < c.random_init_lr <= 10) else f"random_init_lr must be None or a finite number above 0 and at most 10, got {c.random_init_lr!r:.40}"
    yield None if c.class_weights in CLASS_WEIGHTS else f"class_weights must be one of {', '.join(CLASS_WEIGHTS)} (--class-weights), got {c.class_weights!r:.40}"
    yield None if c.lr_schedule in LR_SCHEDULES else f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {c.lr_schedule!r:.40}"
    yield None if _num(c.lr_decay) and 0 < c.lr_decay <= 1 else f"lr_decay must be in (0, 1], got {c.lr_decay!r:.40}"
    yield None if _int(c.lr_step) and c.lr_step >= 1 else f"lr_step must be a positive count, got {c.lr_step!r:.40}"
    yield None if _num(c.weight_decay) and 0 <= c.weight_decay <= 1 else f"weight_decay must be a finite number from 0 to 1 (--weight-decay), got {c.weight_decay!r:.40}"
    yield None if _num(c.dice_weight) and 0 <= c.dice_weight <= 1000 else f"dice_weight must be a finite number from 0 to 1000 (--dice-weight), got {c.dice_weight!r:.40}"
    size = c.input_size
    ok = isinstance(size, (list, tuple)) and len(size) == 2 and all(_int(v) and 16 <= v <= MAX_INPUT_SIDE and v % 16 == 0 for v in size)
    yield None if ok else f"input_size must be two sizes divisible by 16, from 16 to {MAX_INPUT_SIDE} (--input-size WxH), got {size!r:.40}"
    yield None if _int(c.seed) else f"seed must be an integer (--seed), got {c.seed!r:.40}"
    yield None if c.workers is None or (_int(c.workers) and 0 <= c.workers <= 256) else f"workers must be 0 to 256 (--workers), got {c.workers!r:.40}"
    yield None if _num(c.field_mpp) and 0 < c.field_mpp <= 1000 else f"field_mpp must be a finite number of µm/px above 0 (--field-mpp), got {c.field_mpp!r:.40}"
    fs = c.field_size
    ok = isinstance(fs, (list, tuple)) and len(fs) == 2 and all(_int(v) and 16 <= v <= 32768 for v in fs)
    yield None if ok else f"field_size must be two sizes from 16 to 32768 (--field-size WxH), got {fs!r:.40}"
    yield None if _num(c.field_stride) and 0 < c.field_stride <= 10 else f"field_stride must be above 0 and at most 10 (--field-stride), got {c.field_stride!r:.40}"
    yield None if _num(c.field_min_cover) and 0 <= c.field_min_cover <= 1 else f"field_min_cover must be from 0 to 1 (--field-min-cover), got {c.field_min_cover!r:.40}"
    yield None if c.fields_per_class is None or (_int(c.fields_per_class) and c.fields_per_class >= 1) else f"fields_per_class must be a positive count (--fields-per-class), got {c.fields_per_class!r:.40}"
    for key in ("device", "pretrained"):
        yield None if isinstance(getattr(c, key), str) else f"{key} must be text, got {getattr(c, key)!r:.40}"
    for key in ("augment", "color_normalize"):
        yield None if isinstance(getattr(c, key), bool) else f"{key} must be true or false, got {getattr(c, key)!r:.40}"
    for key in ("channels_last", "memory_efficient", "precise_bn"):
        yield None if getattr(c, key) is None or isinstance(getattr(c, key), bool) else f"{key} must be true, false or null"


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


class Silent(TrainCallbacks):
    """Callbacks that ignore everything (ranks other than the main one)."""
