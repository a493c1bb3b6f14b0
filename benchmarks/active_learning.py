"""Does the annotate-next ranking need fewer annotations than random order? And are suggestions and calibration good?

On the demo project (synthetic H&E with ground-truth labels and masks), each
seed draws a pool and a held-out test set. Starting from ``--start`` labelled
and painted images, each round trains a short run on the annotated images,
scores it on the test set (accuracy, mIoU of ỹ at τ = 0.5) and then
"annotates" ``--step`` more pool images, taking their labels and masks from
the ground truth as if painted, chosen

- (a) in random order, or
- (b) by the annotate-next queue of the round's run
  (:func:`gusa_core.assist.annotation_queue` over the unlabelled pool).

A run on the whole pool gives the full-data accuracy. Printed:

1. accuracy and mIoU against the number of annotated images, per strategy;
2. the annotations each strategy needs to reach the full-data accuracy, and
   their ratio (target: ranking ≤ 60 % of random);
3. suggestions of the full-data run on the test images: the share of masks
   with IoU ≥ 0.7 against the ground truth, at the run's validated ``roi_tau``
   and at 0.5 (target ≥ 0.8);
4. calibration: ECE on the test images before and after the run's ensemble
   temperature (fitted on its out-of-fold predictions; target: after ≤ half).

    python benchmarks/active_learning.py                       # smallest meaningful settings (CPU)
    python benchmarks/active_learning.py --size 256x192 --epochs 15 --per-class 16 --seeds 0 1 2 --device cuda
    # the README's normal-heavy cohort (one seed per process; --report merges their --json files)
    python benchmarks/active_learning.py --class-counts Normal=40,Benign=8,InSitu=8,Invasive=8 --small-focus 0.5 \
        --test-per-class 16 --folds 1 --epochs 16 --batch-size 4 --strategies random spread --max-annotated 48 \
        --threads 1 --seeds 12 --json s12.json

The strategies take each round in turn and the JSON is rewritten after every
round, so a run stopped early keeps curves of equal length.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from gusa_core.atomic import atomic_write_text
from gusa_core.engines import cpu_info


def _size(text: str) -> tuple[int, int]:
    w, h = (int(v) for v in text.lower().split("x"))
    return w, h


class Experiment:
    """One seed: the pool, the test set, the ground truth and the training settings."""

    def __init__(self, args, seed: int, root: Path):
        from gusa_core.demo import write_demo_project
        from gusa_core.training import TrainConfig

        self.args, self.seed, self.root = args, seed, root
        w, h = _size(args.size)
        image_size = (w * args.image_scale, h * args.image_scale)
        per_class = args.class_counts or args.per_class
        self.pool = write_demo_project(root / "pool", seed=seed, per_class=per_class, unlabelled=0, size=image_size,
                                       small_focus=args.small_focus)
        self.test = write_demo_project(root / "test", seed=10_000 + seed, per_class=args.test_per_class, unlabelled=0,
                                       size=image_size, small_focus=args.small_focus)
        self.truth = {r.id: (r.label, self.pool.load_mask(r.id)) for r in self.pool.images}
        self.config = dict(variant="fa-gusa", folds=args.folds, epochs=args.epochs, batch_size=args.batch_size,
                           input_size=(w, h), lr=args.lr, random_init_lr=None, lr_schedule=args.lr_schedule,
                           device=args.device, pretrained="none",
                           seed=seed, workers=0,
                           dice_weight=args.dice_weight, class_weights=args.class_weights)
        self.TrainConfig = TrainConfig
        rng = np.random.default_rng(seed)
        by_class: dict[str, list[str]] = {}
        for image_id, (label, _) in sorted(self.truth.items()):
            by_class.setdefault(label, []).append(image_id)
        start: list[str] = []
        while len(start) < args.start:  # stratified start: one of each class in turn
            for ids in by_class.values():
                left = [i for i in ids if i not in start]
                if left and len(start) < args.start:
                    start.append(str(rng.choice(left)))
        self.start = start

    def working_copy(self, name: str, annotated: list[str]):
        """A copy of the pool where only ``annotated`` images keep their label and mask."""
        from gusa_core.project import Project

        folder = self.root / name
        if folder.exists():
            shutil.rmtree(folder)
        shutil.copytree(self.pool.folder, folder, ignore=shutil.ignore_patterns("runs", "cache"))
        project = Project.open(folder)
        for rec in project.images:
            if rec.id not in annotated:
                project.set_label(rec.id, None)
                project.save_mask(rec.id, None, save_manifest=False)
        project.save()
        return project

    def annotate(self, project, ids) -> None:
        for image_id in ids:
            label, mask = self.truth[image_id]
            project.set_label(image_id, label)
            if mask is not None:
                project.save_mask(image_id, mask, source="painted", save_manifest=False)
        project.save()

    def train(self, project, name: str) -> Path:
        from gusa_core.training import Trainer

        out = project.runs_dir / name
        Trainer(project, out, self.TrainConfig(**self.config)).run()
        return out

    def score(self, run: Path) -> dict:
        from gusa_core.evaluation import evaluate_run

        r = evaluate_run(run, self.test, device=self.args.device, backend="torch")
        return {"accuracy": r["accuracy"], "miou": r["miou"], "ece_before": r["calibration"]["before"]["ece"],
                "ece_after": r["calibration"]["after"]["ece"], "temperature": r["calibration"]["temperature"]}

    def ranked(self, run: Path, project, remaining: list[str], k: int, *, spread: bool = False) -> list[str]:
        """The first ``k`` unlabelled images of the queue: by score, or (``spread``) in turns from each predicted class."""
        from gusa_core.assist import annotation_queue, scan_project, spread_by_class
        from gusa_core.runs import stored_temperature

        records = list(scan_project(run, project, ids=remaining, device=self.args.device, backend="torch",
                                    temperature=stored_temperature(run)))
        queue = [it for it in annotation_queue(records, project, spread=False) if it.reason == "unlabelled"]
        if spread:
            queue = spread_by_class(queue)
        return [it.id for it in queue[:k]]


def _reach(curve: list[tuple[int, float]], target: float, *, slack: float = 0.0, first: bool = False) -> int | None:
    """The first number of annotations from which every later round stays at ``target - slack`` or above.

    With ``first``, the first number of annotations at which the curve reaches it at all.
    """
    if first:
        return next((n for n, acc in curve if acc >= target - slack - 1e-9), None)
    reached = None
    for n, acc in curve:
        if acc >= target - slack - 1e-9:
            reached = n if reached is None else reached
        else:
            reached = None
    return reached


def _counts(text: str) -> dict[str, int]:
    """``Normal=24,Benign=12,...`` as a dict."""
    out = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        out[name.strip()] = int(value)
    return out


def run_seed(args, seed: int, root: Path, progress=None) -> dict:
    """One seed: the full-data run, then every strategy's curve, the strategies taking each round in turn.

    Taking rounds in turn keeps the curves equally long when a run is stopped
    early; ``progress(result)`` is called after every round with what is
    measured so far.
    """
    exp = Experiment(args, seed, root)
    total = len(exp.truth)
    t0 = time.perf_counter()
    full_project = exp.working_copy("full", list(exp.truth))
    full_run = exp.train(full_project, "full")
    full = exp.score(full_run)
    print(f"[seed {seed}] full data ({total} images): accuracy {full['accuracy']:.3f}, mIoU {full['miou']:.3f} "
          f"({time.perf_counter() - t0:.0f} s)", flush=True)
    result = {"seed": seed, "total": total, "full": full, "curves": {k: [] for k in args.strategies},
              "stored_calibration": _stored_calibration(full_run)}
    state = {}
    for strategy in args.strategies:
        state[strategy] = {"rng": np.random.default_rng(1000 + seed), "annotated": list(exp.start),
                           "project": exp.working_copy(strategy, exp.start), "done": False}
    first = None
    while not all(st["done"] for st in state.values()):
        for strategy, st in state.items():
            if st["done"]:
                continue
            annotated, project = st["annotated"], st["project"]
            n = len(annotated)
            if n == len(exp.start) and first is not None:
                run, scores = first  # the first round is the same for every strategy
            else:
                run = exp.train(project, f"{strategy}-{n}")
                scores = exp.score(run)
                if n == len(exp.start):
                    first = (run, scores)
            result["curves"][strategy].append({"n": n, **scores, "seconds": round(time.perf_counter() - t0, 1)})
            print(f"[seed {seed}] {strategy:<6} n={n:<3} accuracy {scores['accuracy']:.3f} mIoU {scores['miou']:.3f}",
                  flush=True)
            remaining = [i for i in exp.truth if i not in annotated]
            if not remaining or n >= args.max_annotated:
                st["done"] = True
                continue
            k = min(args.step, len(remaining))
            picked = [str(v) for v in st["rng"].choice(remaining, size=k, replace=False)] if strategy == "random" \
                else exp.ranked(run, project, remaining, k, spread=strategy == "spread")
            exp.annotate(project, picked)
            annotated += picked
        if progress is not None:
            progress(result)
    result["suggestions"] = suggestion_quality(full_run, exp.test, args.device)
    return result


def suggestion_quality(run: Path, test, device: str) -> dict:
    from gusa_core.assist import scan_project, suggestion
    from gusa_core.metrics import iou
    from gusa_core.runs import stored_roi_tau

    tau = stored_roi_tau(run) or 0.5
    out = {"tau": tau}
    records = [r for r in scan_project(run, test, device=device, backend="torch") if r["error"] is None]
    for key, t in (("at_roi_tau", tau), ("at_0.5", 0.5)):
        scores = []
        for rec in records:
            truth = test.load_mask(rec["id"])
            if truth is None:
                continue
            scores.append(iou(suggestion(rec, tau=t) > 0, truth > 0))
        out[key] = {"n": len(scores), "share_iou_ge_0.7": float(np.mean(np.array(scores) >= 0.7)) if scores else None,
                    "mean_iou": float(np.mean(scores)) if scores else None}
    return out


def _stored_calibration(run: Path) -> dict:
    from gusa_core.runs import read_run_meta

    cal = (read_run_meta(run) or {}).get("calibration") or {}
    return {"n": cal.get("n"), "T": cal.get("ensemble_temperature"),
            "oof_ece_before": (cal.get("before") or {}).get("ece"), "oof_ece_after": (cal.get("after") or {}).get("ece")}


def _strategies(results: list[dict]) -> list[str]:
    return [k for k in ("random", "ranked", "spread") if all(k in r["curves"] for r in results)]


def _mean_curves(results: list[dict], slack: float) -> None:
    """Accuracy averaged over the seeds at each number of annotations, and where each mean curve reaches the mean full-data accuracy.

    A number of annotations enters the mean only where every seed measured it
    for every strategy (a run stopped early has shorter curves).
    """
    strategies = _strategies(results)
    if "random" not in strategies:
        return
    last = {r["seed"]: min(max((x["n"] for x in r["curves"][k]), default=0) for k in strategies) for r in results}
    shorter = [seed for seed, n in last.items() if n < max(last.values())]
    if shorter:
        print(f"\n   seeds {shorter} stopped early: left out of the mean curves")
        results = [r for r in results if r["seed"] not in shorter]
    ns = sorted(set.intersection(*({x["n"] for x in r["curves"][k]} for r in results for k in strategies)))
    if not ns:
        return
    full = float(np.mean([r["full"]["accuracy"] for r in results]))
    mean = {k: [(n, float(np.mean([x["accuracy"] for r in results for x in r["curves"][k] if x["n"] == n]))) for n in ns]
            for k in strategies}
    print(f"\n2b. accuracy averaged over {len(results)} seeds (full data: {full:.3f})")
    print("     n " + "  ".join(f"{n:>5}" for n in ns))
    for k in strategies:
        print(f"{k:>6} " + "  ".join(f"{a:5.3f}" for _, a in mean[k]))
    pool = results[0]["total"]
    whole = [r["full"]["accuracy"] for r in results] + [x["accuracy"] for r in results for k in strategies
                                                         for x in r["curves"][k] if x["n"] == pool]
    targets = [("the full-data run", full)]
    if len(whole) > len(results):  # the curves' last rounds are trained on the whole pool too
        targets.append((f"all {len(whole)} runs on the whole pool", float(np.mean(whole))))
    for name, target in targets:
        print(f"  target: {name}, {target:.3f}")
        for k in strategies:
            if k == "random":
                continue
            for label, sl, first in (("", 0.0, False), (" within one", slack, False), (" first reached", 0.0, True)):
                nr, nk = (_reach(mean["random"], target, slack=sl, first=first),
                          _reach(mean[k], target, slack=sl, first=first))
                ratio = f"{nk / nr:.0%}" if nr and nk else "—"
                if nk and not nr and ns[-1] < pool:  # random needs at least one round more than was run
                    step = ns[-1] - ns[-2] if len(ns) > 1 else 1
                    ratio = f"below {nk / (ns[-1] + step):.0%} (random needs more than {ns[-1]})"
                print(f"    mean curves{label}: random {nr or 'not reached'}, {k} {nk or 'not reached'}; ratio {ratio}")


def report(results: list[dict], args) -> None:
    print()
    print(f"CPU: {cpu_info().model}  |  settings: input {args.size}, images {args.image_scale}x that, {args.folds} folds, "
          f"{args.epochs} epochs, start {args.start}, step {args.step}, pool {results[0]['total']} images/seed "
          f"({args.class_counts or 'balanced'}; small focus {args.small_focus:.0%} of lesions), "
          f"test {4 * args.test_per_class} images/seed, seeds {[r['seed'] for r in results]}")
    strategies = _strategies(results)
    slack = 1.0 / (4 * args.test_per_class)
    print("\n1. accuracy / mIoU on the test images against the number of annotated images")
    print(f"{'seed':>4} {'n':>4}  " + "  ".join(f"{k + ' acc':>11} {k + ' mIoU':>12}" for k in strategies))
    for r in results:
        rows = {k: {x["n"]: x for x in r["curves"][k]} for k in strategies}
        for n in sorted(set().union(*rows.values())):
            cells = [(f"{rows[k][n]['accuracy']:>11.3f} {rows[k][n]['miou']:>12.3f}" if n in rows[k] else " " * 24)
                     for k in strategies]
            print(f"{r['seed']:>4} {n:>4}  " + "  ".join(cells))
        print(f"{r['seed']:>4} {'all':>4}  full data: accuracy {r['full']['accuracy']:.3f}, mIoU {r['full']['miou']:.3f}")
    if "random" in strategies:
        print("\n2. annotations after which accuracy stays at the full-data accuracy (target: the queue <= 60 % of "
              "random);\n   'within one' allows one test image less")
        for k in strategies:
            if k == "random":
                continue
            sums = {"": [0, 0], "within one": [0, 0]}
            for r in results:
                target = r["full"]["accuracy"]
                for label, sl in (("", 0.0), ("within one", slack)):
                    nr = _reach([(x["n"], x["accuracy"]) for x in r["curves"]["random"]], target, slack=sl)
                    nk = _reach([(x["n"], x["accuracy"]) for x in r["curves"][k]], target, slack=sl)
                    ratio = f"{nk / nr:.0%}" if nr and nk else "—"
                    if nr and nk:
                        sums[label][0] += nk
                        sums[label][1] += nr
                    print(f"  seed {r['seed']}{' ' + label if label else ''}: full {target:.3f}; random "
                          f"{nr or 'not reached'}, {k} {nk or 'not reached'}; ratio {ratio}")
            for label, (nk, nr) in sums.items():
                if nr:
                    print(f"  all seeds{' ' + label if label else ''}: {k} {nk} / random {nr} annotations = {nk / nr:.0%}")
        _mean_curves(results, slack)
    results = [r for r in results if "suggestions" in r]  # a seed stopped early has no suggestions measured
    print("\n3. suggestions of the full-data run on the test images (target: share with IoU >= 0.7 >= 0.8)")
    for r in results:
        s = r["suggestions"]
        for key in ("at_roi_tau", "at_0.5"):
            v = s[key]
            tau = s["tau"] if key == "at_roi_tau" else 0.5
            share = "—" if v["share_iou_ge_0.7"] is None else f"{v['share_iou_ge_0.7']:.2f}"
            mean = "—" if v["mean_iou"] is None else f"{v['mean_iou']:.3f}"
            print(f"  seed {r['seed']}: tau {tau:.2f}: {share} of {v['n']} masks with IoU >= 0.7 (mean IoU {mean})")
    print("\n4. calibration of the full-data run (target: ECE after <= half of before, on images T never saw)")
    for r in results:
        f, c = r["full"], r["stored_calibration"]
        ratio = f["ece_after"] / f["ece_before"] if f["ece_before"] else float("nan")
        print(f"  seed {r['seed']}: T = {c['T']} fitted on {c['n']} out-of-fold images; test ECE {f['ece_before']:.4f} -> "
              f"{f['ece_after']:.4f} (after/before {ratio:.2f}); out-of-fold ECE {c['oof_ece_before']} -> {c['oof_ece_after']}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--size", default="128x96", help="network input WxH")
    p.add_argument("--image-scale", type=int, default=2, help="demo images are this many times the input size")
    p.add_argument("--per-class", type=int, default=6, help="pool images per class")
    p.add_argument("--class-counts", type=_counts, default=None,
                   help="pool images of each class, e.g. Normal=24,Benign=12,InSitu=6,Invasive=6 (an uneven pool, "
                        "as a real cohort is; overrides --per-class)")
    p.add_argument("--test-per-class", type=int, default=8)
    p.add_argument("--small-focus", type=float, default=0.0,
                   help="share of lesion images (pool and test) drawn as one small focus in normal tissue: the hard "
                        "cases of a real cohort (0: every lesion fills its field, which a few images already learn)")
    p.add_argument("--strategies", nargs="+", default=["random", "ranked", "spread"], choices=("random", "ranked", "spread"),
                   help="orders of annotation: random, the annotate-next queue (ranked), or that queue taken in turn "
                        "from each class the model predicts (spread)")
    p.add_argument("--start", type=int, default=8)
    p.add_argument("--step", type=int, default=4)
    p.add_argument("--max-annotated", type=int, default=10**6)
    p.add_argument("--folds", type=int, default=2)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-3,
                   help="from random weights (no ImageNet here): the paper's 5e-5 stays at chance")
    p.add_argument("--lr-schedule", default="auto", choices=("auto", "step", "cosine"),
                   help="auto: cosine from random weights (the trainer's default)")
    p.add_argument("--dice-weight", type=float, default=3.0)
    p.add_argument("--class-weights", default="none", choices=("none", "balanced"),
                   help="the trainer's class weights (the README's figures: none)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch threads on the CPU (default: OMP_NUM_THREADS or all)")
    p.add_argument("--json", type=Path, default=None, help="write every number as JSON")
    p.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it")
    p.add_argument("--report", type=Path, nargs="+", default=None, metavar="JSON",
                   help="print the tables of earlier --json files together (seeds run in parallel processes); "
                        "give the settings they ran with")
    args = p.parse_args(argv)
    if args.report:
        by_seed: dict[int, dict] = {}
        for path in args.report:  # the same seed from several files: their strategies side by side
            for r in json.loads(path.read_text(encoding="utf-8"))["results"]:
                if r["seed"] in by_seed:
                    by_seed[r["seed"]]["curves"].update(r["curves"])
                else:
                    by_seed[r["seed"]] = r
        report([by_seed[k] for k in sorted(by_seed)], args)
        return
    import torch

    from gusa_core.device import configure_cpu_threads

    configure_cpu_threads(args.threads)
    torch.manual_seed(0)
    results = []
    t0 = time.perf_counter()
    for seed in args.seeds:
        root = args.keep / f"seed-{seed}" if args.keep else Path(tempfile.mkdtemp(prefix="gusa-al-"))
        root.mkdir(parents=True, exist_ok=True)
        def save(partial: dict | None = None) -> None:  # after every round: a run stopped early keeps what it measured
            if args.json:
                done = results + ([partial] if partial is not None else [])
                atomic_write_text(args.json, json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                          "results": done}, indent=1))

        try:
            results.append(run_seed(args, seed, root, progress=save))
        finally:
            if args.keep is None:
                shutil.rmtree(root, ignore_errors=True)
        save()
    report(results, args)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
