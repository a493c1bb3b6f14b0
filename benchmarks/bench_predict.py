"""Prediction speed: the default Predictor against eager PyTorch, and a folder against the model alone.

(a) model throughput on already pre-processed tensors: ``fa-gusa`` at 512x384
    with random weights, eager fp32 ``no_grad`` batch 1 (= 1.00) against the
    default :class:`gusa_core.inference.Predictor` (its own engine, precision
    and stream choice) at the ``classify_paths`` batch size, one batch after
    the other through ``predict_prepared`` (the model-only rate), and with
    the next batch queued before the last is collected (``submit_prepared``).
(b) folder throughput: BACH-size (2048x1536) TIFFs classified by
    :func:`gusa_core.inference.classify_paths` (read, shrink, Reinhard,
    network, records), against (a)'s model-only rate. Target: >= 0.95.
(c) the CPU work per image of (b)'s pre-processing, in ms of CPU time (one
    core, median), step by step, next to the steps as they were before
    (full decode, one INTER_AREA resize, Reinhard rounded to uint8 in fresh
    arrays, numpy normalisation).

Rounds are interleaved (model-only and folder swap places every round) and
medians reported; a folder of 48 keeps the start (the first batch's decode,
before the network has work) from weighing like a 16-image folder's; only ratios measured in this one
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


def _queued_rate(predictor: Predictor, prepared: list, batch: int, n: int) -> float:
    t = time.perf_counter()
    waiting = None
    for _ in range(0, n, batch):
        queued = predictor.submit_prepared(prepared[:batch])
        if waiting is not None:
            waiting()
        waiting = queued
    waiting()
    return n / (time.perf_counter() - t)


def _cpu_ms(fn, n: int = 15) -> float:
    fn()
    times = []
    for _ in range(n):
        t = time.thread_time()
        fn()
        times.append(time.thread_time() - t)
    return 1000 * statistics.median(times)


def _prep_profile(path: Path, normalizer) -> list[tuple[str, float, float]]:
    """CPU ms per image of each step, now and as it was (one thread: OpenCV's own threads off)."""
    import cv2

    from gusa_core.imageio import read_image, read_image_for_size, resize_image, shrink_image
    from gusa_core.preprocess import _INV_STD, _MEAN, preprocess_array, to_array

    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)  # thread_time sees this thread only
    try:
        full = read_image(path)
        small = resize_image(full, SIZE)
        normed = normalizer.transform(small)

        def numpy_norm():
            x = normed.transpose(2, 0, 1).astype(np.float32)
            x -= _MEAN[:, None, None]
            x *= _INV_STD[:, None, None]

        rows = [
            ("read (memory map / full decode)", _cpu_ms(lambda: read_image_for_size(path, SIZE)),
             _cpu_ms(lambda: read_image(path))),
            ("shrink to 512x384 (halvings / INTER_AREA)",
             _cpu_ms(lambda: shrink_image(read_image_for_size(path, SIZE)[0], SIZE)) - _cpu_ms(
                 lambda: read_image_for_size(path, SIZE)), _cpu_ms(lambda: resize_image(full, SIZE))),
            ("Reinhard + normalise at 512x384 (float into one OpenCV pass, reused arrays / uint8, then numpy)",
             _cpu_ms(lambda: preprocess_array(small, SIZE, normalizer)),
             _cpu_ms(lambda: normalizer.transform(small)) + _cpu_ms(numpy_norm)),
        ]
    finally:
        cv2.setNumThreads(threads)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=48, help="images per measurement (and TIFFs in the folder)")
    ap.add_argument("--eager-images", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=5)
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
        print(f"Predictor set-up incl. ONNX export and agreement check {time.perf_counter() - t:.1f} s, "
              f"batch {args.batch_size}")
        from gusa_core.imageio import read_image

        image = read_image(paths[0])
        shape, tensors = predictor.prepare(image)
        # (a) the model alone: attention left at the input size (no up-sampling to the image)
        model_only = [((SIZE[1], SIZE[0]), tensors)] * args.batch_size
        # the same with the attention up-sampled to 2048x1536, as an overlay needs
        full_res = [(shape, tensors)] * args.batch_size
        model = build_model("fa-gusa", num_classes=4, pretrained="none").eval()
        x1 = torch.from_numpy(np.ascontiguousarray(tensors[0][None]))
        torch_pred = Predictor.from_run(run, backend="torch") if args.torch_backend else None

        _eager_rate(model, x1, 1)  # warm-up
        _predictor_rate(predictor, model_only, args.batch_size, args.batch_size)
        eager, pred, queued, pred_full, folder, torch_rates = [], [], [], [], [], []
        for r in range(args.rounds):
            eager.append(_eager_rate(model, x1, args.eager_images))
            # model-only and folder side by side, their order swapped every round
            pair = [("p", lambda: _predictor_rate(predictor, model_only, args.batch_size, args.images)),
                    ("f", lambda: _folder_rate(predictor, paths, args.batch_size))]
            for key, fn in (pair if r % 2 == 0 else pair[::-1]):
                (pred if key == "p" else folder).append(fn())
            queued.append(_queued_rate(predictor, model_only, args.batch_size, args.images))
            pred_full.append(_predictor_rate(predictor, full_res, args.batch_size, args.images))
            if torch_pred is not None:
                torch_rates.append(_predictor_rate(torch_pred, model_only, args.batch_size, args.eager_images))
            print(
                f"  round {r + 1}: eager {eager[-1]:.2f}  predictor {pred[-1]:.2f}  queued {queued[-1]:.2f}  "
                f"+full-res attention {pred_full[-1]:.2f}  folder {folder[-1]:.2f} img/s",
                flush=True,
            )
        e, p, q, pf, f = (statistics.median(v) for v in (eager, pred, queued, pred_full, folder))
        info = predictor.engine_info
        print(f"\nCPU: {cpu_info().summary()}; torch {torch.__version__}, {args.threads} threads; "
              f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
        print(f"Predictor default: {info.backend} {info.precision}; {info.reason}")
        print("| what | img/s | ratio |")
        print("| --- | --- | --- |")
        print(f"| (a) eager fp32 no_grad, batch 1 | {e:.2f} | 1.00 |")
        print(f"| (a) Predictor default ({info.backend} {info.precision}), batch {args.batch_size}, tensors in "
              f"(model-only) | {p:.2f} | {p / e:.2f} |")
        print(f"| (a) same, next batch queued before the last is collected | {q:.2f} | {q / e:.2f}; "
              f"{q / p:.3f} of model-only |")
        if torch_rates:
            t = statistics.median(torch_rates)
            print(f"| (a) Predictor torch backend (inference_mode, channels-last), batch {args.batch_size} | {t:.2f} | {t / e:.2f} |")
        print(f"| (a') model-only + attention up-sampled to 2048x1536 | {pf:.2f} | {pf / e:.2f}; {pf / p:.3f} of model-only |")
        paired = statistics.median(b / a for a, b in zip(pred, folder))
        print(f"| (b) classify_paths, {args.images} 2048x1536 TIFFs | {f:.2f} | {f / p:.3f} of model-only "
              f"(target >= 0.95; median of the rounds' own ratios {paired:.3f}); {f / q:.3f} of queued |")
        print("\n(c) CPU ms per image (one core, median) | now | before |")
        print("| --- | --- | --- |")
        rows = _prep_profile(paths[0], ReinhardNormalizer.default())  # the run's reference (_make_run)
        for name, now, before in rows:
            print(f"| {name} | {now:.2f} | {before:.2f} |")
        print(f"| total | {sum(r[1] for r in rows):.2f} | {sum(r[2] for r in rows):.2f} |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
