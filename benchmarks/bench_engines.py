"""Inference engines on this CPU: eager torch, onnxruntime, OpenVINO fp32/bf16/int8, and the default Predictor.

``fa-gusa`` at 512x384 with random weights, batches of 1 and 4 of the same
pre-processed input, against eager fp32 ``no_grad`` batch 1 (= 1.00):

- onnxruntime (:class:`gusa_core.engines.OnnxRuntimeEngine`);
- OpenVINO fp32 and, where the CPU has AMX or AVX-512 BF16, bf16, each with
  the LATENCY hint (one stream over every core) and the THROUGHPUT hint
  (several streams, one image per request);
- OpenVINO int8: the model quantised by NNCF (:mod:`gusa_core.engines.int8`),
  calibrated on generated tissue, with the agreement gate's verdict against
  fp32 on other generated tissue (when ``nncf`` is installed);
- the default :class:`gusa_core.inference.Predictor` of a run folder holding
  the same weights (``backend="auto"``: engine, precision, agreement check and
  per-call stream choice its own), timed through ``predict_prepared``
  (softmax and attention maps included) and reported as a ratio of the best
  of {OpenVINO fp32/bf16 with either hint, onnxruntime} at each batch size
  (target >= 0.95).

Also: time to the first prediction of a run never predicted before (export,
compile, the bf16 agreement check and one image) and of the next start, and
the largest |logit| difference of each engine from eager fp32. Rounds are
interleaved, the order rotating each round, each measurement after one
untimed call (the previous contender's threads can still be spinning),
medians reported; only ratios
measured in this one process are meaningful, and a machine shared with
other work (see the load average printed) makes them noisy.

Run: ``.venv/bin/python benchmarks/bench_engines.py [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gusa_core.engines import OnnxRuntimeEngine, OpenVinoEngine, cpu_info  # noqa: E402
from gusa_core.engines.agreement import check_agreement, softmax  # noqa: E402
from gusa_core.engines.int8 import nncf_available, quantize_model  # noqa: E402

SIZE = (512, 384)
CLASSES = ["Normal", "Benign", "InSitu", "Invasive"]


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _tissue(n_per_class: int, seed: int) -> np.ndarray:
    from gusa_core.demo import generate_tissue
    from gusa_core.preprocess import preprocess_array
    from gusa_core.stain import ReinhardNormalizer

    norm = ReinhardNormalizer.default()
    return np.stack([preprocess_array(generate_tissue(c, size=SIZE, rng=seed + 100 * i + j)[0], SIZE, norm)
                     for i, c in enumerate(CLASSES) for j in range(n_per_class)])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (median reported)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--no-int8", action="store_true", help="skip the NNCF int8 quantisation")
    args = parser.parse_args(argv)

    import onnxruntime
    import openvino
    import torch

    from gusa_core.checkpoint import save_model
    from gusa_core.inference import Predictor
    from gusa_core.inference.export import export_model_onnx
    from gusa_core.models import build_model

    info = cpu_info()
    torch.set_num_threads(info.cores)
    print(f"CPU: {info.summary()}")
    print(f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, openvino {openvino.get_version()}")
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())} on {info.cores} cores")

    torch.manual_seed(0)
    model = build_model("fa-gusa", num_classes=4, pretrained="none").eval()
    w, h = SIZE
    x = np.random.default_rng(0).standard_normal((max(args.batches), 3, h, w)).astype(np.float32)
    with torch.no_grad():
        ref_logits = model(torch.from_numpy(x)).logits.numpy()

    bf16 = info.amx_bf16 or info.avx512_bf16
    configs = [("onnxruntime", "fp32", None)]
    for prec in ["fp32"] + (["bf16"] if bf16 else []):
        for hint in ("LATENCY", "THROUGHPUT"):
            configs.append(("openvino", prec, hint))

    with tempfile.TemporaryDirectory(prefix="bench-engines-") as tmp:
        tmp = Path(tmp)
        first: dict[str, tuple[float, float]] = {}
        engines = {}
        for engine_name, prec, hint in configs:
            label = engine_name if hint is None else f"openvino {prec} {hint.lower()}"
            onnx = tmp / label.replace(" ", "-") / "model.onnx"

            def build():
                if engine_name == "onnxruntime":
                    return OnnxRuntimeEngine(onnx)
                return OpenVinoEngine(onnx, precision=prec, hint=hint)

            t0 = time.perf_counter()
            export_model_onnx(model, onnx, input_size=SIZE)
            engine = build()
            engine.run(x[:1])
            cold = time.perf_counter() - t0
            t0 = time.perf_counter()
            engine = build()  # ONNX file on disk, OpenVINO's cache filled
            engine.run(x[:1])
            first[label] = (cold, time.perf_counter() - t0)
            engines[label] = engine
            if prec != engine.precision:
                print(f"  note: {label} compiled as {engine.precision}")

        extra = {}  # engines outside the set of "best": int8
        if not args.no_int8:
            if not nncf_available():
                print("int8: nncf is not installed (pip install 'nncf>=2.12'): no int8 row")
            else:
                onnx = tmp / "int8" / "model.onnx"
                export_model_onnx(model, onnx, input_size=SIZE)
                t0 = time.perf_counter()
                xml = quantize_model(onnx, _tissue(4, 500), onnx.parent / "int8.xml")
                quantise_s = time.perf_counter() - t0
                t0 = time.perf_counter()
                engine = OpenVinoEngine(xml, precision="int8")
                engine.run(x[:1])
                first["openvino int8 auto"] = (quantise_s + time.perf_counter() - t0, 0.0)
                check = _tissue(2, 0)
                fp32 = engines["openvino fp32 latency"]
                ok, detail = check_agreement(softmax(fp32.run(check)["logits"]), softmax(engine.run(check)["logits"]))
                print(f"int8 (NNCF, calibrated on 16 generated tissue images, {quantise_s:.0f} s): agreement gate "
                      f"{'PASSED' if ok else 'FAILED'} on 8 other generated images: {detail}")
                extra["openvino int8 auto"] = engine

        # the product's own path: a run folder never predicted before, the default backend
        meta = {"variant": "fa-gusa", "class_names": CLASSES, "input_size": list(SIZE), "fold": 0, "folds": 1,
                "validation_ids": []}
        run = tmp / "run"
        save_model(run / "fold-0", model, meta)
        (run / "run.json").write_text('{"variant": "fa-gusa", "folds": 1}')
        image = np.random.default_rng(2).integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        t0 = time.perf_counter()
        predictor = Predictor.from_run(run)
        predictor.predict([image])
        predictor_first = time.perf_counter() - t0
        t0 = time.perf_counter()
        Predictor.from_run(run).predict([image])
        predictor_again = time.perf_counter() - t0
        prepared = [((h, w), [x[i]]) for i in range(len(x))]

        def eager():
            with torch.no_grad():
                model(torch.from_numpy(x[:1]))

        contenders = {**engines, **extra}
        timings: dict[tuple[str, int], list[float]] = {}
        eager()
        for b in args.batches:  # warm-up per batch shape (and OpenVINO's streams compiled on demand)
            for engine in contenders.values():
                engine.run(x[:b])
            predictor.predict_prepared(prepared[:b])
        for r in range(args.rounds):
            eager()
            timings.setdefault(("eager torch fp32", 1), []).append(2 / _timed(lambda: (eager(), eager())))
            for b in args.batches:
                order = [*contenders, "default Predictor"]
                k = r % len(order)
                for label in order[k:] + order[:k]:  # rotate: no contender always runs first
                    if label == "default Predictor":
                        fn = lambda: predictor.predict_prepared(prepared[:b])  # noqa: E731
                    else:
                        fn = lambda: contenders[label].run(x[:b])  # noqa: E731
                    # one call untimed first: the previous contender's threads may still spin (OpenMP,
                    # TBB) and this one's may have gone to sleep; then the mean of two calls
                    fn()
                    timings.setdefault((label, b), []).append(2 * b / _timed(lambda: (fn(), fn())))

        base = statistics.median(timings[("eager torch fp32", 1)])
        diffs = {label: float(np.abs(e.run(x)["logits"] - ref_logits).max()) for label, e in contenders.items()}
        print(f"\nfa-gusa {w}x{h}, random weights, {args.rounds} interleaved rounds, medians (img/s)")
        print(f"{'engine':<30}{'batch':>6}{'img/s':>9}{'ratio':>8}{'max|dlogit|':>13}{'first cold':>12}{'cached':>9}")
        print(f"{'eager torch fp32':<30}{1:>6}{base:>9.2f}{1.0:>8.2f}{0.0:>13.1e}{'':>12}{'':>9}")
        rates = {}
        for label in contenders:
            for b in args.batches:
                rate = statistics.median(timings[(label, b)])
                rates[(label, b)] = rate
                cold, warm = first[label]
                cached = f"{warm:>8.2f}s" if warm else f"{'':>9}"
                print(f"{label:<30}{b:>6}{rate:>9.2f}{rate / base:>8.2f}{diffs[label]:>13.1e}{cold:>11.2f}s{cached}")
        engine_info = predictor.engine_info
        for b in args.batches:
            rate = statistics.median(timings[("default Predictor", b)])
            print(f"{'default Predictor':<30}{b:>6}{rate:>9.2f}{rate / base:>8.2f}{'':>13}"
                  f"{predictor_first:>11.2f}s{predictor_again:>8.2f}s")
        print(f"\ndefault Predictor: {engine_info.backend} {engine_info.precision}; {engine_info.reason}")
        for b in args.batches:
            best_label, best = max(((lab, r) for (lab, bb), r in rates.items() if bb == b and lab in engines),
                                   key=lambda t: t[1])
            ours = statistics.median(timings[("default Predictor", b)])
            print(f"batch {b}: default Predictor {ours:.2f} img/s = {ours / best:.2f} of the best engine "
                  f"({best_label}, {best:.2f} img/s; target >= 0.95)")
        print(f"time to first prediction of a run never predicted before: {predictor_first:.1f} s "
              f"(export + compile + agreement check + 1 image); next start {predictor_again:.1f} s")
    print(f"load average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
