"""Training settings and the callbacks that receive training progress (torch-free: the app reads them on its GUI thread)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .. import DEFAULT_INPUT_SIZE

__all__ = ["TrainConfig", "TrainCallbacks", "Silent"]


@dataclass
class TrainConfig:
    """Training settings; the defaults are the paper's protocol.

    Extra fields beyond the contract: ``channels_last`` and
    ``memory_efficient`` (gradient checkpointing of the dense layers) take
    ``None`` for the device's default, chosen by ``benchmarks/bench_train.py``.
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
    precision: str = "auto"
    field_mpp: float = 0.42
    field_size: tuple[int, int] = (2048, 1536)
    field_stride: float = 0.5
    field_min_cover: float = 0.5
    fields_per_class: int | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_size"] = [int(v) for v in self.input_size]
        d["field_size"] = [int(v) for v in self.field_size]
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


class Silent(TrainCallbacks):
    """Callbacks that ignore everything (ranks other than the main one)."""
