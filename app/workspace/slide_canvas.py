"""Rendering half of the slide viewer: tiles of the right level, decoded off the GUI thread, and class regions.

The view maps **level-0** slide pixels to widget pixels as ``widget = level0 * zoom + offset``.
It draws from a pyramid of *viewer levels* with downsamples 1, 2, 4, ...: each tile is a
512 x 512 block of one viewer level, read by :meth:`Slide.read_field` from the finest slide
level it needs (so a 4x-stepped scanner pyramid still gives tiles shown at 0.5-1x) in a
:class:`~app.base.workers.TaskPool` thread, converted there to a ``QImage`` and kept in a
byte-capped :class:`~gusa_core.slides.tiles.TileCache`. A paint draws only what is cached;
a missing tile is filled from a cached coarser tile or the overview thumbnail and requested,
so the GUI thread never waits for a decoder. Class regions (a label mask at the working
resolution) are drawn through their own cache of 256 x 256 overlay tiles, subsampled by a
power of two when zoomed out and rebuilt only where an edit changed them.
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QPointF, QRect, QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtWidgets import QSizePolicy, QWidget

from app.base.workers import TaskPool
from app.workspace.canvas_view import numpy_to_qimage, rgb_to_bgra
from gusa_core.slides.tiles import DEFAULT_CACHE_BYTES, TileCache, level_for_zoom, viewport_tiles

__all__ = ["SlideView", "TILE_SIZE", "MAX_ZOOM"]

TILE_SIZE = 512
MAX_ZOOM = 8.0  # screen pixels per level-0 pixel
_OVERLAY_TILE = 256
_OVERLAY_BYTES = 64 * 2**20
_REGION_ALPHA = 110
_BACKGROUND = QColor(38, 40, 44)
_EMPTY = object()


def _load_tile(slide, box0: tuple[float, float, float, float], size: tuple[int, int]) -> QImage:
    """Runs in a pool thread: read one viewer tile and make it a ``QImage`` (no widget touched)."""
    rgb = slide.read_field(box0, size)
    return numpy_to_qimage(rgb, bgra=rgb_to_bgra(rgb))


class SlideView(QWidget):
    """Shows a :class:`~gusa_core.slides.Slide` at any zoom, with painted class regions over it.

    Signals
    -------
    view_changed()
        Zoom or pan changed.
    zoom_changed(float)
        Screen pixels per level-0 pixel.
    tile_loaded(object)
        A tile arrived from the loader (its key); the view repainted it if visible.
    """

    view_changed = Signal()
    zoom_changed = Signal(float)
    tile_loaded = Signal(object)
    regions_changed = Signal()

    def __init__(self, parent: QWidget | None = None, *, cache_bytes: int = DEFAULT_CACHE_BYTES, threads: int = 2):
        super().__init__(parent)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent, True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(200, 150)
        self._slide = None
        self._thumb: QImage | None = None
        self._vds: list[float] = [1.0]
        self._vdims: list[tuple[int, int]] = []
        self._gen = 0
        self._zoom = 1.0
        self._offset = QPointF(0, 0)
        self._fit_mode = True
        self.cache = TileCache(cache_bytes)
        self._pool = TaskPool(threads, self)
        self._pool.done.connect(self._on_pool_done)
        self._pool.failed.connect(self._on_pool_failed)
        self._request_timer = QTimer(self)
        self._request_timer.setSingleShot(True)
        self._request_timer.setInterval(0)
        self._request_timer.timeout.connect(self._request_tiles)
        self._labels: np.ndarray | None = None
        self._label_ds = 1.0
        self._lut = np.zeros(256, np.uint32)
        self._regions_visible = True
        self._overlay = TileCache(_OVERLAY_BYTES)
        self.last_error: str | None = None

    # ------------------------------------------------------------------ slide
    def set_slide(self, slide, thumbnail: np.ndarray | None = None) -> None:
        """Show ``slide`` (or nothing), fitted to the view.

        ``thumbnail`` is the whole slide small (``Slide.get_thumbnail``); it fills tiles not yet
        decoded and is read here when not given.
        """
        self._gen += 1
        self._pool.clear()
        self.cache.clear()
        self._overlay.clear()
        self._slide = slide
        self._thumb = None
        if slide is not None:
            if thumbnail is None:
                thumbnail = slide.get_thumbnail(1024)
            self._thumb = numpy_to_qimage(thumbnail)
            w, h = slide.dimensions
            self._vds = [1.0]
            while max(w, h) / self._vds[-1] > TILE_SIZE:
                self._vds.append(self._vds[-1] * 2)
            self._vdims = [(max(1, math.ceil(w / d)), max(1, math.ceil(h / d))) for d in self._vds]
        self.fit()

    def slide(self):
        return self._slide

    def thumbnail(self) -> QImage | None:
        return self._thumb

    def close_slide(self) -> None:
        """Forget the slide and stop loading (the caller closes the file)."""
        self.set_slide(None)

    def shutdown(self) -> None:
        """End the loader threads (call when the widget goes away)."""
        self._pool.shutdown()

    def viewer_downsamples(self) -> list[float]:
        return list(self._vds)

    def current_level(self) -> int:
        """The viewer level drawn at the current zoom (its downsample is ``2 ** level``)."""
        return level_for_zoom(self._vds, self._zoom)

    def pending_tiles(self) -> int:
        """Tiles queued or being decoded."""
        return self._pool.pending()

    def missing_tiles(self) -> int:
        """Tiles of the current viewport not yet in the cache."""
        if self._slide is None:
            return 0
        level = self.current_level()
        tiles = viewport_tiles(self._vdims, self._vds, level, self.viewport(), tile_size=TILE_SIZE)
        return sum(1 for t in tiles if (self._gen, *t.key) not in self.cache)

    # ---------------------------------------------------------------- regions
    def set_regions(self, labels: np.ndarray | None, downsample: float = 1.0, colors=()) -> None:
        """Draw the label mask ``labels`` (kept by reference) at ``downsample`` level-0 pixels per pixel.

        ``colors[k - 1]`` is the ``(r, g, b)`` of label value ``k``.
        """
        self._labels = labels
        self._label_ds = float(downsample)
        self.set_region_colors(colors)

    def set_region_colors(self, colors) -> None:
        lut = np.zeros(256, np.uint32)
        a = _REGION_ALPHA
        for k, (r, g, b) in enumerate(colors, start=1):
            lut[k] = (a << 24) | ((r * a // 255) << 16) | ((g * a // 255) << 8) | (b * a // 255)
        self._lut = lut
        self._overlay.clear()
        self.regions_changed.emit()
        self.update()

    def set_regions_visible(self, visible: bool) -> None:
        self._regions_visible = bool(visible)
        self.regions_changed.emit()
        self.update()

    def regions_visible(self) -> bool:
        return self._regions_visible

    def update_regions(self, rect: tuple[int, int, int, int] | None) -> None:
        """Rebuild the overlay inside label rectangle ``(r0, c0, r1, c1)`` (None: all) and repaint there."""
        self.regions_changed.emit()
        if rect is None:
            self._overlay.clear()
            self.update()
            return
        r0, c0, r1, c1 = rect
        for key in self._overlay.keys():
            k, col, row = key
            span = _OVERLAY_TILE * k
            if row * span < r1 and (row + 1) * span > r0 and col * span < c1 and (col + 1) * span > c0:
                self._overlay.discard(key)
        d = self._label_ds
        self.update(self.level0_rect_to_widget(QRectF(c0 * d, r0 * d, (c1 - c0) * d, (r1 - r0) * d)))

    def region_preview(self, max_side: int) -> QImage | None:
        """The painted regions over the whole slide, about ``max_side`` pixels long (for the overview)."""
        if self._labels is None or not self._regions_visible:
            return None
        k = max(1, max(self._labels.shape) // max_side)
        argb = np.ascontiguousarray(self._lut[self._labels[::k, ::k]])
        h, w = argb.shape
        img = QImage(argb.data, w, h, 4 * w, QImage.Format.Format_ARGB32_Premultiplied)
        img._buffer = argb  # noqa: SLF001 - keeps the pixels alive
        return img

    def _overlay_tile(self, k: int, col: int, row: int):
        key = (k, col, row)
        img = self._overlay.get(key)
        if img is not None:
            return img
        span = _OVERLAY_TILE * k
        sub = self._labels[row * span : (row + 1) * span : k, col * span : (col + 1) * span : k]
        if not sub.size or not sub.any():
            self._overlay.put(key, _EMPTY, 64)
            return _EMPTY
        argb = np.ascontiguousarray(self._lut[sub])
        h, w = argb.shape
        img = QImage(argb.data, w, h, 4 * w, QImage.Format.Format_ARGB32_Premultiplied)
        img._buffer = argb  # noqa: SLF001 - keeps the pixels alive
        self._overlay.put(key, img, argb.nbytes)
        return img

    # ------------------------------------------------------------ zoom and pan
    def zoom(self) -> float:
        """Screen pixels per level-0 pixel."""
        return self._zoom

    def offset(self) -> QPointF:
        return QPointF(self._offset)

    def widget_to_level0(self, p: QPointF) -> QPointF:
        return QPointF((p.x() - self._offset.x()) / self._zoom, (p.y() - self._offset.y()) / self._zoom)

    def level0_to_widget(self, p: QPointF) -> QPointF:
        return QPointF(p.x() * self._zoom + self._offset.x(), p.y() * self._zoom + self._offset.y())

    def level0_rect_to_widget(self, r: QRectF) -> QRect:
        tl = self.level0_to_widget(r.topLeft())
        return QRectF(tl.x(), tl.y(), r.width() * self._zoom, r.height() * self._zoom).toAlignedRect().adjusted(-1, -1, 1, 1)

    def viewport(self) -> tuple[float, float, float, float]:
        """The level-0 box ``(x, y, width, height)`` under the widget."""
        tl = self.widget_to_level0(QPointF(0, 0))
        return (tl.x(), tl.y(), self.width() / self._zoom, self.height() / self._zoom)

    def fit_zoom(self) -> float:
        if self._slide is None:
            return 1.0
        w, h = self._slide.dimensions
        return min((self.width() - 8) / w, (self.height() - 8) / h)

    def fit(self) -> None:
        """The whole slide, centred."""
        self._fit_mode = True
        z = self.fit_zoom()
        self._set_view(z, self._centred_offset(z))

    def set_zoom(self, zoom: float, anchor: QPointF | None = None) -> None:
        """Zoom keeping the slide point under widget point ``anchor`` (default: centre) still."""
        if self._slide is None:
            return
        zoom = min(MAX_ZOOM, max(min(self.fit_zoom(), 1.0) * 0.5, float(zoom)))
        if anchor is None:
            anchor = QPointF(self.width() / 2, self.height() / 2)
        p = self.widget_to_level0(anchor)
        self._fit_mode = False
        self._set_view(zoom, QPointF(anchor.x() - p.x() * zoom, anchor.y() - p.y() * zoom))

    def zoom_by(self, factor: float, anchor: QPointF | None = None) -> None:
        self.set_zoom(self._zoom * factor, anchor)

    def pan_by(self, dx: float, dy: float) -> None:
        """Move the slide by ``(dx, dy)`` widget pixels."""
        self._fit_mode = False
        self._set_view(self._zoom, QPointF(self._offset.x() + dx, self._offset.y() + dy))

    def center_on(self, x: float, y: float) -> None:
        """Put level-0 point ``(x, y)`` at the centre of the view."""
        self._fit_mode = False
        self._set_view(self._zoom, QPointF(self.width() / 2 - x * self._zoom, self.height() / 2 - y * self._zoom))

    def _centred_offset(self, zoom: float) -> QPointF:
        if self._slide is None:
            return QPointF(0, 0)
        w, h = self._slide.dimensions
        return QPointF((self.width() - w * zoom) / 2, (self.height() - h * zoom) / 2)

    def _set_view(self, zoom: float, offset: QPointF) -> None:
        if self._slide is not None:
            # keep at least a quarter of the view (or the whole slide if smaller) on the slide
            sw, sh = self._slide.dimensions[0] * zoom, self._slide.dimensions[1] * zoom
            kx, ky = min(sw, self.width() / 4), min(sh, self.height() / 4)
            x = min(max(offset.x(), kx - sw), self.width() - kx)
            y = min(max(offset.y(), ky - sh), self.height() - ky)
            if zoom >= 1.0:  # whole screen pixels: level-0 pixels land on screen pixels, crisp at 1:1
                x, y = round(x), round(y)
            offset = QPointF(x, y)
        changed = not math.isclose(zoom, self._zoom)
        self._zoom, self._offset = zoom, offset
        if changed:
            self.zoom_changed.emit(zoom)
        self.view_changed.emit()
        self._request_timer.start()
        self.update()

    def resizeEvent(self, event) -> None:
        if self._fit_mode:
            z = self.fit_zoom()
            self._zoom, self._offset = z, self._centred_offset(z)
            self.zoom_changed.emit(z)
            self.view_changed.emit()
        self._request_timer.start()
        super().resizeEvent(event)

    def sizeHint(self) -> QSize:
        return QSize(900, 680)

    # ----------------------------------------------------------------- loading
    def _tile_job(self, level: int, box: tuple[int, int, int, int]):
        d = self._vds[level]
        x, y, w, h = box
        slide = self._slide
        return lambda: _load_tile(slide, (x * d, y * d, w * d, h * d), (w, h))

    def _request_tiles(self) -> None:
        """Queue the tiles of the viewport (then a ring around it) that are not cached yet."""
        if self._slide is None or self.width() <= 0:
            return
        level = self.current_level()
        view = self.viewport()
        wanted = viewport_tiles(self._vdims, self._vds, level, view, tile_size=TILE_SIZE)
        extra = viewport_tiles(self._vdims, self._vds, level, view, tile_size=TILE_SIZE, margin=1)
        if level + 1 < len(self._vds):  # the next coarser level: instant fallback when zooming out
            extra += viewport_tiles(self._vdims, self._vds, level + 1, view, tile_size=TILE_SIZE)
        # prefetch only while the visible tiles keep at least half the cache: they must never evict each other
        if (len(wanted) + len(extra)) * TILE_SIZE * TILE_SIZE * 4 <= self.cache.max_bytes // 2:
            wanted += extra
        jobs = [((self._gen, *t.key), self._tile_job(t.level, t.box)) for t in wanted if (self._gen, *t.key) not in self.cache]
        self._pool.request(jobs)

    def _on_pool_done(self, key, image) -> None:
        if key[0] != self._gen:
            return
        self.cache.put(key, image, image.width() * image.height() * 4)
        _, level, col, row = key
        d = self._vds[level]
        self.update(self.level0_rect_to_widget(QRectF(col * TILE_SIZE * d, row * TILE_SIZE * d, TILE_SIZE * d, TILE_SIZE * d)))
        self.tile_loaded.emit(key)

    def _on_pool_failed(self, key, message: str) -> None:
        if key[0] == self._gen:
            self.last_error = message

    # ---------------------------------------------------------------- painting
    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        try:
            self._paint(painter, event.rect())
        finally:
            painter.end()

    def _paint(self, painter: QPainter, exposed: QRect) -> None:
        painter.fillRect(exposed, _BACKGROUND)
        if self._slide is None:
            self._paint_foreground(painter, exposed)
            return
        painter.setClipRect(exposed)
        tl = self.widget_to_level0(QPointF(exposed.topLeft()))
        area = (tl.x(), tl.y(), (exposed.width() + 1) / self._zoom, (exposed.height() + 1) / self._zoom)
        level = self.current_level()
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self._zoom * self._vds[level] < 1.0)
        for t in viewport_tiles(self._vdims, self._vds, level, area, tile_size=TILE_SIZE):
            d = self._vds[level]
            x, y, w, h = t.box
            target = QRectF(self.level0_to_widget(QPointF(x * d, y * d)), QSize(0, 0))
            target.setSize(QRectF(0, 0, w * d * self._zoom, h * d * self._zoom).size())
            img = self.cache.get((self._gen, *t.key))
            if img is not None:
                painter.drawImage(target, img, QRectF(img.rect()))
            else:
                self._paint_fallback(painter, level, (x * d, y * d, w * d, h * d), target)
        if self._regions_visible and self._labels is not None:
            self._paint_regions(painter, area)
        painter.setClipping(False)
        self._paint_foreground(painter, exposed)

    def _paint_fallback(self, painter: QPainter, level: int, box0, target: QRectF) -> None:
        """Fill a tile not decoded yet from a cached coarser tile, else from the thumbnail."""
        x, y, w, h = box0
        for up in range(level + 1, min(len(self._vds), level + 4)):
            d = self._vds[up]
            col, row = int(x // (TILE_SIZE * d)), int(y // (TILE_SIZE * d))
            img = self.cache.peek((self._gen, up, col, row))
            if img is not None:
                src = QRectF(x / d - col * TILE_SIZE, y / d - row * TILE_SIZE, w / d, h / d)
                painter.drawImage(target, img, src)
                return
        tw, th = self._slide.dimensions
        sx, sy = self._thumb.width() / tw, self._thumb.height() / th
        painter.drawImage(target, self._thumb, QRectF(x * sx, y * sy, w * sx, h * sy))

    def _paint_regions(self, painter: QPainter, area) -> None:
        d = self._label_ds
        k = 2 ** max(0, math.floor(math.log2(max(1.0, 1.0 / (self._zoom * d)))))
        span = _OVERLAY_TILE * k  # label pixels per overlay tile
        lh, lw = self._labels.shape
        x, y, w, h = (v / d for v in area)
        c0, r0 = max(0, math.floor(x / span)), max(0, math.floor(y / span))
        c1, r1 = min(math.ceil(lw / span), math.ceil((x + w) / span)), min(math.ceil(lh / span), math.ceil((y + h) / span))
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        for row in range(r0, r1):
            for col in range(c0, c1):
                img = self._overlay_tile(k, col, row)
                if img is _EMPTY:
                    continue
                tl = self.level0_to_widget(QPointF(col * span * d, row * span * d))
                s = k * d * self._zoom  # screen pixels per overlay pixel
                painter.drawImage(QRectF(tl.x(), tl.y(), img.width() * s, img.height() * s), img, QRectF(img.rect()))

    def _paint_foreground(self, painter: QPainter, exposed: QRect) -> None:
        """Hook for the interaction layer (cursor, lasso, scale bar), in widget coordinates."""
