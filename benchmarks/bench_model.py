"""Speed of the proposed model (fa-gusa, 512x384, random weights) on the CPU.

Prints images per second and ratios against eager fp32 ``no_grad`` batch 1,
measured in the same process in interleaved rounds (medians):

- eager fp32, ``no_grad``, batch 1 (the baseline, 1.00)
- ``inference_mode`` + channels-last, batch 4
- ONNX export → onnxruntime (all graph optimisations), batch 4; export time too
- a training step (fp32, batch 5, Adam), contiguous and channels-last, with peak RSS

Usage: ``python benchmarks/bench_model.py [--rounds 3] [--threads N]``. Keep
the machine otherwise quiet; the whole run takes about 3-4 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _rate(fn, images: int, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return images * repeats / (time.perf_counter() - start)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args(argv)

    import torch

    from gusa_core.inference.export import OnnxModel, export_model_onnx
    from gusa_core.losses import gusa_loss
    from gusa_core.models import build_model

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    width, height = 512, 384
    model = build_model("fa-gusa").eval()
    x1 = torch.randn(1, 3, height, width)
    x4 = torch.randn(4, 3, height, width)

    tmp = tempfile.TemporaryDirectory()
    t0 = time.perf_counter()
    onnx_path = export_model_onnx(model, Path(tmp.name) / "fa-gusa.onnx", input_size=(width, height))
    export_s = time.perf_counter() - t0
    ort = OnnxModel(onnx_path, threads=args.threads)
    x4_np = x4.numpy()

    model_cl = build_model("fa-gusa").eval().to(memory_format=torch.channels_last)
    model_cl.load_state_dict(model.state_dict())
    x4_cl = x4.contiguous(memory_format=torch.channels_last)

    def eager():
        with torch.no_grad():
            model(x1)

    def inference_cl():
        with torch.inference_mode():
            model_cl(x4_cl)

    def onnx():
        ort(x4_np)

    def make_train(channels_last: bool):
        net = build_model("fa-gusa").train()
        xb = torch.randn(5, 3, height, width)
        if channels_last:
            net = net.to(memory_format=torch.channels_last)
            xb = xb.contiguous(memory_format=torch.channels_last)
        labels = torch.tensor([0, 1, 2, 3, 0])
        masks = (torch.rand(5, 1, height, width) > 0.5).float()
        has = torch.tensor([True, True, False, True, True])
        opt = torch.optim.Adam(net.parameters(), lr=5e-5, weight_decay=1e-5)

        def step():
            opt.zero_grad(set_to_none=True)
            loss, _ = gusa_loss(net(xb), labels, masks, has)
            loss.backward()
            opt.step()

        return step

    train_plain, train_cl = make_train(False), make_train(True)
    cases = {
        "eager fp32 no_grad, batch 1": (eager, 1, 3),
        "inference_mode + channels-last, batch 4": (inference_cl, 4, 1),
        "onnxruntime, batch 4": (onnx, 4, 1),
        "train step fp32 batch 5 (contiguous)": (train_plain, 5, 1),
        "train step fp32 batch 5 (channels-last)": (train_cl, 5, 1),
    }
    rates = {name: [] for name in cases}
    for r in range(args.rounds):
        for name, (fn, images, repeats) in cases.items():
            rates[name].append(_rate(fn, images, repeats))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)

    base = statistics.median(rates["eager fp32 no_grad, batch 1"])
    print(f"fa-gusa {width}x{height}, random weights, torch {torch.__version__}, {args.threads} threads, "
          f"{args.rounds} interleaved rounds, medians")
    for name, values in rates.items():
        med = statistics.median(values)
        print(f"  {name:<42} {med:6.2f} img/s  ({med / base:4.2f}x)")
    print(f"  ONNX export time                           {export_s:6.1f} s")
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"  peak RSS of the process (training incl.)   {peak_gb:6.2f} GB")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
