"""How good is the RoI map ỹ as a suggested mask on the demo, and what limits it?

Four measurements, printed as tables:

1. **Resolution ceiling** (no network): each ground-truth mask is area-averaged
   to the RoI grid (stride 16 of the network input, as the dice loss sees it),
   up-sampled back to the image (bilinear, as the predictor does, and nearest)
   and thresholded at 0.5. Its IoU with the mask is the best any network with
   that grid can reach: a perfect ỹ still scores this.
2. **Training**: ``fa-gusa`` from random weights on a demo project (k folds,
   the "Quick look" settings by default), then
3. **ỹ quality** on held-out demo images (drawn with another seed, never seen
   by any fold) with the ensemble (mean of the folds' ỹ, as ``gusa suggest``
   would use): mean IoU against τ, bilinear vs nearest up-sampling, and the
   error at the RoI grid itself (ỹ against the area-averaged mask), which
   separates what the network failed to learn from what the grid cannot hold.
4. **Suggested masks**: :func:`gusa_core.assist.suggest_mask` on the ensemble
   ỹ; share of images whose suggestion has IoU ≥ 0.7 (target ≥ 0.8).

5. **Finer suggestions from the same weights**: a guided filter (edge-aware
   up-sampling with the image as guide), shift-and-stitch (four passes
   shifted by half a stride give ỹ at stride 8) and inference at twice the
   training size, each at τ = 0.5, the best τ and the run's ``roi_tau``.

    python benchmarks/roi_quality.py [--per-class 16] [--folds 2] [--epochs 14] [--size 256x192] [--dice-weight 3]
    python benchmarks/roi_quality.py --run RUN_DIR        # reuse a trained run (skips 2)
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

TAUS = np.round(np.arange(0.05, 0.951, 0.05), 2)


def _iou(pred: np.ndarray, truth: np.ndarray) -> float:
    union = np.logical_or(pred, truth).sum()
    return 1.0 if union == 0 else float(np.logical_and(pred, truth).sum() / union)


def _area_grid(mask: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Mask (H, W) -> RoI share per cell of an (M, N) grid, like ``losses.downsample_masks``."""
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy((mask > 127).astype(np.float32))[None, None]
    return F.adaptive_avg_pool2d(t, grid)[0, 0].numpy()


def _up(m: np.ndarray, shape: tuple[int, int], nearest: bool = False) -> np.ndarray:
    import cv2

    return cv2.resize(np.ascontiguousarray(m, np.float32), (shape[1], shape[0]),
                      interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR)


def heldout_images(n_per_class: int, size: tuple[int, int], seed: int):
    from gusa_core.demo import DEMO_CLASSES, generate_tissue

    out = []
    for c, label in enumerate(DEMO_CLASSES):
        for j in range(n_per_class):
            image, mask = generate_tissue(label, size=size, rng=np.random.default_rng([seed, 9973, c, j]))
            if mask.any():
                out.append((label, image, mask))
    return out


def resolution_ceiling(heldout, input_sizes) -> None:
    masks = [m for _, _, m in heldout]
    classes = sorted({c for c, _, _ in heldout})
    print("\n1. resolution ceiling: GT mask -> area mean on the stride-16 grid -> up-sampled -> > τ")
    print(f"   {'input':>8} {'grid':>6} {'bilinear':>9} {'nearest':>8} {'bil. best τ':>12} {'IoU>=0.7':>9}  per class (bilinear, τ=0.5)")
    for w, h in input_sizes:
        grid = (h // 16, w // 16)
        ups = [_up(_area_grid(m, grid), m.shape) for m in masks]
        bil = np.array([_iou(u > 0.5, m > 127) for u, m in zip(ups, masks)])
        nea = np.mean([_iou(_up(_area_grid(m, grid), m.shape, nearest=True) > 0.5, m > 127) for m in masks])
        sweep = [(np.mean([_iou(u > t, m > 127) for u, m in zip(ups, masks)]), t) for t in TAUS]
        best = max(sweep)
        per = ", ".join(f"{c} {np.mean([v for v, (cc, _, _) in zip(bil, heldout) if cc == c]):.2f}" for c in classes)
        print(f"   {w}x{h:<4} {grid[1]}x{grid[0]:<3} {bil.mean():9.3f} {nea:8.3f} {best[0]:6.3f} @{best[1]:.2f} "
              f"{np.mean(bil >= 0.7):9.2f}  {per}")


def train(args, folder: Path) -> Path:
    from gusa_core.demo import write_demo_project
    from gusa_core.training import TrainCallbacks, TrainConfig, Trainer

    w, h = args.wh
    project = write_demo_project(folder, seed=args.seed, per_class=args.per_class, unlabelled=0, size=(4 * w, 4 * h))

    class Print(TrainCallbacks):
        def on_epoch_end(self, r):
            print(f"   fold {r.get('fold', '?')} epoch {r['epoch']:2d}: val acc {r['val_acc']:.3f} mIoU "
                  f"{'-' if r['val_miou'] is None else format(r['val_miou'], '.3f')}", flush=True)

    cfg = TrainConfig(variant="fa-gusa", folds=args.folds, epochs=args.epochs, input_size=(w, h), lr=args.lr,
                      device="cpu", pretrained="none", random_init_lr=None, lr_schedule=args.lr_schedule,
                      seed=args.seed, workers=0,
                      dice_weight=args.dice_weight)
    t0 = time.perf_counter()
    print(f"\n2. training fa-gusa, {args.folds} fold(s), {args.epochs} epochs at {w}x{h}, {len(project.images)} images")
    Trainer(project, project.runs_dir / "roi", cfg, callbacks=Print()).run()
    print(f"   {time.perf_counter() - t0:.0f} s of training")
    return project.runs_dir / "roi"


def roi_quality(run: Path, args) -> None:
    from gusa_core.assist import suggest_mask
    from gusa_core.inference import Predictor

    pred = Predictor.from_run(run, device="cpu")
    w, h = pred.input_size
    heldout = heldout_images(args.heldout, (4 * w, 4 * h), args.seed)
    lows, masks, classes = [], [], []
    for i in range(0, len(heldout), 8):
        chunk = heldout[i:i + 8]
        for p, (c, _, m) in zip(pred.predict([im for _, im, _ in chunk]), chunk):
            lows.append(p.attention_lowres)
            masks.append(m)
            classes.append(c)
    grid = lows[0].shape
    print(f"\n3. ensemble ỹ ({pred.n_models} model(s), grid {grid[1]}x{grid[0]}) on {len(masks)} held-out masked images")
    bil = [_up(lo, m.shape) for lo, m in zip(lows, masks)]
    nea = [_up(lo, m.shape, nearest=True) for lo, m in zip(lows, masks)]
    truth = [m > 127 for m in masks]
    print(f"   {'τ':>5} {'mIoU bilinear':>14} {'mIoU nearest':>13} {'grid IoU (ỹ vs area target)':>28}")
    best = (-1.0, 0.5)
    grid_targets = [_area_grid(m, grid) for m in masks]
    for tau in TAUS:
        b = np.mean([_iou(x > tau, t) for x, t in zip(bil, truth)])
        n = np.mean([_iou(x > tau, t) for x, t in zip(nea, truth)])
        g = np.mean([_iou(lo > tau, gt > 0.5) for lo, gt in zip(lows, grid_targets)])
        best = max(best, (b, float(tau)))
        print(f"   {tau:5.2f} {b:14.3f} {n:13.3f} {g:28.3f}")
    mae = np.mean([np.abs(lo - gt).mean() for lo, gt in zip(lows, grid_targets)])
    mean_roi = np.mean([lo.mean() for lo in lows])
    mean_gt = np.mean([gt.mean() for gt in grid_targets])
    print(f"   best τ = {best[1]:.2f}: mIoU {best[0]:.3f}; at τ = 0.5: "
          f"{np.mean([_iou(x > 0.5, t) for x, t in zip(bil, truth)]):.3f}")
    print(f"   at the grid: mean |ỹ - area target| {mae:.3f}; mean ỹ {mean_roi:.3f} vs mean target {mean_gt:.3f}")
    for c in sorted(set(classes)):
        sel = [i for i, cc in enumerate(classes) if cc == c]
        print(f"   {c:<9} mean ỹ {np.mean([lows[i].mean() for i in sel]):.3f} vs target {np.mean([grid_targets[i].mean() for i in sel]):.3f}; "
              f"mIoU τ=0.5 {np.mean([_iou(bil[i] > 0.5, truth[i]) for i in sel]):.3f}, "
              f"τ={best[1]:.2f} {np.mean([_iou(bil[i] > best[1], truth[i]) for i in sel]):.3f}")

    print("\n4. suggested masks (suggest_mask on the ensemble ỹ, bilinear to the image)")
    for tau in sorted({0.5, best[1]}):
        for frac, fill in ((0.0, False), (0.001, True), (0.005, True)):
            ious = [_iou(suggest_mask(x, tau=tau, min_island_fraction=frac, fill_holes=fill) > 0, t) for x, t in zip(bil, truth)]
            what = f"islands < {frac:.1%} removed, holes filled" if fill else "raw threshold"
            print(f"   τ = {tau:.2f}, {what:36s}: "
                  f"mIoU {np.mean(ious):.3f}, share with IoU >= 0.7: {np.mean(np.array(ious) >= 0.7):.2f} (target 0.80)")


def _guided(guide: np.ndarray, p: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """He et al.'s guided filter (ECCV 2010) of ``p`` with a grey ``guide``, both (H, W) float32 in [0, 1]."""
    import cv2

    k = (2 * radius + 1, 2 * radius + 1)
    box = lambda x: cv2.boxFilter(x, -1, k, normalize=True, borderType=cv2.BORDER_REFLECT)  # noqa: E731
    mi, mp = box(guide), box(p)
    a = (box(guide * p) - mi * mp) / (box(guide * guide) - mi * mi + eps)
    b = mp - a * mi
    return np.clip(box(a) * guide + box(b), 0.0, 1.0)


def refinements(run: Path, args) -> None:
    """5. Finer suggestions without changing the network: guided filter, shift-and-stitch, 2x inference size."""
    import cv2

    from gusa_core.assist import stitched_roi, suggest_mask
    from gusa_core.inference import Predictor
    from gusa_core.preprocess import preprocess_array
    from gusa_core.runs import stored_roi_tau
    from gusa_core.stain import ReinhardNormalizer

    pred = Predictor.from_run(run, device="cpu", backend="torch")
    if len({json.dumps(m.get("reinhard"), sort_keys=True) for m in pred.metas}) != 1:
        raise SystemExit("the folds use different colour references")
    ref = pred.metas[0].get("reinhard")
    norm = ReinhardNormalizer.from_dict(ref) if ref else None
    w, h = pred.input_size
    heldout = heldout_images(args.heldout, (4 * w, 4 * h), args.seed)
    maps: dict[str, list[np.ndarray]] = {k: [] for k in ("bilinear", "guided filter", "shift-and-stitch (stride 8)",
                                                         "stitch + guided", "2x inference size")}
    truth = []
    t0 = time.perf_counter()
    for _, image, mask in heldout:
        H, W = mask.shape
        shape, (x,) = pred.prepare(image)
        base = pred.predict_prepared([(shape, [x])])[0].attention_lowres
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
        radius = max(2, round(8 * W / w))  # half a stride-16 cell, at the image's scale
        bil = _up(base, (H, W))
        maps["bilinear"].append(bil)
        maps["guided filter"].append(_guided(grey, bil, radius, 1e-2))
        st = _up(stitched_roi(pred, image)[1], (H, W))  # what ``gusa suggest --stitch`` uses
        maps["shift-and-stitch (stride 8)"].append(st)
        maps["stitch + guided"].append(_guided(grey, st, radius // 2, 1e-2))
        x2 = preprocess_array(image, (2 * w, 2 * h), norm)
        maps["2x inference size"].append(_up(pred.predict_prepared([(shape, [x2])])[0].attention_lowres, (H, W)))
        truth.append(mask > 127)
    tau_run = stored_roi_tau(run)
    print(f"\n5. finer suggestions from the same weights ({len(truth)} held-out masks, {time.perf_counter() - t0:.0f} s); "
          f"suggest_mask (islands < 0.1 % removed, holes filled); run's validated roi_tau = {tau_run}")
    print(f"   {'up-sampling':<28} {'mIoU τ=0.5':>10} {'≥0.7 τ=0.5':>10} {'best τ':>7} {'mIoU':>6} {'≥0.7':>5}"
          f" {'τ=roi_tau mIoU':>15} {'≥0.7':>5}")
    for name, ms in maps.items():
        rows = {}
        for tau in sorted(set(TAUS) | {0.5} | ({tau_run} if tau_run else set())):
            ious = np.array([_iou(suggest_mask(m, tau=float(tau)) > 0, t) for m, t in zip(ms, truth)])
            rows[round(float(tau), 2)] = (ious.mean(), np.mean(ious >= 0.7))
        bt = max(rows, key=lambda t: rows[t][0])
        rt = rows.get(round(tau_run, 2)) if tau_run else None
        rtxt = f"{rt[0]:15.3f} {rt[1]:5.2f}" if rt else f"{'-':>15} {'-':>5}"
        print(f"   {name:<28} {rows[0.5][0]:10.3f} {rows[0.5][1]:10.2f} {bt:7.2f} {rows[bt][0]:6.3f} {rows[bt][1]:5.2f} {rtxt}")
    print("   target: share of suggestions with IoU >= 0.7 at least 0.80")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--per-class", type=int, default=12)
    p.add_argument("--folds", type=int, default=2)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--size", default="256x192", help="network input WxH (the demo images are 4x this)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lr-schedule", default="auto", choices=("auto", "step", "cosine"),
                   help="auto: cosine from random weights (the trainer's default)")
    p.add_argument("--dice-weight", type=float, default=3.0, help="λ of eq. 8 (3 beat the paper's 1 on the demo)")
    p.add_argument("--heldout", type=int, default=8, help="held-out images per class")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--run", type=Path, default=None, help="reuse this trained run (its input size is used)")
    p.add_argument("--keep", type=Path, default=None, help="write the demo project here and keep it")
    args = p.parse_args()
    args.wh = tuple(int(v) for v in args.size.lower().split("x"))

    from gusa_core.device import configure_cpu_threads

    configure_cpu_threads(args.threads)
    print(f"CPU: {cpu_info().model}")
    w, h = args.wh
    heldout = heldout_images(args.heldout, (4 * w, 4 * h), args.seed)
    resolution_ceiling(heldout, [(128, 96), (256, 192), (512, 384)])
    tmp = None
    run = args.run
    if run is None:
        folder = args.keep or Path(tempfile.mkdtemp(prefix="gusa-roi-")) / "demo"
        tmp = None if args.keep else folder.parent
        run = train(args, folder)
    roi_quality(run, args)
    refinements(run, args)
    if tmp is not None:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
