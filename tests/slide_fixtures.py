"""Generated whole-slide images for tests: tiled, JPEG-compressed pyramidal TIFFs written tile by tile.

Import it as ``from slide_fixtures import ...`` (``tests/`` is on ``sys.path`` through
``tests/conftest.py``, as ``tests/app/app_helpers.py`` is for the app tests).

A *painter* is a callable ``painter(x0, y0, w, h, downsample) -> ndarray (h, w, 3) uint8``: the
RGB tile whose top-left pixel covers level-0 position ``(x0, y0)`` and whose pixels each cover
``downsample`` level-0 pixels. It is evaluated at the pixel centres, so every pyramid level is
painted directly at its own scale and no level is ever held in memory whole. A painter may also
have ``is_blank(x0, y0, x1, y1) -> bool`` (level-0 rectangle holds only background): such tiles
are written from one cached encoding without painting.
"""

from __future__ import annotations

from pathlib import Path

import imagecodecs
import numpy as np
import tifffile

__all__ = ["BACKGROUND", "TissuePainter", "TwoClassPainter", "pyramid_levels", "write_pyramid_tiff"]

#: Colour of glass (no tissue); exactly uniform so blank tiles are encoded once.
BACKGROUND = (244, 244, 246)


def _centres(start: float, n: int, downsample: float) -> np.ndarray:
    return start + (np.arange(n, dtype=np.float64) + 0.5) * downsample


class TissuePainter:
    """Pink/purple tissue-like ellipses ("blobs") on a white background, deterministic by ``seed``.

    Parameters
    ----------
    width, height : int
        Level-0 size of the slide.
    seed : int
        Seed of the blob layout.
    n_blobs : int
        How many ellipses are drawn.
    size : float
        Mean blob radius as a fraction of ``min(width, height)``.
    """

    def __init__(self, width: int, height: int, *, seed: int = 0, n_blobs: int = 8, size: float = 0.12):
        rng = np.random.default_rng(seed)
        short = min(width, height)
        self.width, self.height = int(width), int(height)
        cx = rng.uniform(0.15, 0.85, n_blobs) * width
        cy = rng.uniform(0.15, 0.85, n_blobs) * height
        rx = rng.uniform(0.6, 1.4, n_blobs) * size * short
        ry = rng.uniform(0.6, 1.4, n_blobs) * size * short
        self.blobs = list(zip(cx, cy, rx, ry))
        self.period = max(4.0, short / 400.0)  # nuclei spacing in level-0 pixels

    def inside(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Whether level-0 points ``(x, y)`` (broadcastable arrays) lie in tissue."""
        x, y = np.broadcast_arrays(np.asarray(x, np.float64), np.asarray(y, np.float64))
        out = np.zeros(x.shape, bool)
        for cx, cy, rx, ry in self.blobs:
            out |= ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0
        return out

    def is_blank(self, x0: float, y0: float, x1: float, y1: float) -> bool:
        """Whether the level-0 rectangle ``[x0, x1) x [y0, y1)`` holds no tissue (writers skip painting it)."""
        return not any(
            cx + rx >= x0 and cx - rx <= x1 and cy + ry >= y0 and cy - ry <= y1 for cx, cy, rx, ry in self.blobs
        )

    def truth_mask(self, shape: tuple[int, int]) -> np.ndarray:
        """The painted tissue at a thumbnail of ``shape`` (rows, cols) covering the whole slide."""
        ys = _centres(0, shape[0], self.height / shape[0])[:, None]
        xs = _centres(0, shape[1], self.width / shape[1])[None, :]
        return self.inside(xs, ys)

    def __call__(self, x0: float, y0: float, w: int, h: int, downsample: float = 1.0) -> np.ndarray:
        tile = np.empty((h, w, 3), np.uint8)
        tile[:] = BACKGROUND
        if self.is_blank(x0, y0, x0 + w * downsample, y0 + h * downsample):
            return tile
        ys = _centres(y0, h, downsample)[:, None]
        xs = _centres(x0, w, downsample)[None, :]
        tissue = self.inside(xs, ys)
        p = self.period
        nuclei = (np.sin(xs / p) * np.sin(ys / (1.3 * p)) > 0.55) & tissue
        tile[tissue] = (228, 150, 190)  # eosin pink
        tile[nuclei] = (120, 62, 150)  # haematoxylin purple
        return tile


class TwoClassPainter:
    """Tissue filling the slide inside a margin: class A (pink, stripes) on the left half, class B (purple, dots) on the right.

    Parameters
    ----------
    width, height : int
        Level-0 size of the slide.
    margin : float
        Width of the background border as a fraction of each side.
    """

    def __init__(self, width: int, height: int, *, margin: float = 0.05):
        self.width, self.height = int(width), int(height)
        self.margin = margin
        self.period = max(4.0, min(width, height) / 300.0)

    def inside(self, x, y) -> np.ndarray:
        """Whether level-0 points lie in tissue (inside the margin)."""
        mx, my = self.margin * self.width, self.margin * self.height
        return (x >= mx) & (x < self.width - mx) & (y >= my) & (y < self.height - my)

    def label(self, x, y) -> np.ndarray:
        """Class index of level-0 points: 0 (A) left of the vertical midline, 1 (B) right of it."""
        return (np.asarray(x) >= self.width / 2).astype(np.int64) + 0 * np.asarray(y, np.int64)

    def __call__(self, x0: float, y0: float, w: int, h: int, downsample: float = 1.0) -> np.ndarray:
        ys = _centres(y0, h, downsample)[:, None]
        xs = _centres(x0, w, downsample)[None, :]
        xs, ys = np.broadcast_arrays(xs, ys)
        tile = np.empty((h, w, 3), np.uint8)
        tile[:] = BACKGROUND
        tissue = self.inside(xs, ys)
        right = xs >= self.width / 2
        p = self.period
        stripes = np.sin(ys / p) > 0.0
        dots = (np.sin(xs / p) * np.sin(ys / p)) > 0.5
        a, b = tissue & ~right, tissue & right
        tile[a] = (236, 170, 200)
        tile[a & stripes] = (214, 120, 170)
        tile[b] = (170, 120, 200)
        tile[b & dots] = (90, 40, 130)
        return tile


def pyramid_levels(width: int, height: int, *, min_size: int = 512, factor: int = 4) -> list[int]:
    """Downsample factors ``1, factor, factor**2, ...`` while the level's longer side stays >= ``min_size``."""
    out = [1]
    while max(width, height) // (out[-1] * factor) >= min_size:
        out.append(out[-1] * factor)
    return out


def _tiles(painter, w, h, ds, tile, quality, cache):
    """Encoded JPEG tiles of one level, row by row; uniform tiles are encoded once."""
    is_blank = getattr(painter, "is_blank", None) if cache is not None else None
    for ty in range(0, h, tile):
        for tx in range(0, w, tile):
            tw, th = min(tile, w - tx), min(tile, h - ty)
            if is_blank is not None and is_blank(tx * ds, ty * ds, (tx + tile) * ds, (ty + tile) * ds):
                if "blank" not in cache:
                    cache["blank"] = imagecodecs.jpeg_encode(np.full((tile, tile, 3), BACKGROUND, np.uint8), level=quality)
                yield cache["blank"]
                continue
            pix = painter(tx * ds, ty * ds, tw, th, float(ds))
            if (tw, th) != (tile, tile):  # pad edge tiles as TIFF stores them
                full = np.empty((tile, tile, 3), np.uint8)
                full[:] = pix[-1:, -1:]
                full[:th, :tw] = pix
                pix = full
            if cache is None:
                yield pix
                continue
            first = pix[0, 0]
            if (pix == first).all():
                key = tuple(int(v) for v in first)
                if key not in cache:
                    cache[key] = imagecodecs.jpeg_encode(pix, level=quality)
                yield cache[key]
            else:
                yield imagecodecs.jpeg_encode(pix, level=quality)


def write_pyramid_tiff(
    path,
    width: int,
    height: int,
    *,
    tile: int = 256,
    levels: list[int] | None = None,
    painter=None,
    mpp: float | None = 0.25,
    objective_power: float | None = None,
    jpeg: bool = True,
    quality: int = 90,
    layout: str = "pages",
) -> Path:
    """Write a tiled pyramidal TIFF tile by tile (a 40,000 x 30,000 slide never sits in memory).

    Parameters
    ----------
    path : path-like
        File to write.
    width, height : int
        Level-0 size.
    tile : int
        Tile side (a multiple of 16).
    levels : list of int, optional
        Downsample factors of the levels, starting at 1; default :func:`pyramid_levels`.
        Level ``k`` is ``width // levels[k]`` by ``height // levels[k]`` pixels.
    painter : callable, optional
        ``painter(x0, y0, w, h, downsample) -> (h, w, 3) uint8``; default :class:`TissuePainter`.
    mpp : float, optional
        Microns per level-0 pixel, stored as X/YResolution in pixels per centimetre (OpenSlide's
        generic-tiff driver reports it as ``openslide.mpp-x``); None stores no resolution.
    objective_power : float, optional
        When given, level 0 carries an Aperio ImageDescription (``|AppMag = 40|MPP = 0.25``) so
        OpenSlide's aperio driver reports vendor ``aperio``, the MPP and the objective power.
    jpeg : bool
        JPEG-compress the tiles (RGB, ``quality``); otherwise store them uncompressed.
    layout : {"pages", "subifds"}
        ``"pages"``: reduced levels are successive pages with NewSubfileType 1 (what OpenSlide
        reads as a pyramid). ``"subifds"``: reduced levels are SubIFDs of level 0 (tifffile reads
        the pyramid; OpenSlide sees level 0 only).

    Returns
    -------
    path : Path
    """
    path = Path(path)
    painter = painter if painter is not None else TissuePainter(width, height)
    levels = list(levels) if levels is not None else pyramid_levels(width, height)
    if levels[0] != 1 or layout not in ("pages", "subifds") or tile % 16:
        raise ValueError("levels must start at 1, layout be 'pages' or 'subifds', tile a multiple of 16")
    if objective_power is not None and layout != "pages":
        raise ValueError("an Aperio description needs layout='pages'")
    cache: dict | None = {} if jpeg else None
    with tifffile.TiffWriter(path, bigtiff=width * height * 3 > 2**31) as tw:
        for k, ds in enumerate(levels):
            w, h = max(1, width // ds), max(1, height // ds)
            kw = dict(shape=(h, w, 3), dtype=np.uint8, tile=(tile, tile), photometric="rgb",
                      compression="jpeg" if jpeg else None, metadata=None)
            if mpp is not None:
                res = 1e4 / (mpp * (width / w))
                kw.update(resolution=(res, 1e4 / (mpp * (height / h))), resolutionunit="CENTIMETER")
            if k == 0 and objective_power is not None:
                kw["description"] = (
                    f"Aperio Image Library (generated test slide)\r\n{width}x{height} ({tile}x{tile}) "
                    f"JPEG/RGB Q={quality}|AppMag = {objective_power:g}|MPP = {mpp:g}"
                )
            if k == 0 and layout == "subifds" and len(levels) > 1:
                kw["subifds"] = len(levels) - 1
            if k > 0:
                kw["subfiletype"] = 1
            tw.write(_tiles(painter, w, h, ds, tile, quality, cache), **kw)
    return path


class DemoHalvesPainter:
    """Demo tissue (:mod:`gusa_core.demo`) of one class on the left half and another on the right.

    The tissue is a grid of demo fields (:func:`gusa_core.demo.generate_field`), each covering
    one BACH field footprint at the slide's ``mpp``, laid outward from the vertical midline (so
    no field mixes the classes) inside a glass border. Each field is drawn at level-0 resolution
    once and area-resized for coarser levels, as training resizes a demo image to the input size.

    Parameters
    ----------
    width, height : int
        Level-0 size of the slide.
    classes : (str, str)
        Demo class names of the left and right halves.
    mpp : float
        µm per level-0 pixel (the slide must record the same).
    margin : (float, float)
        Glass border ``(left/right, top/bottom)`` in level-0 pixels.
    seed : int
        Seed of the drawn fields.
    """

    def __init__(self, width: int, height: int, classes=("Normal", "Invasive"), *, mpp: float,
                 margin: tuple[float, float] = (0.0, 0.0), seed: int = 0):
        from gusa_core.demo import DEMO_FIELD_UM

        self.width, self.height = int(width), int(height)
        self.classes = tuple(classes)
        self.mpp, self.margin, self.seed = float(mpp), tuple(float(m) for m in margin), int(seed)
        self.cell = (DEMO_FIELD_UM[0] / self.mpp, DEMO_FIELD_UM[1] / self.mpp)  # level-0 size of a field
        self._cells: dict = {}

    def inside(self, x, y) -> np.ndarray:
        """Whether level-0 points lie in tissue (inside the border)."""
        mx, my = self.margin
        return (x >= mx) & (x < self.width - mx) & (y >= my) & (y < self.height - my)

    def label(self, x, y) -> np.ndarray:
        """Index into ``classes`` of level-0 points: 0 left of the vertical midline, 1 right of it."""
        return (np.asarray(x) >= self.width / 2).astype(np.int64) + 0 * np.asarray(y, np.int64)

    def is_blank(self, x0: float, y0: float, x1: float, y1: float) -> bool:
        """Whether the level-0 rectangle holds only glass."""
        mx, my = self.margin
        return x1 <= mx or x0 >= self.width - mx or y1 <= my or y0 >= self.height - my

    def _cell(self, kx: int, ky: int, downsample: float) -> np.ndarray:
        """Field ``(kx, ky)`` (``kx < 0``: left half) at ``downsample``, drawn once at level 0."""
        import cv2

        from gusa_core.demo import generate_field

        key = (kx, ky, downsample)
        if key not in self._cells:
            if (kx, ky, 1.0) not in self._cells:
                label = self.classes[int(kx >= 0)]
                rng = np.random.default_rng([self.seed, kx + 2**20, ky])
                self._cells[(kx, ky, 1.0)] = generate_field(label, mpp=self.mpp, rng=rng)[0]
            full = self._cells[(kx, ky, 1.0)]
            if downsample != 1.0:
                size = (max(1, round(full.shape[1] / downsample)), max(1, round(full.shape[0] / downsample)))
                self._cells[key] = cv2.resize(full, size, interpolation=cv2.INTER_AREA)
        return self._cells[key]

    def __call__(self, x0: float, y0: float, w: int, h: int, downsample: float = 1.0) -> np.ndarray:
        tile = np.empty((h, w, 3), np.uint8)
        tile[:] = BACKGROUND
        if self.is_blank(x0, y0, x0 + w * downsample, y0 + h * downsample):
            return tile
        xs, ys = _centres(x0, w, downsample), _centres(y0, h, downsample)
        cw, ch = self.cell
        kxs = np.floor((xs - self.width / 2) / cw).astype(np.int64)
        kys = np.floor((ys - self.margin[1]) / ch).astype(np.int64)
        cols_in, rows_in = self.inside(xs, self.margin[1]), self.inside(self.margin[0], ys)
        for kx in np.unique(kxs[cols_in]):
            for ky in np.unique(kys[rows_in]):
                cols = np.flatnonzero(cols_in & (kxs == kx))
                rows = np.flatnonzero(rows_in & (kys == ky))
                if cols.size == 0 or rows.size == 0:
                    continue
                img = self._cell(int(kx), int(ky), float(downsample))
                fx = (xs[cols] - (self.width / 2 + kx * cw)) / (cw / img.shape[1])
                fy = (ys[rows] - (self.margin[1] + ky * ch)) / (ch / img.shape[0])
                ix = np.clip(fx.astype(np.int64), 0, img.shape[1] - 1)
                iy = np.clip(fy.astype(np.int64), 0, img.shape[0] - 1)
                tile[np.ix_(rows, cols)] = img[np.ix_(iy, ix)]
        return tile


__all__ += ["DemoHalvesPainter"]
