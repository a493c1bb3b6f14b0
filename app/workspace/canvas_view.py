"""Rendering half of the annotation canvas: image, RoI overlay, layers, zoom and pan.

Speed comes from three choices. The image is converted once to a ``QImage``
in ``Format_RGB32`` (the raster engine's native format: drawing it at 1:1 is
a memory copy). The RoI overlay is an ``ARGB32_Premultiplied`` ``QImage``
whose pixels are a numpy view (``overlay_array``): after an edit only the
edited rectangle is recomputed from the mask. And every repaint draws only
the exposed rectangle: :meth:`CanvasView.update_mask_rect` calls
``update(rect)`` with the widget-space dirty rectangle, never the whole view.

Coordinates: the view maps image pixels to widget pixels as
``widget = image * zoom + offset``; ``(row, col)`` conversions go through
:mod:`app.base.coords`.
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QEasingCurve, QPointF, QRect, QRectF, QSize, Qt, QTimer, QVariantAnimation, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPainterPath, QPen, QPolygonF
from PySide6.QtWidgets import QSizePolicy, QWidget

from app.base.coords import rc_to_xy, rect_rc_to_qrect

__all__ = ["CanvasView", "DEFAULT_MASK_COLOR", "MIN_ZOOM", "MAX_ZOOM", "numpy_to_qimage", "rgb_to_bgra", "qimage_view"]

DEFAULT_MASK_COLOR = (255, 214, 0)  # amber: stands out on H&E pink and purple
MIN_ZOOM = 0.02
MAX_ZOOM = 40.0
_FILL_ALPHA = 100  # RoI interior; the outline is opaque
_MAX_EDGE = 12  # outline width in image pixels at the smallest zoom
_BACKGROUND = QColor(38, 40, 44)


def rgb_to_bgra(image: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` RGB to ``(H, W, 4)`` BGRA bytes: the memory layout of ``QImage.Format_RGB32``.

    Safe to call off the GUI thread (the prefetcher does).
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


def _premultiplied(rgb: tuple[int, int, int], alpha: int) -> np.uint32:
    r, g, b = (int(round(c * alpha / 255)) for c in rgb)
    return np.uint32((alpha << 24) | (r << 16) | (g << 8) | b)


class CanvasView(QWidget):
    """Draws an image with its RoI mask, overlay layers and outlines; zooms and pans.

    Signals
    -------
    zoom_changed(float)
        The zoom factor (1.0 = one image pixel per screen pixel).
    view_changed()
        Zoom or pan changed.
    """

    zoom_changed = Signal(float)
    view_changed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent, True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(200, 150)
        self._image: QImage | None = None
        self._mask: np.ndarray | None = None
        self._overlay: QImage | None = None
        self._overlay_np: np.ndarray | None = None
        self._mask_rgb = DEFAULT_MASK_COLOR
        self._fill_px = _premultiplied(self._mask_rgb, _FILL_ALPHA)
        self._edge_px = _premultiplied(self._mask_rgb, 255)
        self._lut = np.array([0, self._edge_px, self._fill_px], dtype=np.uint32)
        self._mask_opacity = 0.8
        self._mask_visible = True
        self._layers: dict[str, tuple[QImage, float]] = {}
        self._outlines: dict[str, tuple[list[QPolygonF], QColor, bool]] = {}
        self._banner: str | None = None
        self._placeholder = "Open a project (File ▸ Open project…) or run gusa-studio --demo"
        self._zoom = 1.0
        self._offset = QPointF(0, 0)
        self._fit_mode = True
        self._edge = 1  # outline width in image pixels: about 1.5 screen pixels at any zoom
        self._edge_timer = QTimer(self)
        self._edge_timer.setSingleShot(True)
        self._edge_timer.setInterval(120)
        self._edge_timer.timeout.connect(self._on_edge_timer_timeout)
        self._anim = QVariantAnimation(self)
        self._anim.setDuration(160)
        self._anim.setStartValue(0.0)
        self._anim.setEndValue(1.0)
        self._anim.setEasingCurve(QEasingCurve.Type.OutCubic)
        self._anim.valueChanged.connect(self._on_anim_value_changed)
        self._anim.finished.connect(self._on_anim_finished)
        self._anim_path = None  # (z0, z1, offset function of (t, z)), fit at the end

    # ----------------------------------------------------------------- image
    def set_image(self, image: np.ndarray | None, *, bgra: np.ndarray | None = None) -> None:
        """Show ``image`` ``(H, W, 3)`` uint8 (or nothing), fitted to the view.

        ``bgra`` may give the image already converted by :func:`rgb_to_bgra`.
        """
        self._image = None if image is None else numpy_to_qimage(image, bgra=bgra)
        self._banner = None
        self._layers.clear()
        self._outlines.clear()
        if self._mask is not None and image is not None and self._mask.shape != image.shape[:2]:
            self.set_mask(None)
        self.fit()
        self.update()

    def has_image(self) -> bool:
        return self._image is not None

    def image_shape(self) -> tuple[int, int] | None:
        """``(H, W)`` of the shown image, or ``None``."""
        return None if self._image is None else (self._image.height(), self._image.width())

    def pixel_rgb(self, row: int, col: int) -> tuple[int, int, int] | None:
        """The RGB of image pixel ``(row, col)``, or ``None`` outside the image."""
        if self._image is None or not (0 <= row < self._image.height() and 0 <= col < self._image.width()):
            return None
        x, y = rc_to_xy(row, col)
        c = self._image.pixel(int(x), int(y))
        return (c >> 16) & 255, (c >> 8) & 255, c & 255

    # ------------------------------------------------------------------ mask
    def set_mask(self, mask: np.ndarray | None) -> None:
        """Show ``mask`` ``(H, W)`` uint8 (kept by reference: edits then call :meth:`update_mask_rect`)."""
        self._mask = mask
        if mask is None:
            self._overlay = self._overlay_np = None
        else:
            h, w = mask.shape
            self._overlay = QImage(w, h, QImage.Format.Format_ARGB32_Premultiplied)
            self._overlay_np = qimage_view(self._overlay)
            self._edge = self._wanted_edge()
            self._rebuild_overlay(0, 0, h, w)
        self.update()

    def mask(self) -> np.ndarray | None:
        return self._mask

    def overlay_array(self) -> np.ndarray | None:
        """The RoI overlay pixels as a ``(H, W)`` uint32 view (premultiplied ARGB)."""
        return self._overlay_np

    def update_mask_rect(self, rect: tuple[int, int, int, int] | None) -> None:
        """Recompute the overlay inside ``rect`` ``(r0, c0, r1, c1)`` and repaint only that area."""
        if rect is None or self._mask is None:
            return
        h, w = self._mask.shape
        r0, c0, r1, c1 = rect
        k = self._edge  # the outline of neighbours may change too
        r0, c0, r1, c1 = max(0, r0 - k), max(0, c0 - k), min(h, r1 + k), min(w, c1 + k)
        if r1 <= r0 or c1 <= c0:
            return
        self._rebuild_overlay(r0, c0, r1, c1)
        if self._mask_visible:
            self.update(self.image_rect_to_widget(rect_rc_to_qrect((r0, c0, r1, c1))))

    def refresh_mask(self) -> None:
        """Recompute the whole overlay (after the mask array was replaced in place)."""
        if self._mask is not None:
            self._edge_timer.stop()
            self._edge = self._wanted_edge()
            self._rebuild_overlay(0, 0, *self._mask.shape)
            self.update()

    def _rebuild_overlay(self, r0: int, c0: int, r1: int, c1: int) -> None:
        import cv2  # lazily: keeps it off the start-up path

        mask = self._mask
        h, w = mask.shape
        out = self._overlay_np[r0:r1, c0:c1]
        k = self._edge
        # the block plus a ring of k pixels (zero outside the image) to find outline pixels
        pr0, pc0, pr1, pc1 = max(0, r0 - k), max(0, c0 - k), min(h, r1 + k), min(w, c1 + k)
        region = mask[pr0:pr1, pc0:pc1]
        if not cv2.countNonZero(region):
            out[...] = 0
            return
        block = np.zeros((r1 - r0 + 2 * k, c1 - c0 + 2 * k), dtype=np.uint8)
        np.minimum(region, 1, out=block[pr0 - r0 + k : pr1 - r0 + k, pc0 - c0 + k : pc1 - c0 + k])
        shape = cv2.MORPH_CROSS if k == 1 else cv2.MORPH_ELLIPSE
        interior = cv2.erode(block, cv2.getStructuringElement(shape, (2 * k + 1, 2 * k + 1)))
        code = block[k:-k, k:-k]
        code += interior[k:-k, k:-k]  # 0 outside, 1 outline, 2 interior
        out[...] = self._lut[code]

    def _wanted_edge(self) -> int:
        return int(min(_MAX_EDGE, max(1, math.ceil(1.5 / max(self._zoom, 1e-6)))))

    def _on_edge_timer_timeout(self) -> None:
        edge = self._wanted_edge()
        if edge != self._edge:
            self._edge = edge
            self.refresh_mask()

    def mask_color(self) -> tuple[int, int, int]:
        return self._mask_rgb

    def set_mask_opacity(self, opacity: float) -> None:
        """Opacity of the RoI overlay in [0, 1]."""
        self._mask_opacity = min(1.0, max(0.0, float(opacity)))
        self.update()

    def mask_opacity(self) -> float:
        return self._mask_opacity

    def set_mask_visible(self, visible: bool) -> None:
        self._mask_visible = bool(visible)
        self.update()

    def mask_visible(self) -> bool:
        return self._mask_visible

    # -------------------------------------------------------------- layers
    def set_overlay(self, name: str, rgba: np.ndarray | None, *, opacity: float = 1.0) -> None:
        """Add, replace or (``rgba=None``) remove an overlay layer drawn above the image.

        Parameters
        ----------
        name : str
            Layer name (e.g. ``"attention"``).
        rgba : ndarray of shape (H, W, 4) uint8, or None
            Straight (not premultiplied) RGBA at the image's resolution.
        opacity : float
            Extra opacity multiplied with the layer's alpha.
        """
        if rgba is None:
            self._layers.pop(name, None)
        else:
            rgba = np.ascontiguousarray(rgba, dtype=np.uint8)
            if rgba.ndim != 3 or rgba.shape[2] != 4:
                raise ValueError(f"overlay {name!r} must be (H, W, 4) uint8, got {rgba.shape}")
            h, w = rgba.shape[:2]
            qimg = QImage(rgba.data, w, h, 4 * w, QImage.Format.Format_RGBA8888)
            qimg = qimg.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)
            self._layers[name] = (qimg, float(opacity))
        self.update()

    def overlay_names(self) -> list[str]:
        return list(self._layers)

    def set_outline(self, name: str, polygons, *, color=(0, 255, 255), dashed: bool = False) -> None:
        """Add, replace or (``polygons=None``) remove outlines: a list of ``(N, 2)`` (row, col) arrays.

        ``dashed`` draws a dashed line (a model's suggestion, not yet the mask).
        """
        if polygons is None:
            self._outlines.pop(name, None)
        else:
            polys = []
            for poly in polygons:
                pts = np.asarray(poly, dtype=float).reshape(-1, 2)
                polys.append(QPolygonF([QPointF(*rc_to_xy(r, c)) for r, c in pts]))
            self._outlines[name] = (polys, QColor(*color), bool(dashed))
        self.update()

    def outline(self, name: str) -> tuple[int, bool] | None:
        """``(number of polygons, dashed)`` of an outline, or None (for tests and status)."""
        entry = self._outlines.get(name)
        return None if entry is None else (len(entry[0]), entry[2])

    # -------------------------------------------------------------- banner
    def show_banner(self, text: str) -> None:
        """Show an inline message over the canvas (e.g. an image that cannot be read)."""
        self._banner = text
        self.update()

    def banner_text(self) -> str | None:
        return self._banner

    def set_placeholder(self, text: str) -> None:
        self._placeholder = text
        self.update()

    # ------------------------------------------------------- zoom and pan
    def zoom(self) -> float:
        return self._zoom

    def offset(self) -> QPointF:
        return QPointF(self._offset)

    def widget_to_image(self, p: QPointF) -> QPointF:
        """Widget pixel position to image coordinates (x, y), unclamped."""
        return QPointF((p.x() - self._offset.x()) / self._zoom, (p.y() - self._offset.y()) / self._zoom)

    def image_to_widget(self, p: QPointF) -> QPointF:
        return QPointF(p.x() * self._zoom + self._offset.x(), p.y() * self._zoom + self._offset.y())

    def image_rect_to_widget(self, rect: QRect | QRectF) -> QRect:
        """An image-space rectangle as the widget rectangle that covers it (with a margin)."""
        r = QRectF(rect)
        tl = self.image_to_widget(r.topLeft())
        return QRectF(tl.x(), tl.y(), r.width() * self._zoom, r.height() * self._zoom).toAlignedRect().adjusted(-2, -2, 2, 2)

    def fit_zoom(self) -> float:
        if self._image is None:
            return 1.0
        margin = 8
        return max(MIN_ZOOM, min((self.width() - margin) / self._image.width(), (self.height() - margin) / self._image.height()))

    def fit(self) -> None:
        """Zoom so the whole image is visible, centred (Ctrl+0)."""
        self.stop_animation()
        self._fit_mode = True
        z = self.fit_zoom()
        self._set_view(z, self._centred_offset(z))

    def actual_size(self, anchor: QPointF | None = None) -> None:
        """One image pixel per screen pixel (Ctrl+1), keeping ``anchor`` (default: centre) still."""
        self.set_zoom(1.0, anchor)

    def set_zoom(self, zoom: float, anchor: QPointF | None = None) -> None:
        """Zoom to ``zoom`` keeping the image point under widget point ``anchor`` still."""
        if self._image is None:
            return
        self.stop_animation()
        zoom = min(MAX_ZOOM, max(min(MIN_ZOOM, self.fit_zoom()), float(zoom)))
        if anchor is None:
            anchor = QPointF(self.width() / 2, self.height() / 2)
        img_pt = self.widget_to_image(anchor)
        offset = QPointF(anchor.x() - img_pt.x() * zoom, anchor.y() - img_pt.y() * zoom)
        self._fit_mode = False
        self._set_view(zoom, offset)

    def zoom_by(self, factor: float, anchor: QPointF | None = None) -> None:
        self.set_zoom(self._zoom * factor, anchor)

    # ------------------------------------------------------ animated views
    def animate_zoom(self, zoom: float, anchor: QPointF | None = None) -> None:
        """Glide to ``zoom`` (about 0.16 s), keeping the image point under ``anchor`` still."""
        if self._image is None:
            return
        z1 = min(MAX_ZOOM, max(min(MIN_ZOOM, self.fit_zoom()), float(zoom)))
        if anchor is None:
            anchor = QPointF(self.width() / 2, self.height() / 2)
        img_pt = self.widget_to_image(anchor)

        def offset(t, z):
            return QPointF(anchor.x() - img_pt.x() * z, anchor.y() - img_pt.y() * z)

        self._start_animation(z1, offset, fit=False)

    def animate_zoom_by(self, factor: float, anchor: QPointF | None = None) -> None:
        """Glide by ``factor`` from the current (or currently targeted) zoom."""
        base = self._anim_path[1] if self._anim.state() == QVariantAnimation.State.Running and self._anim_path else self._zoom
        self.animate_zoom(base * factor, anchor)

    def animate_fit(self) -> None:
        """Glide to the whole image, centred."""
        if self._image is None:
            return
        z1 = self.fit_zoom()
        o0, o1 = QPointF(self._offset), self._centred_offset(z1)

        def offset(t, z):
            return o0 + (o1 - o0) * t

        self._start_animation(z1, offset, fit=True)

    def stop_animation(self) -> None:
        """Stop a glide where it is (a direct zoom or pan takes over)."""
        if self._anim.state() == QVariantAnimation.State.Running:
            self._anim_path = None
            self._anim.stop()

    def _start_animation(self, z1: float, offset, *, fit: bool) -> None:
        self._anim.stop()
        self._anim_path = (self._zoom, z1, offset, fit)
        self._anim.start()

    def _on_anim_value_changed(self, t) -> None:
        if self._anim_path is None:
            return
        z0, z1, offset, _ = self._anim_path
        z = z0 * math.pow(z1 / z0, float(t))  # geometric: steady perceived speed
        self._fit_mode = False
        self._set_view(z, offset(float(t), z))

    def _on_anim_finished(self) -> None:
        if self._anim_path is None:
            return
        z0, z1, offset, fit = self._anim_path
        self._anim_path = None
        self._set_view(z1, offset(1.0, z1))
        self._fit_mode = fit

    def is_animating(self) -> bool:
        return self._anim.state() == QVariantAnimation.State.Running

    def pan_by(self, dx: float, dy: float) -> None:
        """Move the image by ``(dx, dy)`` widget pixels."""
        self.stop_animation()
        self._fit_mode = False
        self._set_view(self._zoom, QPointF(self._offset.x() + dx, self._offset.y() + dy))

    def _centred_offset(self, zoom: float) -> QPointF:
        if self._image is None:
            return QPointF(0, 0)
        return QPointF((self.width() - self._image.width() * zoom) / 2, (self.height() - self._image.height() * zoom) / 2)

    def _set_view(self, zoom: float, offset: QPointF) -> None:
        if self._image is not None:
            # keep at least a quarter of the view (or the whole image if smaller) showing image
            iw, ih = self._image.width() * zoom, self._image.height() * zoom
            keep_x, keep_y = min(iw, self.width() / 4), min(ih, self.height() / 4)
            x = min(max(offset.x(), keep_x - iw), self.width() - keep_x)
            y = min(max(offset.y(), keep_y - ih), self.height() - keep_y)
            offset = QPointF(x, y)
        changed_zoom = not math.isclose(zoom, self._zoom)
        self._zoom, self._offset = zoom, offset
        if changed_zoom:
            if self._mask is not None and self._wanted_edge() != self._edge:
                self._edge_timer.start()
            self.zoom_changed.emit(zoom)
        self.view_changed.emit()
        self.update()

    def resizeEvent(self, event) -> None:
        if self._fit_mode:
            z = self.fit_zoom()
            self._zoom, self._offset = z, self._centred_offset(z)
            if self._mask is not None and self._wanted_edge() != self._edge:
                self._edge_timer.start()
            self.zoom_changed.emit(z)
        super().resizeEvent(event)

    def sizeHint(self) -> QSize:
        return QSize(900, 680)

    # ------------------------------------------------------------- painting
    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        try:
            self._paint(painter, event.rect())
        finally:
            painter.end()

    def _paint(self, painter: QPainter, exposed: QRect) -> None:
        painter.fillRect(exposed, _BACKGROUND)
        if self._image is None:
            self._paint_placeholder(painter)
            self._paint_banner(painter)
            return
        # image pixels under the exposed area, plus a margin for smooth filtering
        src = QRectF(self.widget_to_image(QPointF(exposed.topLeft())), self.widget_to_image(QPointF(exposed.bottomRight()) + QPointF(1, 1)))
        src = src.toAlignedRect().adjusted(-2, -2, 2, 2).intersected(self._image.rect())
        if not src.isEmpty():
            painter.setClipRect(exposed)
            painter.translate(self._offset)
            painter.scale(self._zoom, self._zoom)
            smooth = self._zoom < 1.0
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, smooth)
            target = QRectF(src)
            painter.drawImage(target, self._image, QRectF(src))
            for qimg, opacity in self._layers.values():
                if qimg.size() == self._image.size():
                    painter.setOpacity(opacity)
                    painter.drawImage(target, qimg, QRectF(src))
            if self._mask_visible and self._overlay is not None:
                painter.setOpacity(self._mask_opacity)
                painter.drawImage(target, self._overlay, QRectF(src))
            painter.setOpacity(1.0)
            if self._outlines:
                painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
                for polys, color, dashed in self._outlines.values():
                    pen = QPen(color, 2.5 if dashed else 2.0)
                    pen.setCosmetic(True)
                    if dashed:
                        pen.setStyle(Qt.PenStyle.DashLine)
                    painter.setPen(pen)
                    painter.setBrush(Qt.BrushStyle.NoBrush)
                    for poly in polys:
                        painter.drawPolygon(poly)
            painter.resetTransform()
            painter.setClipping(False)
        self._paint_foreground(painter, exposed)
        self._paint_banner(painter)

    def _paint_foreground(self, painter: QPainter, exposed: QRect) -> None:
        """Hook for the interaction layer (brush cursor, lasso), in widget coordinates."""

    def _paint_placeholder(self, painter: QPainter) -> None:
        painter.setPen(QColor(170, 174, 180))
        f = QFont(self.font())
        f.setPointSizeF(f.pointSizeF() * 1.15)
        painter.setFont(f)
        painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self._placeholder)

    def _paint_banner(self, painter: QPainter) -> None:
        if not self._banner:
            return
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        fm = painter.fontMetrics()
        width = min(self.width() - 24, max(320, fm.horizontalAdvance(self._banner) + 32))
        text_rect = fm.boundingRect(QRect(0, 0, width - 32, 1000), Qt.TextFlag.TextWordWrap, self._banner)
        box = QRect((self.width() - width) // 2, 12, width, text_rect.height() + 20)
        path = QPainterPath()
        path.addRoundedRect(QRectF(box), 6, 6)
        painter.fillPath(path, QColor(183, 28, 28, 235))
        painter.setPen(QColor(255, 255, 255))
        painter.drawText(box.adjusted(16, 10, -16, -10), Qt.TextFlag.TextWordWrap | Qt.AlignmentFlag.AlignCenter, self._banner)

