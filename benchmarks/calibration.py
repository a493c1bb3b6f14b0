"""Does temperature scaling calibrate a run? ECE before and after, on predictions T never saw.

The run's prediction is the ensemble mean p̄ of its fold models (best epoch
of each fold), scaled as the predictor does: ``softmax(log p̄ / T)`` with one
ensemble T. Where T comes from is what this measures; every T is scored on
held-out demo images drawn with another seed, which no fold trained,
selected or calibrated on (the "held-out folds"):

- **best-epoch OOF**: each fold's best model scores its own validation
  images (out-of-fold, the paper's protocol), pooled. Those images also
  chose the best epoch, so the models look better on them than they are
  (selection bias: T comes out too small). The run's calibration default.
- **last-epoch OOF**: the same images scored by each fold's *last*-epoch
  model, which no validation score chose (``calibrate_run(source="last")``).
- **control**: T fitted on half of the held-out images (alternate ones),
  scored on the other half: what an unbiased calibration set gives.

All three are scored on the same half (the control's), the first two on all
held-out images too. Target: ECE after ≤ half of ECE before.

Log-probabilities stand in for logits (softmax is shift-invariant per row).

    python benchmarks/calibration.py --run PROJECT/runs/NAME --project PROJECT
    python benchmarks/calibration.py [--folds 4] [--epochs 12] [--size 128x96]   # trains first
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from gusa_core.engines import cpu_info


def _train(args, folder: Path) -> tuple[Path, Path]:
    from gusa_core.demo import write_demo_project
    from gusa_core.training import TrainConfig, Trainer

    w, h = (int(v) for v in args.size.lower().split("x"))
    project = write_demo_project(folder, seed=args.seed, per_class=args.per_class, unlabelled=0, size=(4 * w, 4 * h))
    cfg = TrainConfig(variant="fa-gusa", folds=args.folds, epochs=args.epochs, input_size=(w, h), lr=args.lr,
                      device="cpu", pretrained="none", random_init_lr=None, lr_schedule=args.lr_schedule,
                      seed=args.seed, workers=0)
    t0 = time.perf_counter()
    Trainer(project, project.runs_dir / "cal", cfg).run()
    print(f"trained {args.folds} folds x {args.epochs} epochs at {w}x{h} in {time.perf_counter() - t0:.0f} s")
    return project.runs_dir / "cal", folder


def _log_probs(predictor, images) -> np.ndarray:
    out = []
    for i in range(0, len(images), 8):
        out += [p.probs for p in predictor.predict(images[i:i + 8])]
    return np.log(np.clip(np.asarray(out, dtype=np.float64), 1e-12, None))


def _oof(folder, project, names):
    from gusa_core.imageio import read_image
    from gusa_core.inference import Predictor

    meta = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    ids = [i for i in meta.get("validation_ids") or [] if project.image(i).label in names]
    images = [read_image(project.image_path(i)) for i in ids]
    y = np.array([names.index(project.image(i).label) for i in ids])
    best = Predictor.from_run(folder, device="cpu", temperature=1.0)  # raw: this script fits its own T
    out = {"best": _log_probs(best, images), "y": y, "predictor": best,
           "best_epoch": (meta.get("metrics") or {}).get("best", {}).get("epoch")}
    from gusa_core.runs import last_model_dir

    last = last_model_dir(folder)
    if (last / "model.json").is_file():
        out["last"] = _log_probs(Predictor.from_run(last, device="cpu", temperature=1.0), images)
        out["last_epoch"] = (json.loads((last / "model.json").read_text(encoding="utf-8")).get("metrics") or {}).get("final", {}).get("epoch")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, default=None)
    p.add_argument("--project", type=Path, default=None)
    p.add_argument("--folds", type=int, default=4)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--per-class", type=int, default=16)
    p.add_argument("--size", default="128x96")
    p.add_argument("--lr", type=float, default=1e-3, help="from random weights (no ImageNet here)")
    p.add_argument("--lr-schedule", default="auto", choices=("auto", "step", "cosine"),
                   help="auto: cosine from random weights (the trainer's default)")
    p.add_argument("--heldout", type=int, default=40, help="held-out demo images per class")
    p.add_argument("--bins", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--keep", type=Path, default=None, help="train into this folder and keep it")
    args = p.parse_args()

    from gusa_core.calibration import apply_temperature, expected_calibration_error, fit_temperature
    from gusa_core.demo import DEMO_CLASSES, generate_tissue
    from gusa_core.device import configure_cpu_threads
    from gusa_core.project import Project
    from gusa_core.runs import model_folders

    configure_cpu_threads(args.threads)
    print(f"CPU: {cpu_info().model}")
    tmp = None
    if args.run is None:
        if args.keep is None:
            tmp = Path(tempfile.mkdtemp(prefix="gusa-cal-"))
        args.run, args.project = _train(args, (args.keep or tmp) / "demo")
    project = Project.open(args.project)

    names = None
    folds = []
    for folder in model_folders(args.run):
        if names is None:
            names = list(json.loads((folder / "model.json").read_text(encoding="utf-8"))["class_names"])
        folds.append(_oof(folder, project, names))
    w, h = folds[0]["predictor"].input_size
    imgs, yh = [], []
    for c, label in enumerate(DEMO_CLASSES):
        if label not in names:
            continue
        for j in range(args.heldout):
            image, _ = generate_tissue(label, size=(4 * w, 4 * h), rng=np.random.default_rng([args.seed, 7919, c, j]))
            imgs.append(image)
            yh.append(names.index(label))
    yh = np.array(yh)
    p_bar = np.mean([np.exp(_log_probs(f["predictor"], imgs)) for f in folds], axis=0)  # ensemble mean, eq. 10
    log_bar = np.log(np.clip(p_bar, 1e-12, None))
    y_oof = np.concatenate([f["y"] for f in folds])
    n_oof = len(y_oof)
    epochs = ", ".join(f"{f['best_epoch']}/{f.get('last_epoch', '-')}" for f in folds)
    print(f"\n{len(folds)} folds (best/last epoch: {epochs}); {n_oof} out-of-fold images; {len(yh)} held-out images "
          f"(ensemble accuracy {np.mean(p_bar.argmax(1) == yh):.3f})")
    half = np.arange(len(yh)) % 2 == 0  # alternate images: both halves hold every class
    temps = {"best-epoch OOF": fit_temperature(np.concatenate([f["best"] for f in folds]), y_oof)}
    if all("last" in f for f in folds):
        temps["last-epoch OOF"] = fit_temperature(np.concatenate([f["last"] for f in folds]), y_oof)
    temps["control (fresh half)"] = fit_temperature(log_bar[half], yh[half])
    oof_acc = {"best-epoch OOF": np.mean(np.concatenate([f["best"].argmax(1) for f in folds]) == y_oof)}
    if "last-epoch OOF" in temps:
        oof_acc["last-epoch OOF"] = np.mean(np.concatenate([f["last"].argmax(1) for f in folds]) == y_oof)
    for scope, sel in (("the other half", ~half), ("all held-out images", np.ones_like(half))):
        before = apply_temperature(log_bar[sel], 1.0)
        eb = expected_calibration_error(before, yh[sel], n_bins=args.bins)
        print(f"\nscored on {scope} ({sel.sum()} images), ensemble softmax(log p̄ / T), {args.bins} bins")
        print(f"   {'T from':<22} {'T':>6} {'fit acc':>8} {'ECE':>7} {'ratio':>6} {'Brier':>7} {'NLL':>7}")
        print(_row("none (T = 1)", 1.0, None, before, yh[sel], eb, args.bins))
        for name, t in temps.items():
            if scope != "the other half" and name.startswith("control"):
                continue
            print(_row(name, t, oof_acc.get(name), apply_temperature(log_bar[sel], t), yh[sel], eb, args.bins))
    print("   target: ratio (ECE after / before) <= 0.50")
    if tmp is not None:
        shutil.rmtree(tmp, ignore_errors=True)


def _row(name, t, fit_acc, probs, y, ece_before, n_bins) -> str:
    from gusa_core.calibration import brier_score, expected_calibration_error, nll

    e = expected_calibration_error(probs, y, n_bins=n_bins)
    acc = "" if fit_acc is None else f"{fit_acc:.3f}"
    return (f"   {name:<22} {t:6.3f} {acc:>8} {e:7.4f} {e / max(ece_before, 1e-12):6.2f} "
            f"{brier_score(probs, y):7.4f} {nll(probs, y):7.4f}")


if __name__ == "__main__":
    main()
