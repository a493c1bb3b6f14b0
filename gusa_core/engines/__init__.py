"""Inference engines for exported models: the fastest path the CPU in hand offers.

An engine runs one exported ONNX file (:mod:`gusa_core.inference.export`) and is called
like :class:`gusa_core.inference.export.OnnxModel`: ``engine(batch)`` or
``engine.run(batch)`` → ``{output name: array}``. Engines know their
``name``, ``precision`` (``"fp32"`` or ``"bf16"``), the ``reason`` for it and
the ``device_name``. Nothing here imports torch.

- :class:`OpenVinoEngine` — OpenVINO, fp32 or bf16 (AMX or AVX-512 BF16).
- :class:`OnnxRuntimeEngine` — onnxruntime's CPU provider, fp32.

:func:`choose_engine` makes the default choice for a CPU, :func:`create_engine`
builds one by name, and :func:`gusa_core.engines.agreement.gate` checks a
reduced precision against fp32 once per weights before it is trusted.
"""

from __future__ import annotations

import functools
import importlib
import os

from ..errors import GusaError
from .cpu import PRECISION_ENV, CpuInfo, choose_precision, cpu_info
from .onnxrt import OnnxRuntimeEngine
from .openvino import OpenVinoEngine

__all__ = [
    "ENGINES",
    "ENGINE_ENV",
    "PRECISION_ENV",
    "CpuInfo",
    "cpu_info",
    "choose_precision",
    "available_engines",
    "choose_engine",
    "create_engine",
    "open_engine",
    "OpenVinoEngine",
    "OnnxRuntimeEngine",
]

ENGINES = {"openvino": OpenVinoEngine, "onnxruntime": OnnxRuntimeEngine}
ENGINE_ENV = "GUSA_ENGINE"
_MODULES = {"openvino": "openvino", "onnxruntime": "onnxruntime"}


@functools.lru_cache(maxsize=1)
def available_engines() -> tuple[str, ...]:
    """The engines whose library imports here, fastest first.

    Returns
    -------
    tuple of str
        A subset of ``("openvino", "onnxruntime")``.
    """
    found = []
    for name, module in _MODULES.items():
        try:
            importlib.import_module(module)
        except Exception:  # noqa: BLE001 - a broken install is as good as none
            continue
        found.append(name)
    return tuple(found)


def choose_engine(info: CpuInfo | None = None) -> tuple[str, str, str]:
    """The default engine and precision for a CPU, and why.

    OpenVINO whenever it is installed: in bf16 where the CPU has AMX or
    AVX-512 BF16, in fp32 elsewhere; onnxruntime otherwise. Measured with
    ``benchmarks/bench_engines.py`` on the same ONNX file: OpenVINO fp32 ran
    1.1x onnxruntime on a 2-core AMD EPYC (Zen 4) and ~1.4x on a 2-core Xeon
    with AMX (``PERF.md``); bf16 2-3x onnxruntime on both.
    ``GUSA_ENGINE`` (``openvino``, ``onnxruntime`` or ``auto``) and
    ``GUSA_PRECISION`` override the choice.

    Parameters
    ----------
    info : CpuInfo, optional
        The processor; :func:`cpu_info` if None.

    Returns
    -------
    name : {"openvino", "onnxruntime"}
    precision : {"fp32", "bf16"}
    reason : str

    Raises
    ------
    GusaError
        When no engine is installed, or the environment asks for one that is not.
    """
    info = info if info is not None else cpu_info()
    available = available_engines()
    forced = os.environ.get(ENGINE_ENV, "").strip().lower()
    if forced not in ("", "auto"):
        if forced not in ENGINES:
            raise GusaError(f"{ENGINE_ENV}={forced!r} is not understood: use {', '.join(ENGINES)} or auto")
        if forced not in available:
            raise GusaError(f"{ENGINE_ENV}={forced} but {forced} is not installed")
        precision, reason = choose_precision(info, engine=forced)
        return forced, precision, f"{ENGINE_ENV}={forced} set by the user; {reason}"
    if not available:
        raise GusaError("neither OpenVINO nor onnxruntime is installed")
    name = available[0]
    precision, reason = choose_precision(info, engine=name)
    if name == "openvino":
        return name, precision, f"OpenVINO on {info.model}: {reason}"
    return name, precision, f"OpenVINO is not installed: {reason}"


def create_engine(name: str, onnx_path, *, precision: str = "auto", threads: int | None = None, cache_dir=None):
    """Build the engine called ``name`` over an ONNX file.

    Parameters
    ----------
    name : {"openvino", "onnxruntime"}
    onnx_path : path-like
    precision : {"auto", "fp32", "bf16"}
    threads : int, optional
    cache_dir : path-like, optional
        OpenVINO's compiled-model cache (beside the ONNX file if None).

    Returns
    -------
    OpenVinoEngine or OnnxRuntimeEngine
    """
    try:
        cls = ENGINES[name]
    except KeyError:
        raise GusaError(f"engine {name!r} is not understood: use {', '.join(ENGINES)}") from None
    return cls(onnx_path, precision=precision, threads=threads, cache_dir=cache_dir)


def open_engine(onnx_path, *, record_path, weights_sha256: str, validation_images, threads: int | None = None,
                info: CpuInfo | None = None):
    """The default engine for this CPU over an ONNX file, bf16 only once it agreed with fp32.

    Parameters
    ----------
    onnx_path : path-like
        A fold's ``model.onnx``.
    record_path : path-like
        The fold's ``engine.json`` (:data:`gusa_core.engines.agreement.RECORD_NAME`).
    weights_sha256 : str
        Hash of the fold's weights (:func:`gusa_core.engines.agreement.sha256_file`).
    validation_images : callable
        Returns pre-processed images, ndarray of shape (N, 3, H, W); called
        only when the agreement check runs (once per weights and engine version).
    threads : int, optional
    info : CpuInfo, optional
        The processor; :func:`cpu_info` if None.

    Returns
    -------
    engine : OpenVinoEngine or OnnxRuntimeEngine
    record : AgreementRecord or None
        The agreement verdict for a reduced precision; None for fp32, which needs none.
    """
    from .agreement import gate

    name, _, _ = choose_engine(info)
    candidate = create_engine(name, onnx_path, precision="auto", threads=threads)
    if candidate.precision == "fp32":
        return candidate, None
    return gate(lambda: candidate, lambda: create_engine(name, onnx_path, precision="fp32", threads=threads),
                validation_images, record_path=record_path, weights_sha256=weights_sha256)
