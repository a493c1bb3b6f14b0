"""Inference engines for exported models: the fastest path the CPU in hand offers.

An engine runs one exported ONNX file (:mod:`gusa_core.inference.export`) and is called
like :class:`gusa_core.inference.export.OnnxModel`: ``engine(batch)`` or
``engine.run(batch)`` → ``{output name: array}``. Engines know their
``name``, ``precision`` (``"fp32"`` or ``"bf16"``), the ``reason`` for it and
the ``device_name``. Nothing here imports torch.

- :class:`OpenVinoEngine` — OpenVINO, fp32 or bf16 (AMX or AVX-512 BF16), or
  an int8 quantisation asked for by the user (:mod:`.int8`); one stream or
  several per call, by batch size (:mod:`.modes`).
- :class:`OnnxRuntimeEngine` — onnxruntime's CPU provider, fp32.

:func:`choose_engine` makes the default choice for a CPU, :func:`create_engine`
builds one by name, and :func:`gusa_core.engines.agreement.gate` checks a
reduced precision against fp32 once per weights before it is trusted.
"""

from __future__ import annotations

import functools
import importlib
import os
from pathlib import Path

from ..errors import GusaError
from .agreement import load_records
from .cpu import PRECISION_ENV, PRECISIONS, CpuInfo, choose_precision, cpu_info, cpu_precision
from .modes import describe_rule
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
    precision : {"fp32", "bf16", "int8"}
        int8 only when ``GUSA_PRECISION=int8`` asks for it.
    reason : str
        The precision's reason and, for OpenVINO, how a call spends the cores.

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
        return name, precision, f"OpenVINO on {info.model}: {reason}; {describe_rule(info.cores)}"
    return name, precision, f"OpenVINO is not installed: {reason}"


def create_engine(name: str, onnx_path, *, precision: str = "auto", threads: int | None = None, cache_dir=None):
    """Build the engine called ``name`` over an ONNX file.

    Parameters
    ----------
    name : {"openvino", "onnxruntime"}
    onnx_path : path-like
        An ONNX file (or, for OpenVINO, an int8 IR ``.xml``).
    precision : {"auto", "fp32", "bf16", "int8"}
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
                info: CpuInfo | None = None, name: str | None = None, precision: str = "auto",
                calibration_images=None):
    """The default engine for this CPU over an ONNX file, a reduced precision only once it agreed with fp32.

    Parameters
    ----------
    onnx_path : path-like
        A fold's ``model.onnx``.
    record_path : path-like
        The fold's ``engine.json`` (:data:`gusa_core.engines.agreement.RECORD_NAME`).
    weights_sha256 : str
        Hash of the fold's weights (:func:`gusa_core.engines.agreement.sha256_file`).
    validation_images : callable
        Returns pre-processed images, ndarray of shape (N, 3, H, W), or
        ``(images, source)`` with a few words on where they came from; called
        only when the agreement check runs (once per weights and engine version).
    threads : int, optional
    info : CpuInfo, optional
        The processor; :func:`cpu_info` if None.
    name : {"openvino", "onnxruntime"}, optional
        The engine; :func:`choose_engine` decides if None.
    precision : {"auto", "fp32", "bf16", "int8"}
        ``"auto"``: the CPU's rule, or ``GUSA_PRECISION``
        (:func:`~gusa_core.engines.cpu.choose_precision`). ``"int8"``
        quantises the model once with NNCF (:mod:`gusa_core.engines.int8`);
        without NNCF, or when quantising fails, the CPU's rule is used and
        the reason says why.
    calibration_images : callable, optional
        Like ``validation_images``, the images int8 quantisation takes its
        statistics from; ``validation_images`` if None.

    Returns
    -------
    engine : OpenVinoEngine or OnnxRuntimeEngine
    record : AgreementRecord or None
        The agreement verdict for a reduced precision; None for fp32, which needs none.
    """
    from .agreement import gate

    info = info if info is not None else cpu_info()
    if name is None:
        name, _, _ = choose_engine(info)
    precision = (precision or "auto").lower()
    if name != "openvino":
        return create_engine(name, onnx_path, precision="fp32", threads=threads), None
    resolved, note = choose_precision(info, engine=name) if precision == "auto" else (precision, "int8 asked for")
    if resolved not in PRECISIONS:
        raise GusaError(f"precision {precision!r} is not understood: use auto, {', '.join(PRECISIONS)}")

    def fp32():
        return create_engine(name, onnx_path, precision="fp32", threads=threads)

    if resolved == "int8":
        from .int8 import nncf_available, quantized_model
        from .openvino import OV_CACHE_DIRNAME

        version = _openvino_version()
        previous = load_records(record_path).get(f"{name}/int8")
        if previous is not None and previous.matches(name, "int8", version, weights_sha256) and not previous.ok:
            return fp32(), previous  # it failed the gate for these weights: do not quantise again
        try:
            xml = quantized_model(onnx_path, cache_dir=Path(onnx_path).parent / OV_CACHE_DIRNAME,
                                  weights_sha256=weights_sha256, images=calibration_images or validation_images)
        except GusaError as exc:
            fallback, why = cpu_precision(info)
            why = f"int8 asked for but {'NNCF is not installed' if not nncf_available() else exc}: {why}"
            candidate = create_engine(name, onnx_path, precision=fallback, threads=threads)
            candidate.reason = why
        else:
            candidate = create_engine(name, xml, precision="int8", threads=threads)
            candidate.reason = note
    else:  # "auto" stays "auto": the engine states the CPU's reason itself
        candidate = create_engine(name, onnx_path, precision=precision, threads=threads)
    if candidate.precision == "fp32":
        return candidate, None
    # one image per call: both engines stay on their LATENCY compilation, the streams are compiled only when used
    return gate(lambda: candidate, fp32, validation_images, record_path=record_path, weights_sha256=weights_sha256,
                batch_size=1)


def _openvino_version() -> str:
    import openvino as ov

    return str(ov.get_version())
