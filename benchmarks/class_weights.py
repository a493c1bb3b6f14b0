"""Does ``class_weights="balanced"`` help on a cohort of mostly normal fields?

On the demo project, each seed draws an uneven pool (by default Normal 40,
Benign 8, InSitu 8, Invasive 8, half the lesions a small focus in normal
tissue, as ``active_learning.py`` draws it) and a balanced held-out test set,
trains ``fa-gusa`` on the whole pool twice, with plain cross-entropy and with
balanced class weights (same seed, same split), and prints accuracy,
balanced accuracy and per-class recall on the test set for both.

    python benchmarks/class_weights.py --seeds 0 1 2 [--threads 1]
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


def _counts(text: str) -> dict[str, int]:
    return {k.strip(): int(v) for k, _, v in (part.partition("=") for part in text.split(","))}


def run_seed(args, seed: int, root: Path) -> dict:
    from gusa_core.demo import write_demo_project
    from gusa_core.evaluation import evaluate_run
    from gusa_core.training import TrainConfig, Trainer

    w, h = (int(v) for v in args.size.split("x"))
    image_size = (2 * w, 2 * h)
    pool = write_demo_project(root / "pool", seed=seed, per_class=args.class_counts, unlabelled=0, size=image_size,
                              small_focus=args.small_focus)
    test = write_demo_project(root / "test", seed=10_000 + seed, per_class=args.test_per_class, unlabelled=0,
                              size=image_size, small_focus=args.small_focus)
    out = {"seed": seed}
    for setting in ("none", "balanced"):
        t0 = time.perf_counter()
        cfg = TrainConfig(variant="fa-gusa", folds=1, epochs=args.epochs, batch_size=args.batch_size, input_size=(w, h),
                          lr=args.lr, random_init_lr=None, device=args.device, pretrained="none", seed=seed, workers=0,
                          dice_weight=3.0, class_weights=setting)
        run = pool.runs_dir / setting
        Trainer(pool, run, cfg).run()
        r = evaluate_run(run, test, device=args.device, backend="torch")
        cm = np.array(r["confusion"], dtype=float)
        recall = (np.diag(cm) / np.maximum(cm.sum(1), 1)).tolist()
        out[setting] = {"accuracy": r["accuracy"], "balanced_accuracy": float(np.mean(recall)), "recall": recall,
                        "classes": r.get("class_names"), "seconds": round(time.perf_counter() - t0, 1)}
        print(f"[seed {seed}] {setting:<8} accuracy {r['accuracy']:.3f}  recall "
              + " ".join(f"{v:.2f}" for v in recall) + f"  ({out[setting]['seconds']:.0f} s)", flush=True)
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--size", default="128x96", help="network input WxH (demo images twice that)")
    p.add_argument("--class-counts", type=_counts, default=_counts("Normal=40,Benign=8,InSitu=8,Invasive=8"))
    p.add_argument("--test-per-class", type=int, default=16)
    p.add_argument("--small-focus", type=float, default=0.5)
    p.add_argument("--epochs", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    from gusa_core.device import configure_cpu_threads

    configure_cpu_threads(args.threads)
    results = []
    for seed in args.seeds:
        root = Path(tempfile.mkdtemp(prefix="gusa-cw-"))
        try:
            results.append(run_seed(args, seed, root))
        finally:
            shutil.rmtree(root, ignore_errors=True)
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
    print(f"\nCPU: {cpu_info().model}  |  pool {args.class_counts}, small focus {args.small_focus:.0%} of lesions, "
          f"test {4 * args.test_per_class} balanced, input {args.size}, {args.epochs} epochs, seeds {args.seeds}")
    for key in ("accuracy", "balanced_accuracy"):
        a = np.array([r["none"][key] for r in results])
        b = np.array([r["balanced"][key] for r in results])
        print(f"  {key:<18} none {a.mean():.3f}  balanced {b.mean():.3f}  (difference {np.mean(b - a):+.3f}, "
              f"better in {int(np.sum(b > a))}, worse in {int(np.sum(b < a))} of {len(a)} seeds)")
    rec = {k: np.mean([r[k]["recall"] for r in results], axis=0) for k in ("none", "balanced")}
    print("  recall by class      " + "  ".join(f"{c:>8}" for c in (results[0]["none"]["classes"] or [])))
    for k, v in rec.items():
        print(f"  {k:<20} " + "  ".join(f"{x:8.2f}" for x in v))


if __name__ == "__main__":
    main()
