"""Argument types shared by the verbs."""

from __future__ import annotations

import argparse
import json
import math

from ..checkpoint import MAX_INPUT_SIDE

MAX_IMAGE_SIDE = 16384

__all__ = ["parse_size", "parse_image_size", "json_line", "strict_json", "add_engine_options"]

#: What ``--backend`` accepts (``onnx`` is onnxruntime).
BACKENDS = ("auto", "openvino", "onnxruntime", "torch", "onnx")
#: What ``--precision`` accepts.
PRECISIONS = ("auto", "fp32", "bf16", "int8")


def add_engine_options(parser) -> None:
    """``--backend`` and ``--precision``, the same for every verb that runs the network."""
    parser.add_argument("--backend", choices=BACKENDS, default="auto",
                        help="auto: the fastest CPU engine here (OpenVINO, else onnxruntime), torch on a GPU; "
                             "onnx is onnxruntime")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="OpenVINO's precision. auto follows the CPU: bf16 where it reports AVX-512 BF16 or "
                             "AMX, fp32 elsewhere. bf16 and int8 (which needs the int8 extra) are used only once "
                             "they agree with fp32 on the run's validation images, else fp32 with the reason "
                             "(shown by --json and gusa info). Overrides GUSA_PRECISION")


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``WxH`` (e.g. ``512x384``) into ``(width, height)``; both divisible by 16."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH such as 512x384, got {text!r}") from None
    if w <= 0 or h <= 0 or w % 16 or h % 16:
        raise argparse.ArgumentTypeError(f"input size {text} must be positive and divisible by 16 (stride of bp)")
    if max(w, h) > MAX_INPUT_SIDE:
        raise argparse.ArgumentTypeError(f"input size {text} is too large (at most {MAX_INPUT_SIDE} a side)")
    return w, h


def parse_image_size(text: str) -> tuple[int, int]:
    """Parse ``WxH`` into ``(width, height)``, any positive size."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH such as 512x384, got {text!r}") from None
    if w < 16 or h < 16:
        raise argparse.ArgumentTypeError(f"image size {text} is too small (at least 16x16)")
    if max(w, h) > MAX_IMAGE_SIDE:
        raise argparse.ArgumentTypeError(f"image size {text} is too large (at most {MAX_IMAGE_SIDE} a side)")
    return w, h


def _finite(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    return v


def strict_json(obj, *, indent: int | None = None) -> str:
    """``obj`` as strict JSON: a NaN or an infinity becomes ``null``, never a bare ``NaN`` no parser accepts."""
    return json.dumps(_finite(obj), allow_nan=False, indent=indent, ensure_ascii=False)


def json_line(obj) -> str:
    """``obj`` as one line of strict JSON (see :func:`strict_json`)."""
    return strict_json(obj)
