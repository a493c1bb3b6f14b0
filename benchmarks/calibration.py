"""Does temperature scaling calibrate a run? ECE before and after, on predictions T never saw.

Each fold model of a k-fold run scores its own validation images (out-of-fold
predictions, the paper's protocol) and fits its own T on them, as the trainer
would at the end of a run. Everything is then scored on held-out demo images
drawn with another seed, which no fold trained or calibrated on: (A) each
fold with and without its T, (B) the ensemble (mean of the folds'
temperature-scaled softmax). (C) shows what happens when a T is carried from
one fold model to another (fit on the other folds' out-of-fold predictions).
(D) is a control: T fitted on half of the held-out images, scored on the
other half, i.e. on a calibration set the checkpoint was not selected on.
Target: ECE after ≤ half of ECE before.

Log-probabilities stand in for logits (softmax is shift-invariant per row).

    python benchmarks/calibration.py --run PROJECT/runs/NAME --project PROJECT
    python benchmarks/calibration.py [--folds 2] [--epochs 10] [--size 128x96]   # trains first
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _train(args, folder: Path) -> tuple[Path, Path]:
    from gusa_core.demo import write_demo_project
    from gusa_core.training import TrainConfig, Trainer

    w, h = (int(v) for v in args.size.lower().split("x"))
    project = write_demo_project(folder, seed=args.seed, per_class=args.per_class, unlabelled=0, size=(4 * w, 4 * h))
    cfg = TrainConfig(variant="fa-gusa", folds=args.folds, epochs=args.epochs, input_size=(w, h), lr=args.lr,
                      device="cpu", pretrained="none", seed=args.seed, workers=0)
    t0 = time.perf_counter()
    Trainer(project, project.runs_dir / "cal", cfg).run()
    print(f"trained {args.folds} folds x {args.epochs} epochs at {w}x{h} in {time.perf_counter() - t0:.0f} s")
    return project.runs_dir / "cal", folder


def _log_probs(predictor, images) -> np.ndarray:
    out = []
    for i in range(0, len(images), 8):
        out += [p.probs for p in predictor.predict(images[i:i + 8])]
    return np.log(np.clip(np.asarray(out, dtype=np.float64), 1e-12, None))


def _line(name, probs, y, n_bins):
    from gusa_core.calibration import brier_score, expected_calibration_error, nll

    return (f"   {name:<28} ECE {expected_calibration_error(probs, y, n_bins=n_bins):.4f}  "
            f"Brier {brier_score(probs, y):.4f}  NLL {nll(probs, y):.4f}  acc {np.mean(probs.argmax(1) == y):.3f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, default=None)
    p.add_argument("--project", type=Path, default=None)
    p.add_argument("--folds", type=int, default=2)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--per-class", type=int, default=12)
    p.add_argument("--size", default="128x96")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--heldout", type=int, default=32, help="held-out demo images per class")
    p.add_argument("--bins", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    from gusa_core.calibration import apply_temperature, expected_calibration_error, fit_temperature
    from gusa_core.demo import DEMO_CLASSES, generate_tissue
    from gusa_core.imageio import read_image
    from gusa_core.inference import Predictor
    from gusa_core.runs import model_folders
    from gusa_core.project import Project

    print(f"CPU: {_cpu_model()}")
    tmp = None
    if args.run is None:
        tmp = Path(tempfile.mkdtemp(prefix="gusa-cal-"))
        args.run, args.project = _train(args, tmp / "demo")
    project = Project.open(args.project)

    folds = []  # (fold folder, predictor, log-probs, labels)
    for folder in model_folders(args.run):
        meta = json.loads((folder / "model.json").read_text(encoding="utf-8"))
        pred = Predictor.from_run(folder, device="cpu", temperature=1.0)  # raw: this script fits its own T
        names = list(pred.class_names)
        ids = [i for i in meta.get("validation_ids") or [] if project.image(i).label in names]
        images = [read_image(project.image_path(i)) for i in ids]
        y = np.array([names.index(project.image(i).label) for i in ids])
        folds.append((folder, pred, _log_probs(pred, images), y))
    if len(folds) < 2:
        raise SystemExit("cross-fitting needs a run with at least 2 folds")

    w, h = folds[0][1].input_size
    imgs, yh = [], []
    for c, label in enumerate(DEMO_CLASSES):
        if label not in names:
            continue
        for j in range(args.heldout):
            image, _ = generate_tissue(label, size=(4 * w, 4 * h), rng=np.random.default_rng([args.seed, 7919, c, j]))
            imgs.append(image)
            yh.append(names.index(label))
    yh = np.array(yh)
    print(f"\nA. per fold: T fitted on the fold's own out-of-fold validation predictions, scored on {len(yh)} held-out images")
    temps, zs = [], []
    for folder, pred, z, y in folds:
        t = fit_temperature(z, y)
        zh = _log_probs(pred, imgs)
        temps.append(t)
        zs.append(zh)
        print(f"   {folder.name}: T = {t:.3f} (from {len(y)} validation images)")
        print(_line("  before (T = 1)", apply_temperature(zh, 1.0), yh, args.bins))
        print(_line("  after", apply_temperature(zh, t), yh, args.bins))
    ens_before = np.mean([apply_temperature(z, 1.0) for z in zs], axis=0)
    ens_after = np.mean([apply_temperature(z, t) for z, t in zip(zs, temps)], axis=0)
    print("\nB. ensemble (mean of the folds' softmax, eq. 10), each fold with its own T, on the held-out images")
    print(_line("before (T = 1)", ens_before, yh, args.bins))
    print(_line("after (per-fold T)", ens_after, yh, args.bins))
    eb = expected_calibration_error(ens_before, yh, n_bins=args.bins)
    ea = expected_calibration_error(ens_after, yh, n_bins=args.bins)
    print(f"   ECE ratio after/before: {ea / max(eb, 1e-12):.2f} (target <= 0.50)")

    half = np.arange(len(yh)) % 2 == 0  # alternate images: both halves hold every class
    print(f"\nD. control without selection bias: per-fold T fitted on {half.sum()} fresh images, ensemble scored on the other {(~half).sum()}")
    t_fresh = [fit_temperature(z[half], yh[half]) for z in zs]
    print(f"   T per fold: {', '.join(f'{t:.3f}' for t in t_fresh)}")
    for (folder, *_), z, t in zip(folds, zs, t_fresh):
        b = expected_calibration_error(apply_temperature(z[~half], 1.0), yh[~half], n_bins=args.bins)
        a = expected_calibration_error(apply_temperature(z[~half], t), yh[~half], n_bins=args.bins)
        print(f"   {folder.name} alone: ECE {b:.4f} -> {a:.4f}")
    eb2 = np.mean([apply_temperature(z[~half], 1.0) for z in zs], axis=0)
    ea2 = np.mean([apply_temperature(z[~half], t) for z, t in zip(zs, t_fresh)], axis=0)
    print(_line("before (T = 1)", eb2, yh[~half], args.bins))
    print(_line("after", ea2, yh[~half], args.bins))
    print(f"   ECE ratio after/before: {expected_calibration_error(ea2, yh[~half], n_bins=args.bins) / max(expected_calibration_error(eb2, yh[~half], n_bins=args.bins), 1e-12):.2f}")
    ens_log = np.log(np.clip(np.mean([apply_temperature(z, 1.0) for z in zs], axis=0), 1e-12, None))
    t_ens = fit_temperature(ens_log[half], yh[half])
    ea3 = apply_temperature(ens_log[~half], t_ens)
    print(_line(f"after (one T = {t_ens:.3f} on log p̄)", ea3, yh[~half], args.bins))
    print(f"   ECE ratio after/before: {expected_calibration_error(ea3, yh[~half], n_bins=args.bins) / max(expected_calibration_error(eb2, yh[~half], n_bins=args.bins), 1e-12):.2f}")

    print("\nC. transferring T between fold models (fit on the other folds' out-of-fold predictions)")
    pb, pa, ys = [], [], []
    for k, (folder, _, z, y) in enumerate(folds):
        t = fit_temperature(np.concatenate([f[2] for j, f in enumerate(folds) if j != k]),
                            np.concatenate([f[3] for j, f in enumerate(folds) if j != k]))
        pb.append(apply_temperature(z, 1.0))
        pa.append(apply_temperature(z, t))
        ys.append(y)
    y = np.concatenate(ys)
    print(_line("before (T = 1)", np.concatenate(pb), y, args.bins))
    print(_line("after (other folds' T)", np.concatenate(pa), y, args.bins))
    if tmp is not None:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
