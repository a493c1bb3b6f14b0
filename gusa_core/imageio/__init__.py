"""Reading and writing images and RoI masks.

Images come back as ``(H, W, 3) uint8`` RGB arrays whatever the file held:
plain or tiled/JPEG-compressed TIFF (an Aperio ``.svs`` is read at level 0 of
its first series), PNG, JPEG or BMP; alpha is composited over white, 16-bit
and float data are scaled to 8 bits and grey is repeated to three channels.
Masks are ``(H, W) uint8`` arrays holding 0 (outside) and 255 (RoI), stored
as PNG at the image's resolution.

Every failure to read raises :class:`~gusa_core.errors.ImageReadError` (or
:class:`~gusa_core.errors.MaskError` for masks) whose message names the file.

Memory is bounded: before decoding, the size of the decoded pixels is
computed from the file's header (TIFF page shape and sample type, PIL's
size and mode) and an image above :func:`max_image_bytes` (2 GiB by
default, environment variable ``GUSA_MAX_IMAGE_BYTES``) is refused; a whole
slide is opened with :mod:`gusa_core.slides`, which reads regions, instead.
Conversion to 8 bits runs in bands of rows, so it adds little to the peak.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path

import cv2
import numpy as np

from ..atomic import atomic_write_bytes
from ..errors import GusaError, ImageReadError, MaskError
from ._convert import DEFAULT_MAX_IMAGE_BYTES, _check_decoded, _pil_decoded_bytes, _Unreadable, max_image_bytes
from ._read import _check_file, _is_tiff, _reason, read_image, read_image_for_size
from ._resize import resize_image, shrink_image

# tifffile logs its parser's complaints (a file we then refuse with a clear
# ImageReadError, or read anyway); without a handler Python prints them to
# stderr. A library leaves logging to the application: give it a null handler.
logging.getLogger("tifffile").addHandler(logging.NullHandler())

__all__ = [
    "IMAGE_SUFFIXES",
    "read_image",
    "image_size",
    "resize_image",
    "shrink_image",
    "read_image_for_size",
    "read_mask",
    "write_mask",
    "list_images",
    "DownsampleCache",
    "max_image_bytes",
    "DEFAULT_MAX_IMAGE_BYTES",
]

#: File suffixes recognised as images (compared case-insensitively).
IMAGE_SUFFIXES = (".tif", ".tiff", ".svs", ".png", ".jpg", ".jpeg", ".bmp")


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """Return an image's ``(width, height)`` from its header, without decoding pixels.

    Parameters
    ----------
    path : path-like
        Any file :func:`read_image` reads.

    Returns
    -------
    size : tuple of int
        ``(width, height)`` of level 0.

    Raises
    ------
    ImageReadError
        The file is missing, empty or not an image.
    """
    path = Path(path)
    _check_file(path)
    try:
        if _is_tiff(path):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                if not tif.series:
                    raise _Unreadable("no readable image in the TIFF (truncated or corrupt file)")
                shape = tif.series[0].levels[0].shape
                axes = tif.series[0].levels[0].axes
            rows = shape[axes.index("Y")] if "Y" in axes else shape[0]
            cols = shape[axes.index("X")] if "X" in axes else shape[1]
            return int(cols), int(rows)
        from PIL import Image

        with Image.open(path) as im:
            return int(im.width), int(im.height)
    except Exception as exc:
        raise ImageReadError(path, _reason(exc)) from exc


def read_mask(path: str | os.PathLike, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Read an RoI mask.

    Parameters
    ----------
    path : path-like
        A PNG (or any format :func:`read_image` reads). Colour masks are
        reduced to their brightest channel.
    shape : tuple of int, optional
        ``(H, W)`` (or an image's ``(H, W, 3)``) the mask must have.

    Returns
    -------
    mask : ndarray of shape (H, W), uint8
        255 where the file is non-zero, 0 elsewhere: masks that are not
        binary (anti-aliased edges, 0/1 labels) are thresholded at > 0.

    Raises
    ------
    MaskError
        The file cannot be read, or its size differs from ``shape`` (the
        message gives both sizes).
    """
    path = Path(path)
    if not path.is_file():
        raise MaskError(path, "file does not exist")
    try:
        data = np.fromfile(path, dtype=np.uint8)
        if data.size == 0:
            raise MaskError(path, "file is empty (0 bytes)")
        _check_mask_header(path)
        arr = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
        if arr is None:
            arr = _read_pil_raw(path)
    except (MaskError, GusaError):
        raise
    except Exception as exc:
        raise MaskError(path, _reason(exc)) from exc
    if arr.ndim < 2 or arr.ndim > 3 or 0 in arr.shape[:2]:
        raise MaskError(path, f"unsupported mask shape {arr.shape}")
    if arr.ndim == 3:
        arr = arr[:, :, :3].max(axis=2) if arr.shape[2] >= 3 else arr[:, :, 0]
    mask = np.where(arr > 0, np.uint8(255), np.uint8(0))
    if shape is not None:
        h, w = int(shape[0]), int(shape[1])
        if mask.shape != (h, w):
            raise MaskError(
                path,
                f"mask is {mask.shape[1]}x{mask.shape[0]} (width x height) "
                f"but its image is {w}x{h}",
            )
    return mask


def _check_mask_header(path: Path) -> None:
    """Refuse a mask whose decoded size is above the cap, from its header (before decoding)."""
    from PIL import Image

    if _is_tiff(path):
        import tifffile

        try:
            with tifffile.TiffFile(path) as tif:
                page = tif.pages.first if hasattr(tif.pages, "first") else tif.pages[0]
                shape, dtype = page.shape, np.dtype(page.dtype or np.uint8)
        except Exception:  # noqa: BLE001 - not readable as TIFF: the decoder says why
            return
        _check_decoded(int(np.prod(shape, dtype=np.float64)) * dtype.itemsize, f"the mask ({shape})")
        return
    try:
        im = Image.open(path)
    except Exception:  # noqa: BLE001 - not known to PIL: cv2 may still decode it, or say why not
        return
    with im:
        _check_decoded(_pil_decoded_bytes(im), f"the mask ({im.width}x{im.height} {im.mode})")


def _read_pil_raw(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        return np.asarray(im.convert("L") if im.mode not in ("L", "I", "I;16", "RGB", "RGBA") else im)


def write_mask(path: str | os.PathLike, mask: np.ndarray) -> Path:
    """Write an RoI mask as an 8-bit PNG (0 / 255), atomically.

    Parameters
    ----------
    path : path-like
        The PNG file; its folder is created if missing.
    mask : ndarray of shape (H, W)
        Non-zero (or True) means inside the RoI. Not modified.

    Returns
    -------
    path : Path
    """
    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[:, :, 0]
    if mask.ndim != 2:
        raise ValueError(f"a mask is 2-D (H, W), got shape {mask.shape}")
    out = np.where(mask > 0, np.uint8(255), np.uint8(0))
    ok, buf = cv2.imencode(".png", out, [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:
        raise MaskError(path, "PNG encoding failed")
    return atomic_write_bytes(path, buf.tobytes())


def list_images(folder: str | os.PathLike, *, recursive: bool = False) -> list[Path]:
    """List the image files in a folder.

    Parameters
    ----------
    folder : path-like
    recursive : bool
        Also look in sub-folders (hidden folders are skipped).

    Returns
    -------
    paths : list of Path
        Files whose suffix is in :data:`IMAGE_SUFFIXES` (any case), hidden
        files (``.name``) excluded, sorted by path.

    Raises
    ------
    ImageReadError
        ``folder`` does not exist or is not a folder.
    """
    folder = Path(folder)
    if not folder.exists():
        raise ImageReadError(folder, "folder does not exist")
    if not folder.is_dir():
        raise ImageReadError(folder, "is not a folder")
    found: list[Path] = []
    if recursive:
        for root, dirs, files in os.walk(folder):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            found.extend(Path(root) / f for f in files if _is_image_name(f))
    else:
        found = [p for p in folder.iterdir() if _is_image_name(p.name) and p.is_file()]
    return sorted(found, key=lambda p: p.as_posix())


def _is_image_name(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


class DownsampleCache:
    """Down-sampled copies of big images, on disk and in memory.

    The first request for ``(path, size)`` decodes the image once, resizes it
    with area averaging and stores a lossless PNG in ``cache_dir``; later
    requests read the small PNG (or a recent one from memory). The key is a
    hash of the absolute path, the file's modification time and byte size,
    and the requested size, so an edited image is read afresh. Thread-safe:
    two threads asking for the same image decode it once.

    Parameters
    ----------
    cache_dir : path-like
        Created on first write. Safe to delete at any time.
    memory_items : int
        How many recent results to keep in memory.
    """

    def __init__(self, cache_dir: str | os.PathLike, *, memory_items: int = 16):
        self.cache_dir = Path(cache_dir)
        self.memory_items = int(memory_items)
        self._memory: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}
        self.hits = 0
        self.misses = 0

    def key(self, path: str | os.PathLike, size: tuple[int, int]) -> str:
        """The cache key of ``path`` at ``size`` (raises ImageReadError if missing)."""
        p = Path(path).absolute()
        try:
            st = p.stat()
        except OSError:
            raise ImageReadError(p, "file does not exist") from None
        text = f"{p.as_posix()}|{st.st_mtime_ns}|{st.st_size}|{int(size[0])}x{int(size[1])}"
        return hashlib.sha1(text.encode("utf-8")).hexdigest()

    def get(self, path: str | os.PathLike, size: tuple[int, int]) -> np.ndarray:
        """Return the image at ``path`` resized to ``size = (width, height)``.

        Returns
        -------
        image : ndarray of shape (height, width, 3), uint8
            A fresh array the caller may modify.

        Raises
        ------
        ImageReadError
            As :func:`read_image`.
        """
        key = self.key(path, size)
        with self._lock:
            hit = self._memory.get(key)
            if hit is not None:
                self._memory.move_to_end(key)
                self.hits += 1
                return hit.copy()
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:  # another thread may have filled it meanwhile
                hit = self._memory.get(key)
            if hit is None:
                hit = self._load_or_make(key, path, size)
            with self._lock:
                self._memory[key] = hit
                self._memory.move_to_end(key)
                while len(self._memory) > self.memory_items:
                    self._memory.popitem(last=False)
                self._key_locks.pop(key, None)
            return hit.copy()

    def _file(self, key: str) -> Path:
        return self.cache_dir / f"{key}.png"

    def _load_or_make(self, key: str, path, size) -> np.ndarray:
        file = self._file(key)
        if file.is_file():
            bgr = cv2.imread(str(file), cv2.IMREAD_COLOR)
            if bgr is not None and bgr.shape[1] == int(size[0]) and bgr.shape[0] == int(size[1]):
                with self._lock:
                    self.hits += 1
                return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        small = resize_image(read_image(path), size)
        small = np.ascontiguousarray(small)
        with self._lock:
            self.misses += 1
        ok, buf = cv2.imencode(".png", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
        if ok:
            try:
                atomic_write_bytes(file, buf.tobytes())
            except OSError:
                pass  # a read-only cache folder only costs speed
        return small

    def clear(self) -> None:
        """Forget the in-memory entries (the files on disk stay)."""
        with self._lock:
            self._memory.clear()
