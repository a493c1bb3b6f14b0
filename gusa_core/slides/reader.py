"""Whole-slide images behind one :class:`Slide` object.

Coordinates
-----------
Every size is ``(width, height)`` and every box is ``(x, y, width, height)`` with ``x`` the
column and ``y`` the row of the top-left pixel. :meth:`Slide.read_region` takes a box in the
pixels **of the level it reads** (unlike OpenSlide's ``read_region``, which takes a level-0
location and a level size); :meth:`Slide.read_field` takes a box in **level-0** pixels and an
output size, and picks the level itself. Arrays come back as ``(H, W, 3) uint8`` RGB, indexed
``[row, col]``; pixels outside the slide or its scanned area are white.

OpenSlide addresses a level through a level-0 location divided by the level's mean downsample.
Where that downsample is not an integer (level sizes floor-divided, as scanners write them) a
level box can land a fraction of a pixel off and OpenSlide interpolates it; the tifffile
backend reads a level's own pixels exactly.

Backends
--------
:func:`open_slide` reads SVS, NDPI, MRXS, SCN, VMS and BIF through OpenSlide; generic (plain,
pyramidal, OME) TIFFs through tifffile, which decodes their tiles several times faster and reads
each level's own pixels; PNG, JPEG and BMP through :func:`gusa_core.imageio.read_image` as a
one-level slide.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import numpy as np

from ..errors import ImageReadError
from ._backends import ArrayBackend, OpenSlideBackend, TiffBackend

__all__ = [
    "SLIDE_SUFFIXES",
    "DEFAULT_MAX_PIXELS",
    "MRXS_INDEX",
    "Slide",
    "open_slide",
    "is_slide_path",
    "is_pyramidal",
    "mrxs_owner",
]

#: Suffixes of whole-slide formats; ``.tif``/``.tiff`` count only when pyramidal.
SLIDE_SUFFIXES = (".svs", ".ndpi", ".mrxs", ".scn", ".vms", ".vmu", ".bif", ".svslide", ".tif", ".tiff")

#: The file inside a MIRAX slide's data folder that names its levels and data files.
MRXS_INDEX = "Slidedat.ini"

#: Default cap on the pixels one read may decode at once (8192 x 8192, far above any screen).
DEFAULT_MAX_PIXELS = 8192 * 8192

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_FLAT_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"BM")
# largest block decoded at once while a thumbnail or field is reduced band by band
_BAND_PIXELS = 4096 * 4096


class Slide:
    """A whole-slide image: a pyramid of levels, read region by region.

    Create it with :func:`open_slide`. Safe to read from several threads at once.

    Attributes
    ----------
    path : Path
        The file.
    backend : str
        ``"openslide"``, ``"tifffile"`` or ``"image"``.
    vendor : str
        OpenSlide's vendor (``"aperio"``, ``"generic-tiff"``, ...), ``"tiff-<kind>"`` or ``"image"``.
    level_count : int
    level_dimensions : list of (int, int)
        ``(width, height)`` of each level, level 0 the largest.
    level_downsamples : list of float
        Level-0 pixels per level pixel, level 0 first (1.0).
    dimensions : (int, int)
        ``level_dimensions[0]``.
    mpp : (float, float) or None
        Microns per level-0 pixel along x and y, where the file records it.
    objective_power : float or None
        Scanner objective magnification (e.g. 40.0), where the file records it.
    bounds : (int, int, int, int)
        ``(x, y, width, height)`` in level-0 pixels of the scanned area, where the format
        records one (OpenSlide's ``openslide.bounds-*``: a Leica SCN's level 0 is the whole
        glass, a MIRAX slide's the camera grid); else the whole slide.
    properties : dict of str
        OpenSlide's properties (empty for other backends).
    max_pixels : int
        Reads returning more pixels than this raise :class:`ImageReadError`.
    """

    def __init__(self, path: Path, backend, *, max_pixels: int = DEFAULT_MAX_PIXELS):
        self.path = Path(path)
        self._b = backend
        self.backend = backend.name
        self.vendor = backend.vendor
        self.level_dimensions = list(backend.level_dimensions)
        self.level_downsamples = list(backend.level_downsamples)
        self.level_count = len(self.level_dimensions)
        self.dimensions = self.level_dimensions[0]
        self.mpp = backend.mpp
        self.objective_power = backend.objective_power
        self.bounds = tuple(int(v) for v in getattr(backend, "bounds", (0, 0) + tuple(self.dimensions)))
        self.properties = dict(backend.properties)
        self.max_pixels = int(max_pixels)
        self._closed = False

    def __repr__(self) -> str:
        return f"Slide({str(self.path)!r}, backend={self.backend!r}, levels={self.level_dimensions})"

    def __enter__(self) -> Slide:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Release the file; later reads raise :class:`ImageReadError`."""
        if not self._closed:
            self._closed = True
            self._b.close()

    @property
    def qupath_origin(self) -> tuple[int, int]:
        """Level-0 pixel of this slide at QuPath's image pixel ``(0, 0)``.

        QuPath's OpenSlide server crops a slide to ``openslide.bounds-*`` when both the bounds'
        width and height differ from the slide's (``OpenslideImageServer``; on by default), so a
        Leica SCN or a MIRAX slide with unscanned margins starts at the bounds' corner there.
        Coordinates written for QuPath subtract this; ``(0, 0)`` for every other slide.
        """
        bx, by, bw, bh = self.bounds
        w, h = self.dimensions
        if self.backend == "openslide" and bw != w and bh != h:
            return bx, by
        return 0, 0

    # ------------------------------------------------------------------ levels

    def best_level_for_downsample(self, downsample: float) -> int:
        """The smallest level whose downsample does not exceed ``downsample`` (never upsampling).

        Parameters
        ----------
        downsample : float
            Wanted level-0 pixels per output pixel.

        Returns
        -------
        level : int
            0 when ``downsample`` is below every level's.
        """
        best = 0
        for i, ds in enumerate(self.level_downsamples):
            if ds <= downsample * (1 + 1e-6):
                best = i
        return best

    def level_for_mpp(self, target_mpp: float) -> int:
        """The smallest level at least as fine as ``target_mpp`` microns per pixel.

        Raises
        ------
        ImageReadError
            The slide does not record its pixel size.
        """
        if self.mpp is None:
            raise ImageReadError(self.path, "the slide does not record its pixel size (microns per pixel)")
        return self.best_level_for_downsample(float(target_mpp) / max(self.mpp))

    # ------------------------------------------------------------------ reading

    def _check(self, level: int, w: int, h: int) -> None:
        if self._closed:
            raise ImageReadError(self.path, "the slide is closed")
        if not 0 <= level < self.level_count:
            raise ValueError(f"level {level} out of range: the slide has {self.level_count} level(s)")
        if w <= 0 or h <= 0:
            raise ValueError(f"region size must be positive, got {w}x{h}")
        if w * h > self.max_pixels:
            raise ImageReadError(
                self.path,
                f"a {w}x{h} region ({w * h:,} pixels) is over the read limit of {self.max_pixels:,} pixels; "
                "read a smaller region or a coarser level",
            )

    def read_region(self, level: int, box: tuple[int, int, int, int]) -> np.ndarray:
        """Read a rectangle of one level.

        Parameters
        ----------
        level : int
            Pyramid level, 0 the largest.
        box : (int, int, int, int)
            ``(x, y, width, height)`` in **that level's** pixels; it may extend past the slide.

        Returns
        -------
        region : ndarray of shape (height, width, 3), uint8
            RGB, composited on white where transparent or outside the slide.

        Raises
        ------
        ImageReadError
            The region is over :attr:`max_pixels`, the slide is closed, or its data is corrupt.
        """
        x, y, w, h = (int(v) for v in box)
        self._check(level, w, h)
        try:
            return self._b.read(level, x, y, w, h)
        except ImageReadError:
            raise
        except Exception as exc:  # decoders raise many types; the caller needs one
            raise ImageReadError(self.path, f"cannot decode level {level} at {box} ({type(exc).__name__}: {exc})") from exc

    def _read_resized(self, level: int, box: tuple[int, int, int, int], out_size: tuple[int, int]) -> np.ndarray:
        """Read a level box and resize it to ``out_size``, band by band when it is large."""
        x, y, w, h = box
        ow, oh = out_size
        if w * h <= min(_BAND_PIXELS, self.max_pixels):
            return _resize(self.read_region(level, box), (ow, oh))
        rows = max(1, min(_BAND_PIXELS, self.max_pixels) // w)
        step = max(1, int(rows * oh / h))  # output rows per band
        out = np.empty((oh, ow, 3), np.uint8)
        for r0 in range(0, oh, step):
            r1 = min(oh, r0 + step)
            y0, y1 = y + math.floor(r0 * h / oh), y + math.ceil(r1 * h / oh)
            out[r0:r1] = _resize(self.read_region(level, (x, y0, w, y1 - y0)), (ow, r1 - r0))
        return out

    def get_thumbnail(self, max_size: int | tuple[int, int]) -> np.ndarray:
        """The whole slide reduced to fit ``max_size``, read from the smallest level that suffices.

        Parameters
        ----------
        max_size : int or (int, int)
            Largest ``(width, height)`` (an int bounds both). The aspect ratio is kept; the
            thumbnail is never larger than level 0.

        Returns
        -------
        thumbnail : ndarray of shape (H, W, 3), uint8
            Its downsample is ``dimensions[0] / W`` level-0 pixels per thumbnail pixel.
        """
        mw, mh = (max_size, max_size) if isinstance(max_size, (int, np.integer)) else max_size
        w0, h0 = self.dimensions
        scale = min(mw / w0, mh / h0, 1.0)
        tw, th = max(1, round(w0 * scale)), max(1, round(h0 * scale))
        level = self.best_level_for_downsample(min(w0 / tw, h0 / th))
        lw, lh = self.level_dimensions[level]
        return self._read_resized(level, (0, 0, lw, lh), (tw, th))

    def read_field(self, box: tuple[float, float, float, float], out_size: tuple[int, int]) -> np.ndarray:
        """Read a field of a given level-0 footprint at an output size, from the level nearest it.

        E.g. a ``2048 x 1536`` field at level 0 read as ``512 x 384`` is decoded from the
        downsample-4 level (if the slide has one) rather than from level 0.

        Parameters
        ----------
        box : (float, float, float, float)
            ``(x, y, width, height)`` in **level-0** pixels.
        out_size : (int, int)
            ``(width, height)`` of the result.

        Returns
        -------
        field : ndarray of shape (out_size[1], out_size[0], 3), uint8
            Read from the coarsest level not coarser than the output, then area-resized. Where
            the box does not fall on that level's pixel grid it is placed to within half an output
            pixel.
        """
        x, y, w, h = (float(v) for v in box)
        ow, oh = (int(v) for v in out_size)
        if w <= 0 or h <= 0 or ow <= 0 or oh <= 0:
            raise ValueError(f"field and output sizes must be positive, got {box} -> {out_size}")
        level = self.best_level_for_downsample(min(w / ow, h / oh))
        ds = self.level_downsamples[level]
        lx, ly, lw, lh = x / ds, y / ds, w / ds, h / ds
        ix0, iy0 = math.floor(lx + 1e-6), math.floor(ly + 1e-6)
        ix1, iy1 = math.ceil(lx + lw - 1e-6), math.ceil(ly + lh - 1e-6)
        if (ix1 - ix0, iy1 - iy0) == (round(lw), round(lh)) and abs(lx - ix0) < 1e-6 and abs(ly - iy0) < 1e-6:
            return self._read_resized(level, (ix0, iy0, ix1 - ix0, iy1 - iy0), (ow, oh))
        fx, fy = ow / lw, oh / lh  # output pixels per level pixel
        hw, hh = max(ow, round((ix1 - ix0) * fx)), max(oh, round((iy1 - iy0) * fy))
        hull = self._read_resized(level, (ix0, iy0, ix1 - ix0, iy1 - iy0), (hw, hh))
        cx, cy = min(hw - ow, round((lx - ix0) * fx)), min(hh - oh, round((ly - iy0) * fy))
        return np.ascontiguousarray(hull[cy : cy + oh, cx : cx + ow])


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if (image.shape[1], image.shape[0]) == tuple(size):
        return image
    interp = cv2.INTER_AREA if size[0] <= image.shape[1] and size[1] <= image.shape[0] else cv2.INTER_LINEAR
    return cv2.resize(image, size, interpolation=interp)


def _openslide_format(path: Path) -> str | None:
    try:
        import openslide
    except Exception:  # openslide-bin missing on this platform: tifffile still reads TIFFs
        return None
    try:
        return openslide.OpenSlide.detect_format(str(path))
    except Exception:
        return None


def _open_backend(path: Path, backend: str):
    with open(path, "rb") as f:
        magic = f.read(4)
    if backend == "image" or (backend == "auto" and magic.startswith(_FLAT_MAGIC)):
        from ..imageio import read_image

        return ArrayBackend(read_image(path))
    if backend == "openslide":
        return OpenSlideBackend(path)
    if backend == "tifffile":
        return TiffBackend(path)
    fmt = _openslide_format(path)
    if magic not in _TIFF_MAGIC:
        if fmt is None:
            raise ValueError("not an image or slide file (unknown or unsupported format)")
        return OpenSlideBackend(path)
    if fmt is not None and fmt != "generic-tiff":
        return OpenSlideBackend(path)
    # generic and OME TIFFs: tifffile decodes tiles 5-8x faster than OpenSlide (2000+ vs 230-430
    # reads/s, benchmarks/bench_slide.py), reads each level's own pixels (OpenSlide resamples levels
    # whose downsample is fractional) and also finds SubIFD pyramids
    return TiffBackend(path)


def open_slide(
    path: str | os.PathLike, *, backend: str = "auto", max_pixels: int = DEFAULT_MAX_PIXELS
) -> Slide:
    """Open a whole-slide image (or a flat image as a one-level slide).

    Parameters
    ----------
    path : path-like
        SVS, NDPI, MRXS, SCN, VMS, BIF, pyramidal/plain/OME TIFF, PNG, JPEG or BMP. The format is
        found from the content, not the suffix.
    backend : {"auto", "openslide", "tifffile", "image"}
        ``"auto"``: OpenSlide for the vendor formats it recognises (SVS, NDPI, MRXS, SCN, ...),
        tifffile for generic, pyramidal and OME TIFFs (5-8x the tile throughput of OpenSlide on
        them, each level's exact pixels, SubIFD pyramids too), ``read_image`` for flat images.
    max_pixels : int
        Cap on the pixels of one read (see :attr:`Slide.max_pixels`).

    Returns
    -------
    slide : Slide

    Raises
    ------
    ImageReadError
        The file is missing, empty, corrupt or not a format any backend reads; the message names it.
    """
    path = Path(path)
    if backend not in ("auto", "openslide", "tifffile", "image"):
        raise ValueError(f"unknown backend {backend!r}")
    if not path.exists():
        raise ImageReadError(path, "file does not exist")
    if path.is_dir():
        owner = mrxs_owner(path)
        if owner is not None:
            raise ImageReadError(path, f"is the data folder of the MIRAX slide {owner.name}; open {owner.name} instead")
        raise ImageReadError(path, "is a folder, not a slide file")
    if path.suffix.lower() == ".mrxs":
        # OpenSlide reads nothing from the .mrxs itself (it may even be empty): the slide is its folder
        data = path.with_suffix("")
        if not (data / MRXS_INDEX).is_file():
            raise ImageReadError(
                path, f"MIRAX slide without its data: the folder {data.name}/ holding {MRXS_INDEX} must sit beside it"
            )
    elif path.is_file() and path.stat().st_size == 0:
        raise ImageReadError(path, "file is empty (0 bytes)")
    try:
        return Slide(path, _open_backend(path, backend), max_pixels=max_pixels)
    except ImageReadError:
        raise
    except MemoryError:
        raise ImageReadError(path, "not enough memory to open it") from None
    except Exception as exc:  # OpenSlide, tifffile and decoders raise many types
        text = str(exc).strip() or type(exc).__name__
        if "not a tiff" in text.lower() or "unsupported" in text.lower():
            text = f"not a readable slide ({text})"
        raise ImageReadError(path, text) from exc


def is_pyramidal(path: str | os.PathLike) -> bool:
    """Whether ``path`` opens as a slide of more than one level (headers only; no pixels decoded)."""
    try:
        with open_slide(path) as slide:
            return slide.level_count > 1
    except ImageReadError:
        return False


def is_slide_path(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a whole-slide image: a slide suffix, and for ``.tif``/``.tiff`` a pyramid.

    A MIRAX ``.mrxs`` counts when its data folder (same stem, holding ``Slidedat.ini``) sits
    beside it.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SLIDE_SUFFIXES or path.is_dir():
        return False
    if suffix in (".tif", ".tiff"):
        return is_pyramidal(path)
    if suffix == ".mrxs":
        return (path.with_suffix("") / MRXS_INDEX).is_file()
    return True


def mrxs_owner(folder: str | os.PathLike) -> Path | None:
    """The ``.mrxs`` file whose data folder ``folder`` is (it holds ``Slidedat.ini``), or None.

    Folder imports skip such folders: their ``Data*.dat`` and ``Index.dat`` are parts of the
    slide, not images.
    """
    folder = Path(folder)
    if not (folder / MRXS_INDEX).is_file():
        return None
    for candidate in (folder.with_name(folder.name + ".mrxs"), folder.with_name(folder.name + ".MRXS")):
        if candidate.is_file():
            return candidate
    return None
