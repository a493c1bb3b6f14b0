"""Prediction speed: the default Predictor against eager PyTorch, and a folder against the model.

(a) model throughput on already pre-processed tensors: ``fa-gusa`` at 512x384
    with random weights, eager fp32 ``no_grad`` batch 1 (= 1.00) against the
    default :class:`gusa_core.inference.Predictor` backend (onnxruntime on the
    CPU) at the ``classify_paths`` batch size. Target (PERF.md): >= 1.45x.
(b) folder throughput: BACH-size (2048x1536) TIFFs classified by
    :func:`gusa_core.inference.classify_paths` (decode, resize, Reinhard,
    network, attention up-sampled to 2048x1536), against (a)'s model-only
    throughput of the same predictor. Target: >= 0.95.

Rounds are interleaved and medians reported; only ratios measured in this one
process are meaningful. Run: ``.venv/bin/python benchmarks/bench_predict.py``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 2))

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gusa_core.checkpoint import save_model  # noqa: E402
from gusa_core.engines.cpu import cpu_info  # noqa: E402
from gusa_core.inference import Predictor, classify_paths  # noqa: E402
from gusa_core.models import build_model  # noqa: E402
from gusa_core.stain import ReinhardNormalizer  # noqa: E402

SHARED_TIF = ROOT.parent / "shared" / "data" / "he_bach_size.tif"
SIZE = (512, 384)


def _make_run(folder: Path) -> Path:
    torch.manual_seed(0)
    model = build_model("fa-gusa", num_classes=4, pretrained="none").eval()
    meta = {
        "variant": "fa-gusa",
        "class_names": ["Normal", "Benign", "InSitu", "Invasive"],
        "input_size": list(SIZE),
        "reinhard": ReinhardNormalizer.default().to_dict(),
        "fold": 0,
        "folds": 1,
        "validation_ids": [],
    }
    save_model(folder / "fold-0", model, meta)
    (folder / "run.json").write_text('{"variant": "fa-gusa", "folds": 1}')
    return folder


def _write_tiffs(folder: Path, n: int) -> list[Path]:
    import tifffile

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    if SHARED_TIF.is_file():
        source, what = SHARED_TIF, "copies of he_bach_size.tif"
    else:
        rng = np.random.default_rng(0)
        image = rng.integers(0, 256, size=(1536, 2048, 3), dtype=np.uint8)
        source = folder / "synthetic.tif"
        tifffile.imwrite(source, image, photometric="rgb")
        what = "synthetic 2048x1536 RGB TIFFs"
    for i in range(n):
        p = folder / f"img{i:03d}.tif"
        shutil.copyfile(source, p)
        paths.append(p)
    if source.parent == folder:
        source.unlink()
    print(f"folder: {n} {what}")
    return paths


def _eager_rate(model, x1: torch.Tensor, n: int) -> float:
    with torch.no_grad():
        t = time.perf_counter()
        for _ in range(n):
            model(x1)
        return n / (time.perf_counter() - t)


def _predictor_rate(predictor: Predictor, prepared: list, batch: int, n: int) -> float:
    t = time.perf_counter()
    done = 0
    while done < n:
        chunk = prepared[: min(batch, n - done)]
        predictor.predict_prepared(chunk)
        done += len(chunk)
    return n / (time.perf_counter() - t)


def _folder_rate(predictor: Predictor, paths: list[Path], batch: int) -> float:
    t = time.perf_counter()
    n = sum(1 for rec in classify_paths(predictor, paths, batch_size=batch) if rec["error"] is None)
    return n / (time.perf_counter() - t)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=16, help="images per measurement (and TIFFs in the folder)")
    ap.add_argument("--eager-images", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--no-torch-backend", dest="torch_backend", action="store_false", help="skip the torch-backend row")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    tmp = Path(tempfile.mkdtemp(prefix="gusa-bench-"))
    try:
        run = _make_run(tmp / "run")
        paths = _write_tiffs(tmp / "images", args.images)
        t = time.perf_counter()
        predictor = Predictor.from_run(run)
        print(f"Predictor backend: {predictor.backend} (set-up incl. ONNX export {time.perf_counter() - t:.1f} s), batch {args.batch_size}")
        from gusa_core.imageio import read_image

        image = read_image(paths[0])
        shape, tensors = predictor.prepare(image)
        # (a) the model alone: attention left at the input size (no up-sampling to the image)
        model_only = [((SIZE[1], SIZE[0]), tensors)] * args.batch_size
        # the same with the attention up-sampled to 2048x1536, as a folder run does
        full_res = [(shape, tensors)] * args.batch_size
        model = build_model("fa-gusa", num_classes=4, pretrained="none").eval()
        x1 = torch.from_numpy(np.ascontiguousarray(tensors[0][None]))
        torch_pred = Predictor.from_run(run, backend="torch") if args.torch_backend else None

        _eager_rate(model, x1, 1)  # warm-up
        _predictor_rate(predictor, model_only, args.batch_size, args.batch_size)
        eager, pred, pred_full, folder, torch_rates = [], [], [], [], []
        for r in range(args.rounds):
            eager.append(_eager_rate(model, x1, args.eager_images))
            pred.append(_predictor_rate(predictor, model_only, args.batch_size, args.images))
            pred_full.append(_predictor_rate(predictor, full_res, args.batch_size, args.images))
            folder.append(_folder_rate(predictor, paths, args.batch_size))
            if torch_pred is not None:
                torch_rates.append(_predictor_rate(torch_pred, model_only, args.batch_size, args.eager_images))
            print(
                f"  round {r + 1}: eager {eager[-1]:.2f}  predictor {pred[-1]:.2f}  "
                f"+full-res attention {pred_full[-1]:.2f}  folder {folder[-1]:.2f} img/s",
                flush=True,
            )
        e, p, pf, f = (statistics.median(v) for v in (eager, pred, pred_full, folder))
        print(f"\nCPU: {cpu_info().summary()}; torch {torch.__version__}, {args.threads} threads")
        print("| what | img/s | ratio |")
        print("| --- | --- | --- |")
        print(f"| (a) eager fp32 no_grad, batch 1 | {e:.2f} | 1.00 |")
        print(f"| (a) Predictor default ({predictor.backend}), batch {args.batch_size}, tensors in | {p:.2f} | {p / e:.2f} (target >= 1.45) |")
        if torch_rates:
            t = statistics.median(torch_rates)
            print(f"| (a) Predictor torch backend (inference_mode, channels-last), batch {args.batch_size} | {t:.2f} | {t / e:.2f} |")
        print(f"| (a') same + attention up-sampled to 2048x1536 | {pf:.2f} | {pf / e:.2f}; {pf / p:.3f} of (a) |")
        print(f"| (b) classify_paths, {args.images} 2048x1536 TIFFs | {f:.2f} | {f / p:.3f} of (a) Predictor (target >= 0.95) |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
