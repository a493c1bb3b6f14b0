"""The numeric precision a training run computes in, and why (torch-free).

The weights, the optimizer and the loss stay fp32 in every case ("master
weights"); only the network's forward pass (and, through autograd, its
backward pass) runs under autocast:

- CUDA: ``auto`` is fp16 autocast with a gradient scaler (on an H200 at
  batch 5 it ran at 0.98x the speed of bf16 autocast and the same memory,
  ``benchmarks/bench_cuda.py``; it also runs on GPUs without bf16);
  ``bf16`` is bf16 autocast without a scaler where the GPU has bf16
  (compute capability 8.0 and later), fp16 with a scaler elsewhere;
  ``fp32`` turns autocast off.
- CPU, ``auto``: bf16 autocast where the CPU has AMX-BF16 (Intel Sapphire
  Rapids and later: 2.29x fp32 per training step on a 2-core Xeon,
  ``PERF.md``) or AVX-512 BF16 (AMD Zen 4/5, Intel Cooper Lake: see
  :data:`AVX512_BF16_TRAINS_BF16`); fp32 elsewhere (without a bf16 dot
  product PyTorch emulates bf16, ~130x slower on an AVX2-only EPYC).
- CPU, ``fp32`` or ``bf16``: as asked (bf16 on a CPU without bf16
  instructions is allowed but said to be slow).
- Other devices (MPS): fp32.

The capability facts come from :func:`gusa_core.engines.cpu.cpu_info`, as
for inference; the rule for AVX-512 BF16 without AMX is training's own
(PyTorch's kernels, not OpenVINO's).
"""

from __future__ import annotations

from ..engines.cpu import CpuInfo, cpu_info
from ..errors import GusaError

__all__ = ["TRAIN_PRECISIONS", "AVX512_BF16_TRAINS_BF16", "choose_train_precision"]

#: Values of :attr:`TrainConfig.precision`.
TRAIN_PRECISIONS = ("auto", "fp32", "bf16")

#: Whether ``auto`` trains in bf16 on a CPU with AVX-512 BF16 but no AMX.
#: Measured with ``benchmarks/bench_train.py`` on 2 cores of an AMD EPYC
#: (Zen 4: avx512_bf16, no AMX), torch 2.14, fa-gusa, batch 5, 512x384, the
#: CPU defaults (channels-last + checkpointing + fused Adam), interleaved in one
#: process: bf16 autocast 2.04x the fp32 step (2.84 vs 1.39 img/s), peak RSS
#: 1.80 GB vs 2.73 GB; at 256x192 on a heavily shared machine 1.61x.
AVX512_BF16_TRAINS_BF16 = True


def choose_train_precision(setting: str, device_type: str, info: CpuInfo | None = None, *,
                           gpu_bf16: bool = False) -> tuple[str, str]:
    """The precision a training run uses, and a sentence saying why.

    Parameters
    ----------
    setting : {"auto", "fp32", "bf16"}
        :attr:`TrainConfig.precision`.
    device_type : str
        ``torch.device.type`` of the run: ``"cpu"``, ``"cuda"``, ``"mps"``...
    info : CpuInfo, optional
        The processor; :func:`~gusa_core.engines.cpu.cpu_info` by default
        (tests pass made-up ones).
    gpu_bf16 : bool
        On CUDA: whether the GPU computes in bf16 (compute capability 8.0 or
        later); the caller asks torch.

    Returns
    -------
    precision : {"fp32", "bf16", "fp16"}
        What the forward pass is autocast to (``"fp32"``: no autocast).
    reason : str

    Raises
    ------
    GusaError
        ``setting`` is not one of :data:`TRAIN_PRECISIONS`.
    """
    value = str(setting).strip().lower()
    if value not in TRAIN_PRECISIONS:
        raise GusaError(f"training precision {setting!r} is not understood: use {', '.join(TRAIN_PRECISIONS)}")
    if device_type == "cuda":
        if value == "fp32":
            return "fp32", "fp32 asked for: no autocast on CUDA"
        if value == "bf16":
            if gpu_bf16:
                return "bf16", "bf16 asked for: bf16 autocast on CUDA (no gradient scaler), fp32 weights"
            return "fp16", "bf16 asked for, but the GPU has no bf16 (compute capability below 8.0): fp16 autocast with a gradient scaler"
        return "fp16", "CUDA: fp16 autocast with a gradient scaler, fp32 weights"
    if device_type != "cpu":
        return "fp32", f"{device_type}: fp32 (no autocast)"
    info = info or cpu_info()
    has_bf16 = info.amx_bf16 or info.avx512_bf16
    if value == "fp32":
        return "fp32", "fp32 asked for"
    if value == "bf16":
        if has_bf16:
            return "bf16", "bf16 asked for: bf16 autocast, fp32 weights"
        return "bf16", "bf16 asked for, but the CPU has no AVX-512 BF16/AMX: emulated, expect it to be many times slower"
    if info.amx_bf16:
        return "bf16", "AMX-BF16 reported by the CPU: bf16 autocast, fp32 weights"
    if info.avx512_bf16:
        if AVX512_BF16_TRAINS_BF16:
            return "bf16", "AVX-512 BF16 reported by the CPU (no AMX): bf16 autocast, fp32 weights"
        return "fp32", "AVX-512 BF16 without AMX: PyTorch's bf16 training is not faster there, fp32"
    return "fp32", "no AVX-512 BF16/AMX on the CPU: fp32"
