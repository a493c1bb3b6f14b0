"""Decoded-size caps and conversion of decoded pixels to 8-bit RGB, band by band (see :mod:`gusa_core.imageio`)."""

from __future__ import annotations

import os

import numpy as np

from ..errors import GusaError

__all__ = ["DEFAULT_MAX_IMAGE_BYTES", "max_image_bytes"]

#: Default cap on the decoded size of one image (override with ``GUSA_MAX_IMAGE_BYTES``).
DEFAULT_MAX_IMAGE_BYTES = 2 << 30
_ENV_MAX = "GUSA_MAX_IMAGE_BYTES"
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_BAND_BYTES = 64 << 20  # rows converted to 8 bits at a time


class _Unreadable(ValueError):
    """A reason found by our own checks; its text is the whole reason."""


def max_image_bytes() -> int:
    """The largest decoded image size accepted, in bytes.

    ``GUSA_MAX_IMAGE_BYTES`` (a number of bytes, optionally with a K, M, G
    or T suffix for binary multiples, e.g. ``4G``) overrides the default of
    2 GiB.

    Raises
    ------
    GusaError
        The variable is set to something that is not a positive size.
    """
    text = os.environ.get(_ENV_MAX, "").strip().lower().removesuffix("b").removesuffix("i")
    if not text:
        return DEFAULT_MAX_IMAGE_BYTES
    unit = text[-1] if text[-1] in _UNITS else ""
    try:
        value = int(float(text[: len(text) - len(unit)]) * _UNITS[unit])
    except (ValueError, OverflowError):
        value = 0
    if value <= 0:
        raise GusaError(f"{_ENV_MAX}={os.environ[_ENV_MAX]!r} is not a size in bytes (e.g. 2147483648 or 2G)")
    return value


def _human(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def _check_decoded(nbytes: int, what: str) -> None:
    cap = max_image_bytes()
    if nbytes > cap:
        raise _Unreadable(
            f"{what} decodes to {_human(nbytes)}, more than the cap of {_human(cap)} ({_ENV_MAX}): "
            "open a whole slide with gusa_core.slides, or raise the cap if this machine has the memory"
        )


def _pil_decoded_bytes(im) -> int:
    """Bytes of the pixels PIL will decode (bands x bytes per band), from the header alone."""
    mode = im.mode
    depth = 4 if mode in ("I", "F") else 2 if mode.startswith("I;16") else 1
    return int(im.width) * int(im.height) * max(len(im.getbands()), 1) * depth


def _bands(arr: np.ndarray):
    """Row bands of ``arr`` of about ``_BAND_BYTES`` each (working copies stay small)."""
    row = max(1, arr[:1].nbytes * 4)  # float32 working copies of one row
    step = max(1, _BAND_BYTES // row)
    for r in range(0, arr.shape[0], step):
        yield slice(r, r + step)


def _peak(arr: np.ndarray) -> float:
    """The largest value the 8-bit scaling sees (NaN as 0, +inf as 255, negatives as 0)."""
    if arr.size == 0:
        return 0.0
    peak = 0.0
    for band in _bands(arr):
        a = arr[band]
        if a.dtype.kind == "f":
            a = np.nan_to_num(a.astype(np.float32, copy=False), nan=0.0, posinf=255.0, neginf=0.0)
        peak = max(peak, float(a.max()) if a.size else 0.0)
    return peak


def _to_uint8(arr: np.ndarray, *, bits: int | None = None, peak: float | None = None) -> np.ndarray:
    """Scale integer, boolean or float data to uint8.

    16-bit data is scaled by the maximum of its bit depth: ``bits`` where the
    file declares 10, 12 or 14 bits (a TIFF's BitsPerSample), else 12 bits when
    every value is below 4096 (cameras store 12-bit data in 16-bit words),
    else 16 bits.
    Floats in [0, 1] are scaled by 255; other floats are taken as 0..255 and
    clipped. NaN becomes 0. ``peak`` is the array's :func:`_peak` when the
    caller converts it band by band (the scale must not change between bands).
    """
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * np.uint8(255)
    if arr.dtype.kind not in "fiu":
        raise _Unreadable(f"unsupported pixel type {arr.dtype}")
    peak = _peak(arr) if peak is None else peak
    if arr.dtype.kind == "f":
        a = np.nan_to_num(arr.astype(np.float32, copy=False), nan=0.0, posinf=255.0, neginf=0.0)
        if peak <= 1.0 + 1e-6:
            a = a * 255.0
        return np.clip(a + 0.5, 0, 255).astype(np.uint8)
    a = arr
    if a.dtype.kind == "i":
        a = np.clip(a, 0, None)
    if arr.dtype.itemsize == 1:  # int8
        return a.astype(np.uint8)
    if bits is None or not 8 < bits < 16:
        if peak <= 255 and arr.dtype.itemsize > 2:  # e.g. PIL mode "I" holding 8-bit data
            bits = 8
        elif peak < 4096:
            bits = 12
        elif peak < 65536:
            bits = 16
        else:
            bits = min(32, int(peak).bit_length())
    scale = 255.0 / float((1 << bits) - 1)
    out = np.clip(a.astype(np.float32) * scale + 0.5, 0, 255)
    return out.astype(np.uint8)


def _to_rgb8(arr: np.ndarray, *, bits: int | None = None) -> np.ndarray:
    """Turn any decoded array into a C-contiguous ``(H, W, 3) uint8`` RGB image, band by band."""
    if arr.ndim == 3 and arr.shape[0] in (3, 4) and arr.shape[-1] not in (1, 2, 3, 4):
        arr = np.moveaxis(arr, 0, -1)  # planar (separate) RGB
    while arr.ndim > 3:  # a stack of pages: keep the first
        arr = arr[0]
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise _Unreadable(f"unsupported image shape {arr.shape}")
    if arr.dtype.kind not in "biuf":
        raise _Unreadable(f"unsupported pixel type {arr.dtype}")
    channels = arr.shape[2]
    if channels == 3 and arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    alpha = channels in (2, 4)
    colour_part = arr[:, :, : channels - 1] if alpha else arr
    peak_colour = _peak(colour_part) if arr.dtype.kind != "b" else 0.0
    peak_alpha = _peak(arr[:, :, channels - 1 :]) if alpha and arr.dtype.kind != "b" else 0.0
    out = np.empty((arr.shape[0], arr.shape[1], 3), np.uint8)
    for band in _bands(arr):
        a = arr[band]
        if alpha:  # grey+alpha or RGBA: composite over white
            colour = _to_uint8(a[:, :, : channels - 1], bits=bits, peak=peak_colour).astype(np.float32)
            weight = _to_uint8(a[:, :, channels - 1 :], bits=bits, peak=peak_alpha).astype(np.float32) / 255.0
            a8 = (colour * weight + 255.0 * (1.0 - weight) + 0.5).astype(np.uint8)
        else:
            a8 = _to_uint8(a, bits=bits, peak=peak_colour)
        out[band] = a8[:, :, :3]  # one grey channel is broadcast to three
    return out
