"""Training speed and peak memory on the CPU: which settings meet PERF.md's target?

Target (PERF.md): >= 1.2 images/s at <= 3 GB peak RSS, batch 5, 512x384,
``fa-gusa``, Adam, fp32. Reference: plain fp32 eager training gives 0.88 img/s
at 4.1 GB on the development machine.

Each configuration runs one training step after another on random inputs and
masks (random weights; the data pipeline is left out: it costs ~15 ms per
image against ~1 s in the network). Peak RSS is a per-process figure, so every
configuration runs in its own process; the processes are interleaved in
rounds and the medians compared, each as a ratio to the plain fp32 eager
baseline measured in the same rounds.

    python benchmarks/bench_train.py [--rounds 2] [--steps 2] [--size 512x384] [--threads N]

Configurations
--------------
plain           fp32, contiguous (NCHW), torch.optim.Adam (for-loop)      = baseline
fused           + fused Adam kernel
cl              + channels-last memory format
me              + gradient checkpointing of the dense layers (torchvision memory_efficient)
me+fused        + both
cl+me+fused     + all three
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

CONFIGS = {
    "plain": dict(cl=False, me=False, fused=False),
    "fused": dict(cl=False, me=False, fused=True),
    "cl+fused": dict(cl=True, me=False, fused=True),
    "me+fused": dict(cl=False, me=True, fused=True),
    "cl+me+fused": dict(cl=True, me=True, fused=True),
}


def run_one(name: str, steps: int, size: tuple[int, int], threads: int | None) -> dict:
    import resource

    import torch

    if threads:
        torch.set_num_threads(threads)
    from gusa_core.losses import gusa_loss
    from gusa_core.models import build_model

    opts = CONFIGS[name]
    torch.manual_seed(0)
    model = build_model("fa-gusa", num_classes=4, pretrained="none")
    if opts["me"]:
        for m in model.modules():
            if hasattr(m, "memory_efficient"):
                m.memory_efficient = True
    if opts["cl"]:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=5e-5, weight_decay=1e-5, **({"fused": True} if opts["fused"] else {}))
    w, h = size
    x = torch.randn(5, 3, h, w)
    if opts["cl"]:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.arange(5) % 4
    masks = (torch.rand(5, 1, h, w) > 0.7).float()
    has = torch.tensor([True, True, False, True, True])

    def step():
        loss, _ = gusa_loss(model(x), y, masks, has)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up (allocations, oneDNN primitive creation)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"name": name, "img_s": 5 / statistics.median(times), "peak_rss_gb": peak_kb / 2**20, "threads": torch.get_num_threads()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--size", default="512x384")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--configs", default=",".join(CONFIGS))
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    if args.one:
        print(json.dumps(run_one(args.one, args.steps, size, args.threads)), flush=True)
        return
    names = args.configs.split(",")
    results: dict[str, list[dict]] = {n: [] for n in names}
    for r in range(args.rounds):
        for name in names:
            cmd = [sys.executable, __file__, "--one", name, "--steps", str(args.steps), "--size", args.size]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
            if out.returncode != 0:
                print(f"{name}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
                continue
            rec = json.loads(out.stdout.strip().splitlines()[-1])
            results[name].append(rec)
            print(f"round {r + 1} {name:>12}: {rec['img_s']:.3f} img/s, peak RSS {rec['peak_rss_gb']:.2f} GB", flush=True)
    base = statistics.median(x["img_s"] for x in results["plain"]) if results.get("plain") else None
    print(f"\nfa-gusa training, batch 5, {args.size}, fp32 CPU, {results[names[0]][0]['threads'] if results[names[0]] else '?'} threads; "
          f"medians of {args.rounds} interleaved rounds x {args.steps} steps")
    print(f"{'config':>12} {'img/s':>7} {'vs plain':>9} {'peak RSS':>9}  target >= 1.2 img/s, <= 3 GB")
    for name in names:
        if not results[name]:
            continue
        speed = statistics.median(x["img_s"] for x in results[name])
        mem = max(x["peak_rss_gb"] for x in results[name])
        ratio = f"{speed / base:.2f}x" if base else "-"
        ok = "meets both" if speed >= 1.2 and mem <= 3.0 else ("memory ok" if mem <= 3.0 else "")
        print(f"{name:>12} {speed:7.3f} {ratio:>9} {mem:8.2f}G  {ok}")


if __name__ == "__main__":
    main()
