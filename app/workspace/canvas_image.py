"""What the canvas draws under its layers: a flat image (a one-level "slide" held in memory) or a slide's tile pyramid.

Both answer the same questions for :class:`~app.workspace.canvas_view.CanvasView`: their
``dimensions`` (level-0 width, height), ``mpp`` and ``objective_power`` (None when not
stored), a ``thumbnail`` for the overview, which tiles a viewport still lacks (:meth:`jobs`,
:meth:`missing`) and how to ``paint`` the part of the view that was exposed.

A flat image is converted once to a ``QImage`` in ``Format_RGB32`` (the raster engine's
native format: drawing it at 1:1 is a memory copy) and drawn straight from it, so a
2048x1536 field pans and zooms as fast as a plain image view. A slide is drawn from a pyramid
of *viewer levels* with downsamples 1, 2, 4, ...: each tile is a 512 x 512 block of one viewer
level, read by :meth:`Slide.read_field` from the finest slide level it needs in a pool thread
and kept in the canvas's byte-capped :class:`~gusa_core.slides.tiles.TileCache`. A paint
draws only what is cached; a missing tile is filled from a cached coarser tile or the
thumbnail, so the GUI thread never waits for a decoder.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from PySide6.QtCore import QPointF, QRect, QRectF, QSizeF
from PySide6.QtGui import QImage, QPainter

from app.base.coords import rc_to_xy
from gusa_core.slides.tiles import level_for_zoom, viewport_tiles

__all__ = ["FlatImage", "SlidePyramid", "TILE_SIZE", "numpy_to_qimage", "qimage_view", "rgb_to_bgra"]

TILE_SIZE = 512
_generations = itertools.count(1)  # tile keys of a closed slide never match a new one


def rgb_to_bgra(image: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` RGB to ``(H, W, 4)`` BGRA bytes: the memory layout of ``QImage.Format_RGB32``.

    Safe to call off the GUI thread (the prefetcher and the tile loader do).
    """
    import cv2  # lazily: keeps it off the start-up path

    return cv2.cvtColor(np.ascontiguousarray(image, dtype=np.uint8), cv2.COLOR_RGB2BGRA)


def numpy_to_qimage(image: np.ndarray, *, bgra: np.ndarray | None = None) -> QImage:
    """An ``(H, W, 3)`` uint8 RGB array as a ``QImage`` in ``Format_RGB32``.

    The ``QImage`` shares the memory of a BGRA copy; the copy is kept on the image
    object (``qimage._buffer``) so it lives as long as the image.
    """
    if bgra is None:
        bgra = rgb_to_bgra(image)
    h, w = bgra.shape[:2]
    qimg = QImage(bgra.data, w, h, 4 * w, QImage.Format.Format_RGB32)
    qimg._buffer = bgra  # noqa: SLF001 - keeps the pixels alive
    return qimg


def qimage_view(qimage: QImage) -> np.ndarray:
    """A writable ``(H, W)`` uint32 numpy view on a 32-bit ``QImage``'s pixels."""
    ptr = qimage.bits()
    arr = np.frombuffer(ptr, dtype=np.uint32, count=qimage.bytesPerLine() * qimage.height() // 4)
    return arr.reshape(qimage.height(), qimage.bytesPerLine() // 4)[:, : qimage.width()]


def _load_tile(slide, box0: tuple[float, float, float, float], size: tuple[int, int]) -> QImage:
    """Runs in a pool thread: read one viewer tile and make it a ``QImage`` (no widget touched)."""
    rgb = slide.read_field(box0, size)
    return numpy_to_qimage(rgb, bgra=rgb_to_bgra(rgb))


class FlatImage:
    """An ``(H, W, 3)`` uint8 image as a one-level slide, drawn from one ``QImage``."""

    mpp = None
    objective_power = None
    pyramid = False

    def __init__(self, image: np.ndarray, *, bgra: np.ndarray | None = None):
        self.qimage = numpy_to_qimage(image, bgra=bgra)
        self.dimensions = (self.qimage.width(), self.qimage.height())
        self.downsamples = [1.0]

    def thumbnail(self) -> QImage:
        return self.qimage

    def level_for(self, zoom: float) -> int:
        return 0

    def jobs(self, cache, zoom: float, view, cap_bytes: int) -> list:
        return []

    def missing(self, cache, zoom: float, view) -> int:
        return 0

    def pixel_rgb(self, row: int, col: int) -> tuple[int, int, int] | None:
        if not (0 <= row < self.qimage.height() and 0 <= col < self.qimage.width()):
            return None
        x, y = rc_to_xy(row, col)
        c = self.qimage.pixel(int(x), int(y))
        return (c >> 16) & 255, (c >> 8) & 255, c & 255

    def paint(self, painter: QPainter, canvas, exposed: QRect, cache) -> None:
        """Draw the image pixels under ``exposed`` (plus a margin for smooth filtering)."""
        zoom = canvas.zoom()
        tl = canvas.widget_to_image(QPointF(exposed.topLeft()))
        br = canvas.widget_to_image(QPointF(exposed.bottomRight()) + QPointF(1, 1))
        src = QRectF(tl, br).toAlignedRect().adjusted(-2, -2, 2, 2).intersected(self.qimage.rect())
        if src.isEmpty():
            return
        painter.save()
        painter.translate(canvas.offset())
        painter.scale(zoom, zoom)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, zoom < 1.0)
        painter.drawImage(QRectF(src), self.qimage, QRectF(src))
        painter.restore()


class SlidePyramid:
    """A :class:`~gusa_core.slides.Slide` seen through viewer levels of downsample 1, 2, 4, ..."""

    pyramid = True

    def __init__(self, slide, thumbnail: np.ndarray):
        self.slide = slide
        self.gen = next(_generations)
        self.dimensions = tuple(slide.dimensions)
        self.mpp = slide.mpp
        self.objective_power = slide.objective_power
        self._thumb = numpy_to_qimage(thumbnail)
        w, h = self.dimensions
        self.downsamples = [1.0]
        while max(w, h) / self.downsamples[-1] > TILE_SIZE:
            self.downsamples.append(self.downsamples[-1] * 2)
        self._dims = [(max(1, math.ceil(w / d)), max(1, math.ceil(h / d))) for d in self.downsamples]

    def thumbnail(self) -> QImage:
        return self._thumb

    def level_for(self, zoom: float) -> int:
        """The viewer level drawn at ``zoom`` (its downsample is ``2 ** level``)."""
        return level_for_zoom(self.downsamples, zoom)

    def _tiles(self, level: int, view, margin: int = 0):
        return viewport_tiles(self._dims, self.downsamples, level, view, tile_size=TILE_SIZE, margin=margin)

    def missing(self, cache, zoom: float, view) -> int:
        """Tiles of ``view`` (a level-0 box) not yet in ``cache``."""
        return sum(1 for t in self._tiles(self.level_for(zoom), view) if (self.gen, *t.key) not in cache)

    def jobs(self, cache, zoom: float, view, cap_bytes: int) -> list:
        """``[(key, load)]``: the viewport's missing tiles, then (while they fit in half of ``cap_bytes``) a ring
        around it and the next coarser level, the instant fallback when zooming out."""
        level = self.level_for(zoom)
        wanted = self._tiles(level, view)
        extra = self._tiles(level, view, margin=1)
        if level + 1 < len(self.downsamples):
            extra += self._tiles(level + 1, view)
        if (len(wanted) + len(extra)) * TILE_SIZE * TILE_SIZE * 4 <= cap_bytes // 2:
            wanted += extra
        return [((self.gen, *t.key), self._job(t.level, t.box)) for t in wanted if (self.gen, *t.key) not in cache]

    def _job(self, level: int, box: tuple[int, int, int, int]):
        d = self.downsamples[level]
        x, y, w, h = box
        slide = self.slide
        return lambda: _load_tile(slide, (x * d, y * d, w * d, h * d), (w, h))

    def tile_box0(self, key) -> QRectF:
        """The level-0 rectangle of tile ``key`` (as given to the pool)."""
        _, level, col, row = key
        d = self.downsamples[level]
        return QRectF(col * TILE_SIZE * d, row * TILE_SIZE * d, TILE_SIZE * d, TILE_SIZE * d)

    def pixel_rgb(self, row: int, col: int) -> None:
        return None  # the level-0 pixel may not be decoded: not worth a read on every mouse move

    def paint(self, painter: QPainter, canvas, exposed: QRect, cache) -> None:
        """Draw the cached tiles under ``exposed``; a missing tile from a coarser one or the thumbnail."""
        zoom = canvas.zoom()
        area = canvas.widget_box_to_image(exposed)
        level = self.level_for(zoom)
        d = self.downsamples[level]
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, zoom * d < 1.0)
        for t in self._tiles(level, area):
            x, y, w, h = t.box
            target = QRectF(canvas.image_to_widget(QPointF(x * d, y * d)), QSizeF(w * d * zoom, h * d * zoom))
            img = cache.get((self.gen, *t.key))
            if img is not None:
                painter.drawImage(target, img, QRectF(img.rect()))
            else:
                self._paint_fallback(painter, cache, level, (x * d, y * d, w * d, h * d), target)

    def _paint_fallback(self, painter: QPainter, cache, level: int, box0, target: QRectF) -> None:
        x, y, w, h = box0
        for up in range(level + 1, min(len(self.downsamples), level + 4)):
            d = self.downsamples[up]
            col, row = int(x // (TILE_SIZE * d)), int(y // (TILE_SIZE * d))
            img = cache.peek((self.gen, up, col, row))
            if img is not None:
                painter.drawImage(target, img, QRectF(x / d - col * TILE_SIZE, y / d - row * TILE_SIZE, w / d, h / d))
                return
        tw, th = self.dimensions
        sx, sy = self._thumb.width() / tw, self._thumb.height() / th
        painter.drawImage(target, self._thumb, QRectF(x * sx, y * sy, w * sx, h * sy))
