"""The canvas's layers over the image: the edited mask, RGBA overlays and vector outlines.

The edited mask is a flat image's RoI (0 / 255) or a slide's class regions (0 none, ``k`` =
class ``k - 1``) at ``downsample`` level-0 pixels per mask pixel. :class:`MaskLayer` draws it
through a cache of 256 x 256 overlay tiles, sampled every ``2 ** k`` mask pixels when zoomed
out, each pixel a translucent fill of its value's colour with an opaque outline about 1.5
screen pixels wide where the value changes. An edit recomputes, in the cached tiles it
touches, only the changed rectangle plus the outline's ring, so a brush stroke costs about
its own area. Overlays (an attention map, a slide's heatmap) are straight RGBA arrays drawn
scaled over the image; outlines are polygons in level-0 ``(row, col)`` drawn with a cosmetic pen.
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSizeF, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QPolygonF

from app.base.coords import rc_to_xy
from app.workspace.canvas_image import qimage_view
from gusa_core.slides.tiles import TileCache

__all__ = ["MaskLayer", "Overlay", "outline_polygons", "paint_outlines", "OVERLAY_TILE"]

OVERLAY_TILE = 256
_CACHE_BYTES = 64 * 2**20
_FILL_ALPHA = 100
_MAX_EDGE = 12  # outline width in mask pixels at the smallest zoom
_EMPTY = object()


def _premultiplied(rgb, alpha: int) -> int:
    r, g, b = (int(round(c * alpha / 255)) for c in rgb)
    return (alpha << 24) | (r << 16) | (g << 8) | b


class MaskLayer:
    """The edited mask as cached overlay tiles (see the module docstring)."""

    def __init__(self):
        self.labels: np.ndarray | None = None
        self.downsample = 1.0
        self.visible = True
        self.opacity = 0.8
        self._fill = np.zeros(256, np.uint32)
        self._edge = np.zeros(256, np.uint32)
        self._colors: dict[int, tuple[int, int, int]] = {}
        self._cache = TileCache(_CACHE_BYTES)

    def set_labels(self, labels: np.ndarray | None, downsample: float = 1.0) -> None:
        """Draw ``labels`` ((H, W) uint8, kept by reference) at ``downsample`` level-0 pixels per pixel."""
        self.labels = labels
        self.downsample = float(downsample)
        self._cache.clear()

    def set_colors(self, colors: dict[int, tuple[int, int, int]]) -> None:
        """``{value: (r, g, b)}``: the colour of each mask value (others stay clear)."""
        self._colors = dict(colors)
        self._fill[:] = 0
        self._edge[:] = 0
        for value, rgb in colors.items():
            self._fill[value] = _premultiplied(rgb, _FILL_ALPHA)
            self._edge[value] = _premultiplied(rgb, 255)
        self._cache.clear()

    def colour_of(self, value: int) -> tuple[int, int, int]:
        """The ``(r, g, b)`` of mask value ``value`` (white when it has none)."""
        return self._colors.get(value, (255, 255, 255))

    def clear_cache(self) -> None:
        self._cache.clear()

    def cached_bytes(self) -> int:
        return self._cache.nbytes

    # ----------------------------------------------------------------- tiles
    @staticmethod
    def sampling(zoom: float, downsample: float) -> tuple[int, int]:
        """``(k, e)``: mask pixels per tile pixel and the outline width in tile pixels at ``zoom``."""
        scale = zoom * downsample
        k = 2 ** max(0, math.floor(math.log2(max(1.0, 1.0 / scale))))
        e = int(min(_MAX_EDGE, max(1, math.ceil(1.5 / (k * scale)))))
        return k, e

    def _build(self, out: np.ndarray, k: int, e: int, col: int, row: int, i0: int, j0: int, i1: int, j1: int) -> None:
        """Fill ``out[i0:i1, j0:j1]`` of tile ``(col, row)`` sampled every ``k`` mask pixels, outline ``e`` wide."""
        import cv2  # lazily: keeps it off the start-up path

        lab = self.labels
        h, w = lab.shape
        span = OVERLAY_TILE * k
        r0, c0 = row * span + (i0 - e) * k, col * span + (j0 - e) * k  # sampled rows from i0 - e
        n_r, n_c = i1 - i0 + 2 * e, j1 - j0 + 2 * e
        block = np.zeros((n_r, n_c), np.uint8)
        skip_r, skip_c = max(0, -r0 // k), max(0, -c0 // k)
        src = lab[r0 + skip_r * k : min(h, r0 + n_r * k) : k, c0 + skip_c * k : min(w, c0 + n_c * k) : k]
        block[skip_r : skip_r + src.shape[0], skip_c : skip_c + src.shape[1]] = src
        core = block[e:-e, e:-e]
        if not cv2.countNonZero(core):
            out[i0:i1, j0:j1] = 0
            return
        kernel = cv2.getStructuringElement(cv2.MORPH_CROSS if e == 1 else cv2.MORPH_ELLIPSE, (2 * e + 1, 2 * e + 1))
        lo = cv2.erode(block, kernel)[e:-e, e:-e]
        hi = cv2.dilate(block, kernel)[e:-e, e:-e]
        out[i0:i1, j0:j1] = np.where(lo != hi, self._edge[core], self._fill[core])

    def _tile(self, k: int, e: int, col: int, row: int):
        key = (k, e, col, row)
        entry = self._cache.get(key)
        if entry is not None:
            return entry
        span = OVERLAY_TILE * k
        h, w = self.labels.shape
        th, tw = min(OVERLAY_TILE, math.ceil((h - row * span) / k)), min(OVERLAY_TILE, math.ceil((w - col * span) / k))
        if th <= 0 or tw <= 0 or not self.labels[row * span : (row + 1) * span : k, col * span : (col + 1) * span : k].any():
            self._cache.put(key, _EMPTY, 64)
            return _EMPTY
        img = QImage(tw, th, QImage.Format.Format_ARGB32_Premultiplied)
        arr = qimage_view(img)
        self._build(arr, k, e, col, row, 0, 0, th, tw)
        self._cache.put(key, (img, arr), 4 * tw * th)
        return img, arr

    def update(self, rect: tuple[int, int, int, int]) -> None:
        """The mask changed inside ``(r0, c0, r1, c1)``: recompute that part of every cached tile."""
        r0, c0, r1, c1 = rect
        for key in self._cache.keys():
            k, e, col, row = key
            span = OVERLAY_TILE * k
            ring = e * k  # the outline of a neighbouring pixel may change too
            tr, tc = row * span, col * span
            if not (tr - ring < r1 and tr + span + ring > r0 and tc - ring < c1 and tc + span + ring > c0):
                continue
            entry = self._cache.peek(key)
            if entry is _EMPTY:
                self._cache.discard(key)
                continue
            img, arr = entry
            th, tw = arr.shape
            i0, i1 = max(0, (r0 - tr) // k - e), min(th, -(-(r1 - tr) // k) + e)
            j0, j1 = max(0, (c0 - tc) // k - e), min(tw, -(-(c1 - tc) // k) + e)
            if i1 > i0 and j1 > j0:
                self._build(arr, k, e, col, row, i0, j0, i1, j1)

    # -------------------------------------------------------------- painting
    def paint(self, painter: QPainter, canvas, area) -> None:
        """Draw the tiles under level-0 box ``area`` = ``(x, y, w, h)``."""
        d = self.downsample
        zoom = canvas.zoom()
        k, e = self.sampling(zoom, d)
        span = OVERLAY_TILE * k
        lh, lw = self.labels.shape
        x, y, w, h = (v / d for v in area)
        c0, r0 = max(0, math.floor(x / span)), max(0, math.floor(y / span))
        c1, r1 = min(math.ceil(lw / span), math.ceil((x + w) / span)), min(math.ceil(lh / span), math.ceil((y + h) / span))
        s = k * d * zoom  # screen pixels per tile pixel
        painter.setOpacity(self.opacity)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, s < 1.0)
        for row in range(r0, r1):
            for col in range(c0, c1):
                entry = self._tile(k, e, col, row)
                if entry is _EMPTY:
                    continue
                img = entry[0]
                tl = canvas.image_to_widget(QPointF(col * span * d, row * span * d))
                painter.drawImage(QRectF(tl, QSizeF(img.width() * s, img.height() * s)), img, QRectF(img.rect()))
        painter.setOpacity(1.0)

    def preview(self, max_side: int) -> QImage | None:
        """The whole mask about ``max_side`` pixels long, fill colours only (for the overview)."""
        if self.labels is None or not self.visible:
            return None
        k = max(1, max(self.labels.shape) // max_side)
        argb = np.ascontiguousarray(self._fill[self.labels[::k, ::k]])
        h, w = argb.shape
        img = QImage(argb.data, w, h, 4 * w, QImage.Format.Format_ARGB32_Premultiplied)
        img._buffer = argb  # noqa: SLF001 - keeps the pixels alive
        return img


class Overlay:
    """An RGBA layer over the image: ``rgba`` (H, W, 4) straight alpha, ``downsample`` level-0 pixels per pixel."""

    def __init__(self, rgba: np.ndarray, downsample: float, opacity: float):
        rgba = np.ascontiguousarray(rgba, dtype=np.uint8)
        if rgba.ndim != 3 or rgba.shape[2] != 4:
            raise ValueError(f"an overlay must be (H, W, 4) uint8, got {rgba.shape}")
        h, w = rgba.shape[:2]
        img = QImage(rgba.data, w, h, 4 * w, QImage.Format.Format_RGBA8888)
        self.image = img.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)  # a copy
        self.downsample = float(downsample)
        self.opacity = float(opacity)

    def paint(self, painter: QPainter, canvas, area) -> None:
        d, img = self.downsample, self.image
        x, y, w, h = area
        c0, r0 = max(0, math.floor(x / d) - 1), max(0, math.floor(y / d) - 1)
        c1, r1 = min(img.width(), math.ceil((x + w) / d) + 1), min(img.height(), math.ceil((y + h) / d) + 1)
        if c1 <= c0 or r1 <= r0:
            return
        s = d * canvas.zoom()
        tl = canvas.image_to_widget(QPointF(c0 * d, r0 * d))
        painter.setOpacity(self.opacity)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, s < 1.0)
        painter.drawImage(QRectF(tl, QSizeF((c1 - c0) * s, (r1 - r0) * s)), img, QRectF(c0, r0, c1 - c0, r1 - r0))
        painter.setOpacity(1.0)


def outline_polygons(polygons) -> list[QPolygonF]:
    """``(N, 2)`` (row, col) arrays as ``QPolygonF`` in level-0 (x, y)."""
    out = []
    for poly in polygons:
        pts = np.asarray(poly, dtype=float).reshape(-1, 2)
        out.append(QPolygonF([QPointF(*rc_to_xy(r, c)) for r, c in pts]))
    return out


def paint_outlines(painter: QPainter, canvas, outlines) -> None:
    """Draw ``{name: (polygons, QColor, dashed)}`` in level-0 coordinates with cosmetic pens."""
    painter.save()
    painter.translate(canvas.offset())
    painter.scale(canvas.zoom(), canvas.zoom())
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    painter.setBrush(Qt.BrushStyle.NoBrush)
    for polys, color, dashed in outlines.values():
        pen = QPen(QColor(color), 2.5 if dashed else 2.0)
        pen.setCosmetic(True)
        if dashed:
            pen.setStyle(Qt.PenStyle.DashLine)
        painter.setPen(pen)
        for poly in polys:
            painter.drawPolygon(poly)
    painter.restore()
