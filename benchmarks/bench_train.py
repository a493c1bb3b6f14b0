"""Training speed and peak memory on the CPU: which settings meet PERF.md's target?

Target (PERF.md): >= 1.2 images/s at <= 3 GB peak RSS, batch 5, 512x384,
``fa-gusa``, Adam, fp32. Reference: plain fp32 eager training gives 0.88 img/s
at 4.1 GB on the development machine.

Training steps run on random inputs and masks (random weights; the data
pipeline is left out: it costs ~25 ms per image against ~1 s in the network).

Speed: one process, one model, the configurations interleaved step by step
(the model's memory format, its dense layers' checkpointing flag and the
optimizer are switched between steps, outside the timing), medians over
rounds, each as a ratio to plain fp32 eager measured in the same process.
Memory: peak RSS is a per-process figure, so with ``--memory`` every
configuration also runs alone in a fresh process.

    python benchmarks/bench_train.py [--rounds 3] [--size 512x384] [--threads N] [--memory]
        [--configs cl+me+fused,bf16+cl+me+fused --baseline cl+me+fused]

The wall clock of a shared machine carries the other processes' load; the
CPU seconds this process spent per image (all threads) are printed beside it.

Configurations
--------------
plain             fp32, contiguous (NCHW), torch.optim.Adam (for-loop)      = baseline
cl+fused          channels-last memory format, fused Adam kernel
me+fused          gradient checkpointing of the dense layers (torchvision memory_efficient), fused Adam
cl+me+fused       all three: the CPU default in fp32
bf16+...          the same under bf16 autocast of the forward pass (fp32 weights, fused Adam on them)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

CONFIGS = {
    "plain": dict(cl=False, me=False, fused=False),
    "cl+fused": dict(cl=True, me=False, fused=True),
    "me+fused": dict(cl=False, me=True, fused=True),
    "cl+me+fused": dict(cl=True, me=True, fused=True),
    "bf16+fused": dict(cl=False, me=False, fused=True, bf16=True),
    "bf16+cl+fused": dict(cl=True, me=False, fused=True, bf16=True),
    "bf16+me+fused": dict(cl=False, me=True, fused=True, bf16=True),
    "bf16+cl+me+fused": dict(cl=True, me=True, fused=True, bf16=True),
}


def run_one(name: str, steps: int, size: tuple[int, int], threads: int | None) -> dict:
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
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=opts.get("bf16", False)):
            out = model(x)
        loss, _ = gusa_loss(_float(out), y, masks, has)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up (allocations, oneDNN primitive creation)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    peak_kb = _peak_rss_kb()
    return {"name": name, "img_s": 5 / statistics.median(times), "peak_rss_gb": peak_kb / 2**20, "threads": torch.get_num_threads()}


def _float(out):
    """The model's output with bf16 (autocast) tensors cast to fp32 for the loss, as the trainer does."""
    from gusa_core.models import ModelOutput

    logits, roi = out
    return ModelOutput(logits.float(), None if roi is None else roi.float())


def _peak_rss_kb() -> int:
    """This process's peak RSS in KiB: /proc's VmHWM (ru_maxrss can carry the parent's peak across fork+exec)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def speed_interleaved(names: list[str], rounds: int, size: tuple[int, int], threads: int | None):
    """Seconds per step of each configuration, interleaved in one process on one model.

    Returns wall-clock seconds and CPU seconds (this process, all threads) per
    step: on a shared machine the wall clock carries the other processes'
    load, the CPU time mostly the work of the step itself.
    """
    import torch

    if threads:
        torch.set_num_threads(threads)
    from gusa_core.losses import gusa_loss
    from gusa_core.models import build_model

    torch.manual_seed(0)
    model = build_model("fa-gusa", num_classes=4, pretrained="none").train()
    dense = [m for m in model.modules() if hasattr(m, "memory_efficient")]
    optims = {
        False: torch.optim.Adam(model.parameters(), lr=5e-5, weight_decay=1e-5),
        True: torch.optim.Adam(model.parameters(), lr=5e-5, weight_decay=1e-5, fused=True),
    }
    w, h = size
    x0 = torch.randn(5, 3, h, w)
    y = torch.arange(5) % 4
    masks = (torch.rand(5, 1, h, w) > 0.7).float()
    has = torch.tensor([True, True, False, True, True])

    def step(opts) -> float:
        fmt = torch.channels_last if opts["cl"] else torch.contiguous_format
        model.to(memory_format=fmt)
        for m in dense:
            m.memory_efficient = opts["me"]
        x = x0.contiguous(memory_format=fmt)
        opt = optims[opts["fused"]]
        t0, c0 = time.perf_counter(), time.process_time()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=opts.get("bf16", False)):
            out = model(x)
        loss, _ = gusa_loss(_float(out), y, masks, has)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return time.perf_counter() - t0, time.process_time() - c0

    for name in names:  # warm-up of every configuration
        step(CONFIGS[name])
    times: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            wall, used = step(CONFIGS[name])
            times[name].append(wall)
            cpu[name].append(used)
            print(f"round {r + 1} {name:>16}: {5 / wall:.3f} img/s, {used / 5:.2f} CPU s per image", flush=True)
    return times, cpu


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=2, help="steps per process in the --memory runs")
    p.add_argument("--size", default="512x384")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--configs", default=",".join(CONFIGS))
    p.add_argument("--baseline", default="plain", help="the configuration the ratios are taken against")
    p.add_argument("--memory", action="store_true", help="also measure peak RSS, one process per configuration")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    if args.one:
        print(json.dumps(run_one(args.one, args.steps, size, args.threads)), flush=True)
        return
    import torch

    names = args.configs.split(",")
    times, cpu = speed_interleaved(names, args.rounds, size, args.threads)
    mem: dict[str, float] = {}
    if args.memory:
        for name in names:
            cmd = [sys.executable, __file__, "--one", name, "--steps", str(args.steps), "--size", args.size]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
            if out.returncode != 0:
                print(f"{name}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
                continue
            rec = json.loads(out.stdout.strip().splitlines()[-1])
            mem[name] = rec["peak_rss_gb"]
            print(f"{name:>12}: peak RSS {rec['peak_rss_gb']:.2f} GB (alone: {rec['img_s']:.3f} img/s)", flush=True)
    from gusa_core.engines.cpu import cpu_info

    base = args.baseline if args.baseline in times else names[0]
    wall = {n: statistics.median(times[n]) for n in names}
    used = {n: statistics.median(cpu[n]) for n in names}
    print(
        f"\nfa-gusa training, batch 5, {args.size}, CPU: {cpu_info().summary()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; medians of {args.rounds} interleaved steps per configuration"
    )
    print(f"{'config':>16} {'img/s':>7} {'vs ' + base:>14} {'CPU s/img':>10} {'CPU vs ' + base:>18} {'peak RSS':>9}")
    for name in names:
        m = f"{mem[name]:.2f} GB" if name in mem else "-"
        print(f"{name:>16} {5 / wall[name]:7.3f} {wall[base] / wall[name]:13.2f}x {used[name] / 5:10.2f} "
              f"{used[base] / used[name]:17.2f}x {m:>9}")
    print("target (PERF.md): >= 1.2 img/s and <= 3 GB peak RSS at 512x384")

if __name__ == "__main__":
    main()
