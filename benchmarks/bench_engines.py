"""Inference engines on this CPU: eager torch, onnxruntime and OpenVINO fp32/bf16.

``fa-gusa`` at 512x384 with random weights, batches of 1 and 4 of the same
pre-processed input, against eager fp32 ``no_grad`` batch 1 (= 1.00):

- onnxruntime, as the product's default predictor runs it today
  (:class:`gusa_core.engines.OnnxRuntimeEngine`, same session options);
- OpenVINO fp32 and, where the CPU has AMX or AVX-512 BF16, bf16, each with
  the LATENCY and the THROUGHPUT performance hint, and LATENCY on one
  thread (whether a second thread helps at all on this machine).

Also: time to the first prediction (ONNX export + compile + one batch-1 call,
cold and with OpenVINO's cache filled), and the largest |logit| difference of
each engine from eager fp32. Rounds are interleaved, medians reported; only
ratios measured in this one process are meaningful, and a machine shared with
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

from gusa_core.engines import OnnxRuntimeEngine, OpenVinoEngine, choose_engine, cpu_info  # noqa: E402

SIZE = (512, 384)


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (median reported)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--no-throughput", action="store_true", help="skip the THROUGHPUT-hint variants")
    args = parser.parse_args(argv)

    import onnxruntime
    import openvino
    import torch

    from gusa_core.inference.export import export_model_onnx
    from gusa_core.models import build_model

    info = cpu_info()
    cores = info.cores
    torch.set_num_threads(cores)
    name, precision, reason = choose_engine(info)
    print(f"CPU: {info.summary()}")
    print(f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, openvino {openvino.get_version()}")
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())} on {cores} cores")
    print(f"default engine: {name} {precision} ({reason})")

    torch.manual_seed(0)
    model = build_model("fa-gusa", num_classes=4, pretrained="none").eval()
    w, h = SIZE
    x = np.random.default_rng(0).standard_normal((max(args.batches), 3, h, w)).astype(np.float32)
    with torch.no_grad():
        ref_logits = model(torch.from_numpy(x)).logits.numpy()

    bf16 = info.amx_bf16 or info.avx512_bf16
    configs = [("onnxruntime", "fp32", None, None)]
    for prec in ["fp32"] + (["bf16"] if bf16 else []):
        for hint in ["LATENCY"] + ([] if args.no_throughput else ["THROUGHPUT"]):
            configs.append(("openvino", prec, hint, None))
    # does a second thread help at all here (another process on the core, or SMT siblings)?
    configs.append(("openvino", "bf16" if bf16 else "fp32", "LATENCY", 1))

    with tempfile.TemporaryDirectory(prefix="bench-engines-") as tmp:
        tmp = Path(tmp)
        first: dict[str, tuple[float, float]] = {}
        engines = {}
        for engine_name, prec, hint, threads in configs:
            label = engine_name if hint is None else f"openvino {prec} {hint.lower()}"
            label += "" if threads is None else f" {threads} thread"
            folder = tmp / label.replace(" ", "-")
            onnx = folder / "model.onnx"

            def build():
                if engine_name == "onnxruntime":
                    return OnnxRuntimeEngine(onnx)
                return OpenVinoEngine(onnx, precision=prec, hint=hint, threads=threads)

            t0 = time.perf_counter()
            export_model_onnx(model, onnx, input_size=SIZE)
            engine = build()
            engine.run(x[:1])
            cold = time.perf_counter() - t0
            t0 = time.perf_counter()
            engine = build()  # ONNX file on disk, OpenVINO's cache filled
            engine.run(x[:1])
            warm = time.perf_counter() - t0
            first[label] = (cold, warm)
            engines[label] = engine
            if prec != engine.precision:
                print(f"  note: {label} compiled as {engine.precision}")

        timings: dict[tuple[str, int], list[float]] = {}

        def eager():
            with torch.no_grad():
                model(torch.from_numpy(x[:1]))

        eager()
        for r in range(args.rounds):
            timings.setdefault(("eager torch fp32", 1), []).append(1 / _timed(eager))
            for label, engine in engines.items():
                for b in args.batches:
                    if r == 0:
                        engine.run(x[:b])  # warm-up per batch shape
                    timings.setdefault((label, b), []).append(b / _timed(lambda: engine.run(x[:b])))

        base = statistics.median(timings[("eager torch fp32", 1)])
        diffs = {label: float(np.abs(e.run(x)["logits"] - ref_logits).max()) for label, e in engines.items()}
        print(f"\nfa-gusa {w}x{h}, random weights, {args.rounds} interleaved rounds, medians (img/s)")
        print(f"{'engine':<30}{'batch':>6}{'img/s':>9}{'ratio':>8}{'max|dlogit|':>13}{'first cold':>12}{'cached':>9}")
        print(f"{'eager torch fp32':<30}{1:>6}{base:>9.2f}{1.0:>8.2f}{0.0:>13.1e}{'':>12}{'':>9}")
        rates = {}
        for label in engines:
            for b in args.batches:
                rate = statistics.median(timings[(label, b)])
                rates[(label, b)] = rate
                cold, warm = first[label]
                print(f"{label:<30}{b:>6}{rate:>9.2f}{rate / base:>8.2f}{diffs[label]:>13.1e}"
                      f"{cold:>11.2f}s{warm:>8.2f}s")
        default = "onnxruntime" if name == "onnxruntime" else f"openvino {precision} throughput"
        for b in args.batches:
            best_label, best = max(((lab, r) for (lab, bb), r in rates.items() if bb == b), key=lambda t: t[1])
            ours = rates.get((default, b), float("nan"))
            print(f"batch {b}: default ({default}) {ours:.2f} img/s = {ours / best:.2f} of the best ({best_label})")
    print(f"load average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
