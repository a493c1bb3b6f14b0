"""Decoding image files to 8-bit RGB (see :mod:`gusa_core.imageio`): the whole image, or as much as a size needs."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np

from ..errors import GusaError, ImageReadError
from ._convert import _check_decoded, _pil_decoded_bytes, _to_rgb8, _Unreadable

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")

# Some image files carry a mask-like alpha; others are huge. Refuse absurd sizes
# rather than let a decoder try to allocate them (PIL's own bomb check is similar).
_MAX_PIXELS = 40_000 * 40_000





def _check_file(path: Path) -> None:
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise ImageReadError(path, "file does not exist") from None
    except (OSError, ValueError) as exc:  # a name too long, a NUL byte, no permission
        raise ImageReadError(path, f"cannot reach the file ({getattr(exc, 'strerror', None) or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageReadError(path, "is a folder, not an image file")
    if st.st_size == 0:
        raise ImageReadError(path, "file is empty (0 bytes)")


def _is_tiff(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) in _TIFF_MAGIC


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        if not tif.series:
            raise _Unreadable("no readable image in the TIFF (truncated or corrupt file)")
        level = tif.series[0].levels[0]
        page = level.pages[0] if level.pages else None
        if page is None:
            raise _Unreadable("no readable image in the TIFF (truncated or corrupt file)")
        if int(np.prod(level.shape[:2])) > _MAX_PIXELS:
            raise _Unreadable(f"image too large to decode ({level.shape})")
        shape = "x".join(str(int(v)) for v in level.shape)
        _check_decoded(int(np.prod(level.shape, dtype=np.float64)) * np.dtype(level.dtype).itemsize,
                       f"the TIFF image ({shape} {np.dtype(level.dtype).name})")
        size = path.stat().st_size
        offsets = np.asarray(getattr(page, "dataoffsets", ()), dtype=np.int64)
        counts = np.asarray(getattr(page, "databytecounts", ()), dtype=np.int64)
        if offsets.size and int((offsets + counts).max()) > size:
            raise _Unreadable("file is truncated (image data runs past the end of the file)")
        arr = level.asarray()
        bits = getattr(page, "bitspersample", None)
    bits = int(bits) if isinstance(bits, (int, np.integer)) else None
    return _to_rgb8(arr, bits=bits)


def _read_pil(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        if im.width * im.height > _MAX_PIXELS:
            raise _Unreadable(f"image too large to decode ({im.width}x{im.height})")
        _check_decoded(_pil_decoded_bytes(im), f"the image ({im.width}x{im.height} {im.mode})")
        im.load()
        mode = im.mode
        if mode in ("RGB", "L", "RGBA", "LA", "I", "I;16", "I;16B", "I;16L", "F"):
            arr = np.asarray(im)  # "LA" gives (H, W, 2): grey + alpha
        elif mode in ("P", "PA") and ("transparency" in im.info or mode == "PA"):
            arr = np.asarray(im.convert("RGBA"))
        elif mode == "1":
            arr = np.asarray(im.convert("L"))
        else:  # P without alpha, CMYK, YCbCr, LAB, HSV, RGBX, ...
            arr = np.asarray(im.convert("RGB"))
    return _to_rgb8(arr)




def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as 8-bit RGB.

    Parameters
    ----------
    path : path-like
        A TIFF (plain, or tiled and JPEG-compressed such as an Aperio ``.svs``:
        level 0 of the first series is read), PNG, JPEG or BMP file. The format
        is found from the file's content, not its suffix.

    Returns
    -------
    image : ndarray of shape (H, W, 3), uint8
        RGB. Alpha is composited over white, grey is repeated to three
        channels, 16-bit data is scaled by its bit depth (12-bit data held in
        16-bit words is recognised), floats in [0, 1] are scaled by 255.

    Raises
    ------
    ImageReadError
        The file is missing, empty, truncated, not an image, or in a format or
        pixel type that cannot be decoded. The message names the file.
    """
    path = Path(path)
    _check_file(path)
    try:
        if _is_tiff(path):
            return _read_tiff(path)
        return _read_pil(path)
    except GusaError:
        raise
    except MemoryError:
        raise ImageReadError(path, "not enough memory to decode it") from None
    except Exception as exc:  # decoders raise many types; the caller needs one
        raise ImageReadError(path, _reason(exc)) from exc


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, _Unreadable):
        return text
    low = text.lower()
    if "cannot identify image file" in low or "not a tiff file" in low:
        return "not an image file (unknown or unsupported format)"
    if "truncated" in low or "failed to read" in low or ("buffer" in low and "small" in low):
        return f"file is truncated or corrupt ({text})"
    return f"cannot decode ({type(exc).__name__}: {text})"


def read_image_for_size(path: str | os.PathLike, size: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]]:
    """Read an image for a network input of ``size``, decoding no more pixels than that needs.

    What the format allows: an uncompressed 8-bit RGB TIFF (a BACH image) is
    memory-mapped, not copied; a JPEG is decoded at 1/2, 1/4 or 1/8 scale
    in its DCT (PIL's ``draft``), a pyramidal TIFF read at its smallest level,
    in both cases only while that stays at least twice ``size`` in each
    direction, so the area average that follows (:func:`shrink_image`)
    still sees every pixel at half the final step or finer. Anything else is
    :func:`read_image`.

    Parameters
    ----------
    path : path-like
    size : tuple of int
        ``(width, height)`` the image will be shrunk to.

    Returns
    -------
    image : ndarray of shape (h, w, 3), uint8
        RGB, possibly read-only (a memory map): at least ``2 * size`` where it
        was reduced, the full image otherwise.
    shape : tuple of int
        ``(H, W)`` of the full image (level 0).

    Raises
    ------
    ImageReadError
        As :func:`read_image`.
    """
    path = Path(path)
    _check_file(path)
    w, h = 2 * int(size[0]), 2 * int(size[1])
    try:
        if _is_tiff(path):
            reduced = _tiff_for_size(path, w, h)
        else:
            reduced = _jpeg_for_size(path, w, h)
    except GusaError:
        raise
    except Exception:  # noqa: BLE001 - the full decoder below gives the reason, naming the file
        reduced = None
    if reduced is not None:
        return reduced
    image = read_image(path)
    return image, (int(image.shape[0]), int(image.shape[1]))


def _tiff_for_size(path: Path, w: int, h: int):
    import tifffile

    with tifffile.TiffFile(path) as tif:
        if not tif.series:
            return None
        levels = tif.series[0].levels
        level0 = levels[0]
        if level0.dtype != np.uint8 or len(level0.shape) != 3 or level0.shape[2] != 3 or level0.axes[-1] != "S":
            return None
        full = (int(level0.shape[0]), int(level0.shape[1]))
        fitting = [lv for lv in levels[1:] if lv.shape[0] >= h and lv.shape[1] >= w and lv.dtype == np.uint8
                   and len(lv.shape) == 3 and lv.shape[2] == 3]
        if fitting:
            level = min(fitting, key=lambda lv: lv.shape[0] * lv.shape[1])
            _check_decoded(int(np.prod(level.shape, dtype=np.float64)), f"the TIFF level {level.shape}")
            return np.ascontiguousarray(level.asarray()), full
        page = level0.pages[0] if len(level0.pages) == 1 else None
        if page is None or page.compression != 1 or page.planarconfig != 1 or not page.is_contiguous:
            return None
        offset, count = int(page.dataoffsets[0]), int(sum(page.databytecounts))
        if count != full[0] * full[1] * 3 or offset + count > path.stat().st_size:
            return None
    return np.memmap(path, dtype=np.uint8, mode="r", offset=offset, shape=(full[0], full[1], 3)), full


def _jpeg_for_size(path: Path, w: int, h: int):
    from PIL import Image

    with Image.open(path) as im:
        if im.format != "JPEG" or im.mode not in ("RGB", "YCbCr", "L"):
            return None
        full = (int(im.height), int(im.width))
        if im.width * im.height > _MAX_PIXELS:
            return None
        im.draft("RGB", (w, h))  # the largest DCT reduction that keeps at least w x h
        _check_decoded(_pil_decoded_bytes(im), f"the image ({im.width}x{im.height} {im.mode})")
        im.load()
        arr = np.asarray(im.convert("RGB") if im.mode != "RGB" else im)
    return arr, full
