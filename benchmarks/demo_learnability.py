"""Can a network learn the built-in demo project? Validation accuracy against chance (0.25).

Writes a demo project, trains ``fa-gusa`` from random weights at a small input
size on the CPU for a few minutes (one stratified validation split) and
prints the validation accuracy, AUC and RoI mIoU of each epoch next to chance.
Random weights need a larger learning rate than the paper's fine-tuning rate
(5e-5 from ImageNet weights), hence ``--lr 1e-3`` by default.

    python benchmarks/demo_learnability.py [--per-class 16] [--epochs 10] [--size 128x96] [--lr 1e-3]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--per-class", type=int, default=16)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--size", default="128x96", help="network input WxH (the demo images are written at 4x this)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--variant", default="fa-gusa")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep", type=Path, default=None, help="write the project here and keep it")
    args = p.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))

    import torch

    from gusa_core.demo import write_demo_project
    from gusa_core.device import configure_cpu_threads
    from gusa_core.training import TrainCallbacks, TrainConfig, Trainer

    configure_cpu_threads(args.threads)
    folder = args.keep or Path(tempfile.mkdtemp(prefix="gusa-learn-")) / "demo"
    t0 = time.perf_counter()
    project = write_demo_project(folder, seed=args.seed, per_class=args.per_class, unlabelled=0, size=(4 * w, 4 * h))
    print(f"demo project: {len(project.images)} images at {4 * w}x{4 * h} in {time.perf_counter() - t0:.1f} s -> {folder}")

    class Print(TrainCallbacks):
        def on_run_start(self, info):
            print(f"train {info['n_train'][0]} / validate {info['n_val'][0]} images, {info['n_masked']} with masks; {torch.get_num_threads()} threads")

        def on_log(self, message):
            print(message)

        def on_epoch_end(self, r):
            f = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
            print(
                f"epoch {r['epoch']:2d}: train loss {r['train_loss']:.3f} acc {r['train_acc']:.3f} | "
                f"val loss {r['val_loss']:.3f} acc {r['val_acc']:.3f} (chance 0.25) AUC {f(r['val_auc'])} "
                f"mIoU {f(r['val_miou'])} | {r['images_per_s']:.1f} img/s",
                flush=True,
            )

    cfg = TrainConfig(
        variant=args.variant, folds=1, val_fraction=0.25, epochs=args.epochs, input_size=(w, h), lr=args.lr,
        device="cpu", pretrained="none", seed=args.seed, workers=0,
    )
    t0 = time.perf_counter()
    summary = Trainer(project, project.runs_dir / "learn", cfg, callbacks=Print()).run()
    fold = summary["folds"][0]
    print(
        f"\nbest validation accuracy {fold['val_acc']:.3f} at epoch {fold['best_epoch']} vs chance 0.25 "
        f"({fold['val_acc'] / 0.25:.1f}x chance); AUC {fold['val_auc']}; mIoU {fold['val_miou']}; "
        f"{time.perf_counter() - t0:.0f} s of training"
    )
    if args.keep is None:
        shutil.rmtree(folder.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
