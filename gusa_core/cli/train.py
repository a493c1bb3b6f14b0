"""``gusa train``: train a model on a project with a progress bar; Ctrl+C stops cleanly."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

from tqdm import tqdm

from .. import DEFAULT_INPUT_SIZE
from ..models_registry import DEFAULT_VARIANT, VARIANT_NAMES
from ..errors import GusaError
from ..runs import read_run_meta, run_json_path
from ..training import TrainCallbacks, TrainConfig, Trainer
from ..training.config import CLASS_WEIGHTS
from ..training.precision import TRAIN_PRECISIONS
from .options import parse_size


def add_parser(sub) -> None:
    s = sub.add_parser("train", help="train a model (k-fold by default) on a project")
    s.add_argument("project", type=Path)
    s.add_argument("--out", type=Path, required=True, help="run folder to write")
    s.add_argument("--variant", choices=VARIANT_NAMES, default=DEFAULT_VARIANT)
    s.add_argument("--folds", type=int, default=4, help="stratified folds (1 = fixed validation split)")
    s.add_argument("--val-fraction", type=float, default=0.25, help="validation share when --folds 1")
    s.add_argument("--epochs", type=int, default=30)
    s.add_argument("--batch-size", type=int, default=5)
    s.add_argument("--lr", type=float, default=5e-5)
    s.add_argument("--random-init-lr", type=_rate_or_none, default=1e-3,
                   help="learning rate when the trunk starts from random weights (no ImageNet file); 'none': --lr")
    s.add_argument("--lr-schedule", choices=("auto", "step", "cosine"), default="auto",
                   help="step: the paper's x0.9 every 10 epochs; cosine: down to 0 over the epochs; "
                        "auto: cosine from random weights, else step")
    s.add_argument("--weight-decay", type=float, default=1e-5)
    s.add_argument("--dice-weight", type=float, default=1.0, help="lambda of eq. 8")
    s.add_argument("--input-size", type=parse_size, default=DEFAULT_INPUT_SIZE, metavar="WxH")
    s.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    s.add_argument("--pretrained", default="auto", help="auto (TORCH_HOME cache), none, or a weights FILE")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--workers", type=int, default=None, help="data loader workers")
    s.add_argument("--precision", choices=TRAIN_PRECISIONS, default="auto",
                   help="forward-pass autocast: auto (bf16 on CPUs with AVX-512 BF16/AMX, fp16 on CUDA, else fp32), "
                        "fp32 or bf16 (on CUDA: bf16 where the GPU has it, Ampere and later); weights stay fp32")
    s.add_argument("--no-augment", action="store_true")
    s.add_argument("--suggested-masks", choices=("include", "weight", "exclude"), default="include",
                   help="masks accepted from a model's suggestion unedited: train on them, weigh their dice term "
                        "(--suggested-weight), or leave them out")
    s.add_argument("--suggested-weight", type=float, default=0.5, help="dice weight of accepted suggestions with 'weight'")
    s.add_argument("--class-weights", choices=CLASS_WEIGHTS, default="none",
                   help="none: plain cross-entropy (the paper); balanced: weigh each class by n / (k * n_class) over "
                        "the fold's training images, for a cohort where one class (often Normal) outnumbers the rest")
    s.add_argument("--resume", action="store_true", help="continue a stopped or crashed run in --out")
    g = s.add_argument_group("slides", "fields sampled from the painted regions of the project's slides")
    g.add_argument("--field-mpp", type=float, default=0.42, help="microns per pixel of a field (default: BACH's 0.42)")
    g.add_argument("--field-size", type=parse_size, default=(2048, 1536), metavar="WxH",
                   help="field size in pixels at --field-mpp (default: BACH's 2048x1536), resized to --input-size")
    g.add_argument("--field-stride", type=float, default=0.5, help="grid step as a share of the field")
    g.add_argument("--field-min-cover", type=float, default=0.5, help="least share of a field painted with its class")
    g.add_argument("--fields-per-class", type=int, default=None, help="at most this many fields per class and slide")
    s.set_defaults(func=run)


class ProgressCallbacks(TrainCallbacks):
    """Terminal progress for ``gusa train``: a tqdm bar per epoch and a line per epoch."""

    def __init__(self, *, enabled: bool = True, stream=None):
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.bar = None
        self.folds = 1

    def write(self, text: str) -> None:
        if not self.enabled:
            return
        tqdm.write(text, file=self.stream)

    def on_run_start(self, info: dict) -> None:
        self.folds = info["folds"]
        self.write(
            f"training {info['variant']} on {info['device']}"
            + (f" x{info['world_size']} processes" if info["world_size"] > 1 else "")
            + f": {info['n_labelled']} labelled images ({info['n_masked']} with RoI masks), "
            f"{info['folds']} fold(s), {info['epochs']} epochs, {info.get('precision', 'fp32')} -> {info['run_dir']}"
        )

    def on_log(self, message: str) -> None:
        self.write(message)

    def on_batch_end(self, rec: dict) -> None:
        if not self.enabled:
            return
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


_RESUME_KEPT = ("variant", "folds", "val_fraction", "epochs", "batch_size", "lr", "random_init_lr", "lr_schedule",
                "weight_decay", "dice_weight",
                "input_size", "pretrained", "seed", "augment", "field_mpp", "field_size", "field_stride",
                "field_min_cover", "fields_per_class")
_SIZES = ("input_size", "field_size")


def _ignored_options(given: TrainConfig, kept: TrainConfig) -> list[str]:
    """The options given on the command line (not left at their defaults) that a resumed run overrides."""
    default = TrainConfig()
    out = []
    for key in _RESUME_KEPT:
        g, k, d = getattr(given, key), getattr(kept, key), getattr(default, key)
        if key in _SIZES:
            g, k, d = (tuple(v) for v in (g, k, d))
        if g != d and g != k:
            show = (lambda v: "x".join(map(str, v))) if key in _SIZES else str
            out.append(f"{key.replace('_', '-')} {show(k)} (not {show(g)})")
    return out


def _rate_or_none(text: str) -> float | None:
    return None if text.strip().lower() == "none" else float(text)


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def run(args) -> int:
    """``gusa train``: train with a progress bar and print a summary.

    Ctrl+C requests a stop: the current batch ends, the last completed epoch
    stays saved, and the command to resume is printed.
    """
    config = TrainConfig(
        variant=args.variant,
        folds=args.folds,
        val_fraction=args.val_fraction,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        random_init_lr=args.random_init_lr,
        lr_schedule=args.lr_schedule,
        weight_decay=args.weight_decay,
        dice_weight=args.dice_weight,
        input_size=tuple(args.input_size),
        device=args.device,
        pretrained=args.pretrained,
        seed=args.seed,
        augment=not args.no_augment,
        workers=args.workers,
        suggested_masks=args.suggested_masks,
        class_weights=args.class_weights,
        suggested_weight=args.suggested_weight,
        precision=args.precision,
        field_mpp=args.field_mpp,
        field_size=tuple(args.field_size),
        field_stride=args.field_stride,
        field_min_cover=args.field_min_cover,
        fields_per_class=args.fields_per_class,
    )
    if args.out.exists() and not args.out.is_dir():
        raise GusaError(f"--out {args.out} is a file, not a folder: choose a folder for the run")
    stored_meta = read_run_meta(args.out) if args.resume else None
    if stored_meta is not None:
        # A resumed run keeps its own settings (the command line's defaults would not fit it).
        source = run_json_path(args.out)
        stored = stored_meta.get("config", {})
        if not isinstance(stored, dict):
            raise GusaError(f"{source}: 'config' is not an object (restore the file or start a new run)")
        known = {k: v for k, v in stored.items() if k in TrainConfig.__dataclass_fields__}
        known.update(device=args.device, workers=args.workers)
        resumed = TrainConfig(**known).validate(source)
        ignored = _ignored_options(config, resumed)
        if ignored:
            print(f"gusa: --resume keeps the run's own settings: {'; '.join(ignored)} "
                  "(train into a new --out to change them)", file=sys.stderr)
        config = resumed
    else:
        config.validate()
    # torch comes with the device helpers: imported when the verb runs, so ``gusa --help`` stays instant.
    from ..device import configure_cpu_threads

    rank = int(os.environ.get("RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    if args.device in ("cpu", "auto"):
        # One share of the CPUs per local process: oversubscribed threads slow training many times over.
        configure_cpu_threads(max(1, _cpu_count() // local_world) if local_world > 1 else None)
    callbacks = ProgressCallbacks(enabled=rank == 0)
    # Trainer.run holds the run folder's lock (no project lock: the app may go on painting).
    return _train(args, config, callbacks, rank)


def _train(args, config: TrainConfig, callbacks: ProgressCallbacks, rank: int) -> int:
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
