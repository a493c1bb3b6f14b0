"""Pixel sources behind :class:`~gusa_core.slides.reader.Slide`: OpenSlide, tifffile and a flat image.

Every backend reads a rectangle given in the pixels of one pyramid level and returns it as
``(h, w, 3) uint8`` RGB with everything outside the image (or outside the scanned area) white.
Backends hold no per-read state, so concurrent reads from several threads are safe: OpenSlide
handles are thread-safe, and the tifffile backend reads tile bytes with positioned reads
(``os.pread``; a lock around seek+read where that is missing) and decodes them without shared state.
"""

from __future__ import annotations

import math
import os
import re
import threading
from pathlib import Path

import numpy as np

__all__ = ["OpenSlideBackend", "TiffBackend", "ArrayBackend", "composite_on_white", "to_rgb8", "leica_xml_mpp"]


def composite_on_white(rgba: np.ndarray) -> np.ndarray:
    """Composite ``(h, w, 4)`` uint8 RGBA (straight alpha) over white, giving ``(h, w, 3)`` uint8."""
    rgb, alpha = rgba[..., :3], rgba[..., 3:4]
    if alpha.min() == 255:
        return np.ascontiguousarray(rgb)
    a = alpha.astype(np.uint16)
    return ((rgb * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)


def to_rgb8(arr: np.ndarray, *, bits: int | None = None, miniswhite: bool = False) -> np.ndarray:
    """Convert a decoded ``(h, w)`` or ``(h, w, s)`` segment to ``(h, w, 3)`` uint8 RGB.

    Grey is repeated, a second (grey+alpha) or fourth (RGBA) sample is composited over white,
    integer data wider than 8 bits is scaled by ``bits`` and floats in [0, 1] by 255.
    """
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.dtype != np.uint8:
        if arr.dtype.kind == "f":
            arr = (np.clip(np.nan_to_num(arr), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        elif arr.dtype.kind in "ui":
            nbits = bits if bits and bits <= arr.dtype.itemsize * 8 else arr.dtype.itemsize * 8
            arr = (np.clip(arr.astype(np.int64), 0, 2**nbits - 1) * 255 // (2**nbits - 1)).astype(np.uint8)
        else:
            raise ValueError(f"unsupported pixel type {arr.dtype}")
    if miniswhite:
        arr = 255 - arr
    s = arr.shape[2]
    if s == 1:
        return np.repeat(arr, 3, axis=2)
    if s == 2:
        return composite_on_white(np.concatenate([np.repeat(arr[..., :1], 3, axis=2), arr[..., 1:]], axis=2))
    if s == 3:
        return arr
    return composite_on_white(arr[..., :4])


def _paste(out: np.ndarray, src: np.ndarray, x: int, y: int, sx: int, sy: int) -> None:
    """Copy ``src`` (whose top-left is at level pixel ``(sx, sy)``) into ``out`` (top-left ``(x, y)``)."""
    h, w = out.shape[:2]
    x0, y0 = max(x, sx), max(y, sy)
    x1, y1 = min(x + w, sx + src.shape[1]), min(y + h, sy + src.shape[0])
    if x1 > x0 and y1 > y0:
        out[y0 - y : y1 - y, x0 - x : x1 - x] = src[y0 - sy : y1 - sy, x0 - sx : x1 - sx]


class OpenSlideBackend:
    """A slide read through OpenSlide (SVS, NDPI, MRXS, SCN, generic tiled TIFF, ...)."""

    name = "openslide"

    def __init__(self, path: Path):
        import openslide

        self._osr = openslide.OpenSlide(str(path))
        props = self._osr.properties
        self.vendor = props.get(openslide.PROPERTY_NAME_VENDOR) or "unknown"
        self.level_dimensions = [tuple(int(v) for v in d) for d in self._osr.level_dimensions]
        self.level_downsamples = [float(d) for d in self._osr.level_downsamples]
        mx, my = props.get(openslide.PROPERTY_NAME_MPP_X), props.get(openslide.PROPERTY_NAME_MPP_Y)
        self.mpp = (float(mx), float(my)) if mx and my and float(mx) > 0 and float(my) > 0 else None
        if self.mpp is None and self.vendor == "leica":
            self.mpp = leica_xml_mpp(path)
        power = props.get(openslide.PROPERTY_NAME_OBJECTIVE_POWER)
        self.objective_power = float(power) if power else None
        self.properties = dict(props)
        w0, h0 = self.level_dimensions[0]
        try:
            bx, by, bw, bh = (int(props[f"openslide.bounds-{k}"]) for k in ("x", "y", "width", "height"))
            self.bounds = (bx, by, bw, bh) if bw > 0 and bh > 0 else (0, 0, w0, h0)
        except (KeyError, ValueError):
            self.bounds = (0, 0, w0, h0)

    def read(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        # OpenSlide takes the top-left in level-0 pixels and divides it by the level's downsample
        ds = self.level_downsamples[level]
        region = self._osr.read_region((int(round(x * ds)), int(round(y * ds))), level, (w, h))
        return composite_on_white(np.asarray(region))

    def close(self) -> None:
        self._osr.close()


def leica_xml_mpp(path: Path) -> tuple[float, float] | None:
    """Microns per level-0 pixel of a Leica SCN from its XML, for files without resolution tags.

    The XML gives each scanned region's size in nanometres (``view``) and in pixels per pyramid
    directory (``pixels/dimension``); OpenSlide's level 0 takes the finest region, as here.
    """
    import xml.etree.ElementTree as ET

    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            root = ET.fromstring(tif.pages[0].description)
    except Exception:  # noqa: BLE001 - no XML, no fallback: the slide is simply uncalibrated
        return None
    ns = {"d": root.tag[1:].split("}")[0]} if root.tag.startswith("{") else {"d": ""}
    q = (lambda t: f"d:{t}") if ns["d"] else (lambda t: t)
    coll = root.find(q("collection"), ns)
    if coll is None:
        return None
    best = None
    for image in coll.findall(q("image"), ns):
        view = image.find(q("view"), ns)
        dims = [d for d in image.findall(f"{q('pixels')}/{q('dimension')}", ns) if d.get("z", "0") == "0"]
        if view is None or not dims:
            continue
        is_macro = view.get("offsetX") == "0" and view.get("offsetY") == "0" and (
            view.get("sizeX"), view.get("sizeY")) == (coll.get("sizeX"), coll.get("sizeY"))
        if is_macro:
            continue
        try:
            widest = max(dims, key=lambda d: int(d.get("sizeX")))
            nm_x = int(view.get("sizeX")) / int(widest.get("sizeX"))
            nm_y = int(view.get("sizeY")) / int(widest.get("sizeY"))
        except (TypeError, ValueError, ZeroDivisionError):
            continue
        if nm_x > 0 and nm_y > 0 and (best is None or nm_x < best[0]):
            best = (nm_x, nm_y)
    return None if best is None else (best[0] / 1000.0, best[1] / 1000.0)


def _find_levels(tif) -> tuple[str, list]:
    """The pages of the pyramid levels of the first image: SubIFDs/OME levels, else reduced successive pages."""
    series = tif.series[0]
    pages = []
    for lev in series.levels:
        page = lev.pages[0]
        pages.append(page.aspage() if hasattr(page, "aspage") else page)
    if len(pages) > 1:
        return series.kind or "generic", pages
    first = pages[0]
    w, h = first.imagewidth, first.imagelength
    for page in tif.pages[first.index + 1 if isinstance(first.index, int) else 1 :]:
        pw, ph = page.imagewidth, page.imagelength
        same_kind = page.samplesperpixel == first.samplesperpixel and page.dtype == first.dtype
        # floor-divided level sizes make the two ratios differ by up to a pixel's worth
        aspect_ok = pw > 0 and ph > 0 and abs(w / pw - h / ph) <= (w / pw) * (0.02 + 2.0 / min(pw, ph))
        if not (same_kind and pw < pages[-1].imagewidth and aspect_ok and (page.is_tiled or page.subfiletype & 1)):
            break
        pages.append(page)
    return series.kind or "generic", pages


def _page_mpp(tif, page) -> tuple[float, float] | None:
    """Microns per pixel from OME PhysicalSize, an Aperio ``MPP =`` or the resolution tags."""
    if tif.is_ome and tif.ome_metadata:
        mx = re.search(r'PhysicalSizeX="([0-9.eE+-]+)"', tif.ome_metadata)
        my = re.search(r'PhysicalSizeY="([0-9.eE+-]+)"', tif.ome_metadata)
        ux = re.search(r'PhysicalSizeXUnit="([^"]+)"', tif.ome_metadata)
        if mx and my and (ux is None or ux.group(1) in ("µm", "um", "\u00b5m")):
            return float(mx.group(1)), float(my.group(1))
    m = re.search(r"\|\s*MPP\s*=\s*([0-9.]+)", page.description or "")
    if m and float(m.group(1)) > 0:
        return float(m.group(1)), float(m.group(1))
    tags = page.tags
    unit = tags.get("ResolutionUnit")
    xr, yr = tags.get("XResolution"), tags.get("YResolution")
    if unit is None or xr is None or yr is None:
        return None
    scale = {2: 25400.0, 3: 10000.0}.get(int(unit.value))
    try:
        rx, ry = (v.value[0] / v.value[1] for v in (xr, yr))
    except (TypeError, ZeroDivisionError, IndexError):
        return None
    if scale is None or rx <= 0 or ry <= 0:
        return None
    return scale / rx, scale / ry


class _TiffLevel:
    """Geometry and decoder of one TIFF page, read segment (tile or strip) by segment."""

    def __init__(self, page):
        self.width, self.height = int(page.imagewidth), int(page.imagelength)
        if page.planarconfig == 2 and page.samplesperpixel > 1:
            raise ValueError("separate colour planes (PlanarConfiguration 2) are not supported")
        if page.is_tiled:
            self.seg_w, self.seg_h = int(page.tilewidth), int(page.tilelength)
        else:
            self.seg_w, self.seg_h = self.width, int(min(page.rowsperstrip or self.height, self.height))
        self.per_row = math.ceil(self.width / self.seg_w)
        self.offsets = np.asarray(page.dataoffsets, np.int64)
        self.counts = np.asarray(page.databytecounts, np.int64)
        if self.offsets.size < self.per_row * math.ceil(self.height / self.seg_h):
            raise ValueError("fewer tiles or strips than the image size needs (corrupt file)")
        self.decode = page.decode
        self.jpegtables = page.jpegtables
        self.bits = int(page.bitspersample) if isinstance(page.bitspersample, (int, np.integer)) else None
        self.miniswhite = int(page.photometric) == 0
        cmap = page.colormap if int(page.photometric) == 3 else None
        self.colormap = None if cmap is None else to_rgb8(np.asarray(cmap).T[None], bits=16)[0]


class TiffBackend:
    """A TIFF read with tifffile: plain, OME or generic pyramidal (SubIFDs or reduced successive pages)."""

    name = "tifffile"

    def __init__(self, path: Path):
        import tifffile

        self._path = path
        with tifffile.TiffFile(path) as tif:
            if not tif.pages or not tif.series:
                raise ValueError("no readable image in the TIFF (truncated or corrupt file)")
            kind, pages = _find_levels(tif)
            self._levels = [_TiffLevel(p) for p in pages]
            self.mpp = _page_mpp(tif, pages[0])
            m = re.search(r"\|\s*AppMag\s*=\s*([0-9.]+)", pages[0].description or "")
            self.objective_power = float(m.group(1)) if m else None
        self.vendor = f"tiff-{kind}"
        size = path.stat().st_size
        for lev in self._levels:
            if lev.offsets.size and int((lev.offsets + lev.counts).max()) > size:
                raise ValueError("file is truncated (image data runs past the end of the file)")
        w0, h0 = self._levels[0].width, self._levels[0].height
        self.level_dimensions = [(lev.width, lev.height) for lev in self._levels]
        self.level_downsamples = [(w0 / lev.width + h0 / lev.height) / 2.0 for lev in self._levels]
        self.bounds = (0, 0, w0, h0)
        self.properties: dict[str, str] = {}
        self._file = open(path, "rb")
        self._lock = threading.Lock()

    def _bytes(self, offset: int, count: int) -> bytes:
        if hasattr(os, "pread"):
            return os.pread(self._file.fileno(), count, offset)
        with self._lock:
            self._file.seek(offset)
            return self._file.read(count)

    def _segment(self, lev: _TiffLevel, index: int) -> np.ndarray | None:
        count = int(lev.counts[index])
        data = self._bytes(int(lev.offsets[index]), count) if count else None
        seg = lev.decode(data, index, jpegtables=lev.jpegtables)[0]
        if seg is None:
            return None
        seg = seg.reshape(seg.shape[-3:])
        if lev.colormap is not None:
            return lev.colormap[seg[..., 0]]
        return to_rgb8(seg, bits=lev.bits, miniswhite=lev.miniswhite)

    def read(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        lev = self._levels[level]
        out = np.full((h, w, 3), 255, np.uint8)
        c0, c1 = max(0, x // lev.seg_w), min(lev.per_row, -(-(x + w) // lev.seg_w))
        r0, r1 = max(0, y // lev.seg_h), min(-(-lev.height // lev.seg_h), -(-(y + h) // lev.seg_h))
        for r in range(r0, r1):
            for c in range(c0, c1):
                seg = self._segment(lev, r * lev.per_row + c)
                if seg is not None:
                    # edge tiles are padded: crop them to the image before pasting
                    seg = seg[: lev.height - r * lev.seg_h, : lev.width - c * lev.seg_w]
                    _paste(out, seg, x, y, c * lev.seg_w, r * lev.seg_h)
        return out

    def close(self) -> None:
        self._file.close()


class ArrayBackend:
    """A flat image (PNG, JPEG, BMP) decoded once: a one-level slide."""

    name = "image"
    vendor = "image"
    mpp = None
    objective_power = None

    def __init__(self, image: np.ndarray):
        self._image = image
        self.level_dimensions = [(int(image.shape[1]), int(image.shape[0]))]
        self.level_downsamples = [1.0]
        self.bounds = (0, 0, int(image.shape[1]), int(image.shape[0]))
        self.properties: dict[str, str] = {}

    def read(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        out = np.full((h, w, 3), 255, np.uint8)
        _paste(out, self._image, x, y, 0, 0)
        return out

    def close(self) -> None:
        self._image = np.zeros((0, 0, 3), np.uint8)
