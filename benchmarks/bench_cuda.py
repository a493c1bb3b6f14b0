"""Training and inference speed on a CUDA GPU: what do mixed precision and channels-last buy?

PERF.md asks for mixed precision and channels-last on CUDA; the trainer's
CUDA default is fp16 autocast with a gradient scaler, channels-last and fused
Adam (:func:`gusa_core.training.precision.choose_train_precision`), and the
predictor's is fp16 autocast, channels-last.

Each configuration runs on one ``fa-gusa`` model (random weights, random
inputs and masks), interleaved step by step in one process after a warm-up,
timed with ``torch.cuda.synchronize``; medians over the rounds, printed as
images/s and as a ratio to plain fp32 (NCHW, no autocast) measured in the
same process. Peak GPU memory comes from ``torch.cuda.max_memory_allocated``
in a separate pass per configuration.

    python benchmarks/bench_cuda.py [--size 512x384] [--batch 5 16] [--rounds 20]

Configurations
--------------
fp32        fp32, NCHW                                   = baseline
fp32+cl     fp32, channels-last
fp16+cl     fp16 autocast + gradient scaler, channels-last  (the trainer's CUDA default)
bf16+cl     bf16 autocast (no scaler), channels-last
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from gusa_core.engines import cpu_info

CONFIGS = {
    "fp32": dict(cl=False, dtype=None),
    "fp32+cl": dict(cl=True, dtype=None),
    "fp16+cl": dict(cl=True, dtype="float16"),
    "bf16+cl": dict(cl=True, dtype="bfloat16"),
}


def _size(text: str) -> tuple[int, int]:
    w, h = (int(v) for v in text.lower().split("x"))
    return w, h


def _sync(dev) -> None:
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize()


def train_steps(batch: int, size: tuple[int, int], rounds: int, configs: dict = CONFIGS, device: str = "cuda") -> dict[str, dict]:
    """Images/s and peak GPU memory of each configuration's training step."""
    import torch

    from gusa_core.losses import gusa_loss
    from gusa_core.models import ModelOutput, build_model

    torch.manual_seed(0)
    dev = torch.device(device)
    model = build_model("fa-gusa", num_classes=4, pretrained="none").to(dev).train()
    # one optimizer per memory format: fused Adam wants its moments in the parameters' layout
    optims = {cl: torch.optim.Adam(model.parameters(), lr=5e-5, weight_decay=1e-5, fused=True) for cl in (False, True)}
    scaler = torch.amp.GradScaler(dev.type)
    w, h = size
    x0 = torch.randn(batch, 3, h, w, device=dev)
    y = torch.arange(batch, device=dev) % 4
    masks = (torch.rand(batch, 1, h, w, device=dev) > 0.7).float()
    has = torch.ones(batch, dtype=torch.bool, device=dev)

    def step(opts) -> float:
        fmt = torch.channels_last if opts["cl"] else torch.contiguous_format
        model.to(memory_format=fmt)
        x = x0.contiguous(memory_format=fmt)
        opt = optims[opts["cl"]]
        dtype = getattr(torch, opts["dtype"]) if opts["dtype"] else None
        _sync(dev)
        t0 = time.perf_counter()
        with torch.autocast(dev.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            logits, roi = model(x)
        loss, _ = gusa_loss(ModelOutput(logits.float(), None if roi is None else roi.float()), y, masks, has)
        opt.zero_grad(set_to_none=True)
        if opts["dtype"] == "float16":
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        _sync(dev)
        return time.perf_counter() - t0

    out: dict[str, dict] = {}
    for name, opts in configs.items():  # warm-up (cuDNN autotuning) and peak memory, one configuration at a time
        for _ in range(3):
            step(opts)
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        step(opts)
        peak = torch.cuda.max_memory_allocated() / 2**30 if dev.type == "cuda" else float("nan")
        out[name] = {"peak_gb": peak, "times": []}
    for r in range(rounds):
        for name in (list(configs) if r % 2 == 0 else list(configs)[::-1]):
            out[name]["times"].append(step(configs[name]))
    for rec in out.values():
        rec["img_s"] = batch / statistics.median(rec.pop("times"))
    return out


def infer_steps(batch: int, size: tuple[int, int], rounds: int, configs: dict = CONFIGS, device: str = "cuda") -> dict[str, dict]:
    """Images/s of the forward pass (inference mode, logits and RoI map) per configuration."""
    import torch

    from gusa_core.models import build_model

    torch.manual_seed(0)
    dev = torch.device(device)
    model = build_model("fa-gusa", num_classes=4, pretrained="none").to(dev).eval()
    w, h = size
    x0 = torch.randn(batch, 3, h, w, device=dev)
    names = list(configs)

    def step(opts) -> float:
        fmt = torch.channels_last if opts["cl"] else torch.contiguous_format
        model.to(memory_format=fmt)
        x = x0.contiguous(memory_format=fmt)
        dtype = getattr(torch, opts["dtype"]) if opts["dtype"] else None
        _sync(dev)
        t0 = time.perf_counter()
        with torch.inference_mode(), torch.autocast(dev.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            logits, roi = model(x)
            logits.float().softmax(1).cpu()
        _sync(dev)
        return time.perf_counter() - t0

    for name in names:
        for _ in range(3):
            step(configs[name])
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            times[name].append(step(configs[name]))
    return {n: {"img_s": batch / statistics.median(t)} for n, t in times.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="512x384")
    p.add_argument("--batch", type=int, nargs="+", default=[5, 16])
    p.add_argument("--infer-batch", type=int, default=32)
    p.add_argument("--rounds", type=int, default=20)
    args = p.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("no CUDA device: this benchmark needs a GPU")
        return 1
    torch.backends.cudnn.benchmark = True
    size = _size(args.size)
    print(f"GPU: {torch.cuda.get_device_name(0)}  |  CPU: {cpu_info().model}  |  torch {torch.__version__}, "
          f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")
    for batch in args.batch:
        res = train_steps(batch, size, args.rounds)
        base = res["fp32"]["img_s"]
        print(f"\ntraining step, fa-gusa, {args.size}, batch {batch}, fused Adam ({args.rounds} interleaved rounds)")
        for name, rec in res.items():
            print(f"  {name:>8}: {rec['img_s']:8.1f} img/s  x{rec['img_s'] / base:4.2f} of fp32   "
                  f"peak {rec['peak_gb']:.2f} GB")
    res = infer_steps(args.infer_batch, size, args.rounds)
    base = res["fp32"]["img_s"]
    print(f"\ninference (logits + RoI map), fa-gusa, {args.size}, batch {args.infer_batch}")
    for name, rec in res.items():
        print(f"  {name:>8}: {rec['img_s']:8.1f} img/s  x{rec['img_s'] / base:4.2f} of fp32")
    return 0


if __name__ == "__main__":
    sys.exit(main())
