"""int8 post-training quantisation of an exported model with NNCF, for OpenVINO on the CPU.

Asked for with ``GUSA_PRECISION=int8`` (or ``Predictor.from_run(...,
precision="int8")``), never chosen by itself. :func:`quantized_model` reads
the fold's ``model.onnx`` into OpenVINO, quantises it with ``nncf.quantize``
(mixed preset: symmetric int8 weights, asymmetric activations; statistics
from the run's validation images, see
:func:`gusa_core.inference.backends.calibration_images`) and keeps the result
as an OpenVINO IR in the fold's ``ov-cache/`` folder, named by the weights'
SHA-256, so it is quantised once per weights. Like bf16, the quantised model
is then used only once it agrees with fp32
(:func:`gusa_core.engines.agreement.gate`).

NNCF is an optional dependency (``pip install 'nncf>=2.12'``); importing it
imports torch where torch is installed, so it is imported only to quantise:
a cached int8 model is loaded by OpenVINO alone.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import os
from pathlib import Path

import numpy as np

from ..errors import GusaError

__all__ = ["nncf_available", "quantized_path", "quantize_model", "quantized_model", "INT8_PREFIX"]

INT8_PREFIX = "int8-"


def nncf_available() -> bool:
    """Whether NNCF is installed (checked without importing it)."""
    return importlib.util.find_spec("nncf") is not None


def quantized_path(cache_dir: str | os.PathLike, weights_sha256: str) -> Path:
    """Where the int8 model of the weights with this SHA-256 is kept (an OpenVINO IR ``.xml`` + ``.bin``)."""
    return Path(cache_dir) / f"{INT8_PREFIX}{weights_sha256[:16] or 'unknown'}.xml"


def quantize_model(onnx_path: str | os.PathLike, images: np.ndarray, out_xml: str | os.PathLike) -> Path:
    """Quantise an ONNX model to int8 with NNCF and save it as OpenVINO IR.

    Parameters
    ----------
    onnx_path : path-like
        The exported model (one input of shape (B, 3, H, W)).
    images : ndarray of shape (N, 3, H, W), float32
        Pre-processed calibration images; every one is used.
    out_xml : path-like
        The ``.xml`` to write (its ``.bin`` beside it); both appear at once,
        ``.bin`` first, so a reader never finds a half-written model.

    Returns
    -------
    Path
        ``out_xml``.

    Raises
    ------
    GusaError
        NNCF is not installed, or the quantisation failed.
    """
    if not nncf_available():
        raise GusaError("int8 needs NNCF, which is not installed: pip install 'nncf>=2.12'")
    import nncf
    import openvino as ov

    from .openvino import keep_signal_stack

    out_xml = Path(out_xml)
    images = np.ascontiguousarray(images, dtype=np.float32)
    if images.ndim != 4 or len(images) == 0:
        raise GusaError(f"int8 calibration needs images of shape (N, 3, H, W), got {images.shape}")
    logger = logging.getLogger("nncf")
    level = logger.level
    tmp = out_xml.with_name(f".{out_xml.stem}.{os.getpid()}.tmp.xml")
    try:
        logger.setLevel(logging.ERROR)
        # NNCF draws progress bars on stdout: a library prints nothing
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
                keep_signal_stack():
            model = ov.Core().read_model(str(onnx_path))
            dataset = nncf.Dataset([images[i:i + 1] for i in range(len(images))])
            quantized = nncf.quantize(model, dataset, subset_size=len(images),
                                      preset=nncf.QuantizationPreset.MIXED, fast_bias_correction=True)
            out_xml.parent.mkdir(parents=True, exist_ok=True)
            ov.save_model(quantized, str(tmp), compress_to_fp16=False)
        os.replace(tmp.with_suffix(".bin"), out_xml.with_suffix(".bin"))
        os.replace(tmp, out_xml)
    except GusaError:
        raise
    except Exception as exc:  # noqa: BLE001 - NNCF and OpenVINO raise their own types
        raise GusaError(f"int8 quantisation of {onnx_path} failed ({type(exc).__name__}: {exc})") from exc
    finally:
        logger.setLevel(level)
        for leftover in (tmp, tmp.with_suffix(".bin")):
            with contextlib.suppress(OSError):
                leftover.unlink()
    return out_xml


def quantized_model(onnx_path: str | os.PathLike, *, cache_dir: str | os.PathLike, weights_sha256: str,
                    images) -> Path:
    """The int8 model of these weights: from the cache, or quantised now.

    Parameters
    ----------
    onnx_path : path-like
        The fold's ``model.onnx``.
    cache_dir : path-like
        The fold's ``ov-cache/``.
    weights_sha256 : str
        SHA-256 of the weights the export came from (names the cached model).
    images : ndarray or callable
        Calibration images (N, 3, H, W), or a callable returning them or
        ``(images, source)``; called only when quantising.

    Returns
    -------
    Path
        The ``.xml`` of the int8 model.
    """
    path = quantized_path(cache_dir, weights_sha256)
    onnx_mtime = Path(onnx_path).stat().st_mtime_ns
    try:
        fresh = path.is_file() and path.with_suffix(".bin").is_file() and path.stat().st_mtime_ns >= onnx_mtime
    except OSError:
        fresh = False
    if fresh:
        return path
    images = images() if callable(images) else images
    images = images[0] if isinstance(images, tuple) else images
    return quantize_model(onnx_path, images, path)
