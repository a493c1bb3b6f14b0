"""What the CPU in hand offers, and the numeric precision to run on it.

:func:`cpu_info` reads the processor's name, vendor and instruction-set flags
once (``/proc/cpuinfo`` on Linux, ``sysctl`` on macOS, :mod:`platform`
elsewhere); it imports neither torch nor an inference engine.

:func:`choose_precision` turns those flags into ``"bf16"`` or ``"fp32"``:

- AMX (Intel Sapphire Rapids and later): bf16. OpenVINO's bf16 ran 4.2x eager
  torch fp32 and ~3x its own fp32 on a 2-core Xeon with AMX (``PERF.md``),
  logits within 5.5e-4 of fp32.
- AVX-512 BF16 without AMX (AMD Zen 4/5, Intel Cooper Lake): bf16 as well.
  OpenVINO's bf16 kernels use ``vdpbf16ps`` there, and on a 2-core AMD EPYC
  (Zen 4) bf16 ran 1.8-2.6x OpenVINO fp32 and 2-3x onnxruntime
  (``benchmarks/bench_engines.py``), logits within 6e-4 of fp32. (PyTorch's bf16 autocast is another matter:
  without these instructions it is emulated, ~130x slower.)
- Everything else: fp32 (without a bf16 dot product, bf16 is emulated and
  slow: ~130x slower in PyTorch on an AVX2-only EPYC).

The environment variable ``GUSA_PRECISION`` (``fp32``, ``bf16``, ``int8`` or
``auto``) overrides the rule for users and tests. int8 is never chosen by the
rule: it is a post-training quantisation (:mod:`gusa_core.engines.int8`) that
a user asks for, used only once it agrees with fp32.
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field

__all__ = ["CpuInfo", "cpu_info", "usable_cores", "parse_proc_cpuinfo", "choose_precision", "cpu_precision",
           "PRECISIONS", "PRECISION_ENV"]

PRECISIONS = ("fp32", "bf16", "int8")
PRECISION_ENV = "GUSA_PRECISION"

@dataclass(frozen=True)
class CpuInfo:
    """The processor: its name, vendor, logical cores and instruction-set flags.

    Attributes
    ----------
    model : str
        Marketing name, e.g. ``"AMD EPYC 9R14"``; ``"unknown"`` when not found.
    vendor : str
        ``"GenuineIntel"``, ``"AuthenticAMD"``, ``"Apple"``, ... or ``"unknown"``.
    cores : int
        Logical processors this process may use.
    flags : frozenset of str
        Lower-case flags as Linux spells them (``avx2``, ``avx512f``,
        ``avx512_bf16``, ``amx_bf16``, ``amx_tile``, ...).
    source : str
        Where the facts came from: ``"/proc/cpuinfo"``, ``"sysctl"`` or ``"platform"``.
    """

    model: str = "unknown"
    vendor: str = "unknown"
    cores: int = 1
    flags: frozenset = field(default_factory=frozenset)
    source: str = "platform"

    @property
    def avx2(self) -> bool:
        """AVX2 (the floor of a fast fp32 CPU path)."""
        return "avx2" in self.flags

    @property
    def avx512f(self) -> bool:
        """AVX-512 Foundation."""
        return "avx512f" in self.flags

    @property
    def avx512_bf16(self) -> bool:
        """AVX-512 BF16 (``vdpbf16ps``, a bf16 dot product in vector registers)."""
        return "avx512_bf16" in self.flags

    @property
    def amx_bf16(self) -> bool:
        """AMX tiles with bf16 matrix multiplication."""
        return "amx_bf16" in self.flags and "amx_tile" in self.flags

    @property
    def amx_tile(self) -> bool:
        """AMX tile registers."""
        return "amx_tile" in self.flags

    def summary(self) -> str:
        """One line for a log or a benchmark: name, cores and the flags that matter here."""
        shown = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16") if f in self.flags]
        return f"{self.model} ({self.vendor}, {self.cores} logical cores; {' '.join(shown) or 'no AVX2'})"


def usable_cores() -> int:
    """Logical processors this process may run on (its CPU affinity where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def parse_proc_cpuinfo(text: str, *, cores: int | None = None) -> CpuInfo:
    """Read the first processor's facts from the text of ``/proc/cpuinfo``.

    Parameters
    ----------
    text : str
        The whole file; x86 (``model name``, ``vendor_id``, ``flags``) and Arm
        (``CPU implementer``, ``Features``) layouts are understood.
    cores : int, optional
        Logical cores to report; by default the ``processor`` entries counted.

    Returns
    -------
    CpuInfo
    """
    fields: dict[str, str] = {}
    n_processors = 0
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip().lower()
        if key == "processor":
            n_processors += 1
        fields.setdefault(key, value.strip())
    model = fields.get("model name") or fields.get("hardware") or fields.get("cpu model") or "unknown"
    vendor = fields.get("vendor_id") or ("arm" if "cpu implementer" in fields else "unknown")
    flags = frozenset((fields.get("flags") or fields.get("features") or "").lower().split())
    return CpuInfo(model=model, vendor=vendor, cores=int(cores or n_processors or 1), flags=flags,
                   source="/proc/cpuinfo")


def _sysctl(name: str) -> str:
    try:
        out = subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=2, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def _macos_info() -> CpuInfo | None:
    model = _sysctl("machdep.cpu.brand_string")
    if not model:
        return None
    raw = " ".join(_sysctl(k) for k in ("machdep.cpu.features", "machdep.cpu.leaf7_features")).lower()
    # sysctl spells AVX2 as "avx2", AVX-512 as "avx512f", ...: the Linux names where they overlap
    flags = set(raw.replace(".", "_").split())
    vendor = _sysctl("machdep.cpu.vendor") or ("Apple" if "apple" in model.lower() else "unknown")
    if _sysctl("hw.optional.arm.FEAT_BF16") == "1":
        flags.add("arm_bf16")
    return CpuInfo(model=model, vendor=vendor, cores=usable_cores(), flags=frozenset(flags), source="sysctl")


@functools.lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
    """The processor this process runs on (read once, then cached).

    Returns
    -------
    CpuInfo
        Facts from ``/proc/cpuinfo`` on Linux, ``sysctl`` on macOS and
        :mod:`platform` elsewhere (there the flags are empty, so the
        precision rule falls back to fp32).
    """
    if sys.platform.startswith("linux"):
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                return parse_proc_cpuinfo(f.read(), cores=usable_cores())
        except OSError:
            pass
    if sys.platform == "darwin":
        info = _macos_info()
        if info is not None:
            return info
    return CpuInfo(model=platform.processor() or platform.machine() or "unknown", cores=usable_cores())


def _env_precision() -> str:
    value = os.environ.get(PRECISION_ENV, "").strip().lower()
    if value in ("", "auto"):
        return "auto"
    if value in ("fp32", "f32", "float32"):
        return "fp32"
    if value in ("bf16", "bfloat16"):
        return "bf16"
    if value in ("int8", "i8"):
        return "int8"
    from ..errors import GusaError

    raise GusaError(f"{PRECISION_ENV}={os.environ[PRECISION_ENV]!r} is not understood: use fp32, bf16, int8 or auto")


def choose_precision(info: CpuInfo, *, engine: str = "openvino") -> tuple[str, str]:
    """The numeric precision to run ``engine`` at on this CPU, and why.

    Parameters
    ----------
    info : CpuInfo
        The processor (usually :func:`cpu_info`).
    engine : {"openvino", "onnxruntime"}
        Only OpenVINO runs bf16 here; onnxruntime's CPU provider is fp32.

    Returns
    -------
    precision : {"fp32", "bf16", "int8"}
        ``"int8"`` only when ``GUSA_PRECISION=int8`` asks for it.
    reason : str
        A sentence for the user, e.g. ``"AMX-BF16 reported by the CPU: bf16"``.

    Raises
    ------
    GusaError
        When ``GUSA_PRECISION`` holds something else than fp32, bf16, int8 or auto.
    """
    forced = _env_precision()
    if engine != "openvino":
        if forced in ("bf16", "int8"):
            return "fp32", f"{PRECISION_ENV}={forced} ignored: {engine} runs fp32 on the CPU"
        return "fp32", f"{engine} runs fp32 on the CPU"
    if forced != "auto":
        return forced, f"{PRECISION_ENV}={forced} set by the user"
    return cpu_precision(info)


def cpu_precision(info: CpuInfo) -> tuple[str, str]:
    """The rule of :func:`choose_precision` without the environment: bf16 or fp32 from the CPU's flags."""
    if info.amx_bf16:
        return "bf16", "AMX-BF16 reported by the CPU: bf16"
    if info.avx512_bf16:
        # measured on Zen 4: OpenVINO bf16 1.8-2.6x its fp32 (bench_engines.py)
        return "bf16", "AVX-512 BF16 reported by the CPU (no AMX): bf16"
    return "fp32", "no AVX-512 BF16/AMX: fp32"
