"""Rendering half of the one canvas: a flat image or a whole slide, its mask, overlays, outlines; zoom and pan.

The view maps **level-0** pixels (a flat image's own pixels) to widget pixels as
``widget = level0 * zoom + offset``; ``(row, col)`` conversions go through
:mod:`app.base.coords`. What lies under the layers is a
:class:`~app.workspace.canvas_image.FlatImage` (a one-level "slide" drawn straight from
memory) or a :class:`~app.workspace.canvas_image.SlidePyramid` (tiles of the right level,
decoded in a :class:`~app.base.workers.TaskPool` and cached with a memory cap). Over it, in
this order: RGBA overlays (the Review attention map, a slide's heatmap), the edited mask
(:class:`~app.workspace.canvas_layers.MaskLayer`), vector outlines (τ, the ground truth, a
suggestion), then the interaction layer's cursor and lasso. A slide also shows its overview
(top right) and a scale bar in µm (bottom left). Every repaint draws only the exposed
rectangle, and an edit repaints only the widget rectangle it changed.
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QEasingCurve, QPointF, QRect, QRectF, QSize, Qt, QTimer, QVariantAnimation, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPainterPath
from PySide6.QtWidgets import QSizePolicy, QWidget

from app.base.coords import rect_rc_to_qrect
from app.base.workers import TaskPool
from app.workspace.canvas_image import FlatImage, SlidePyramid
from app.workspace.canvas_layers import MaskLayer, Overlay, outline_polygons, paint_outlines
from app.workspace.overview import OverviewWidget
from app.workspace.scale_bar import paint_scale_bar
from gusa_core.slides.tiles import DEFAULT_CACHE_BYTES, TileCache, magnification_zoom, native_magnification

__all__ = ["CanvasView", "DEFAULT_MASK_COLOR", "MIN_ZOOM", "MAX_ZOOM"]

DEFAULT_MASK_COLOR = (255, 214, 0)  # amber: stands out on H&E pink and purple
MIN_ZOOM = 0.02
MAX_ZOOM = 40.0
_BACKGROUND = QColor(38, 40, 44)


class CanvasView(QWidget):
    """Draws a flat image or a slide with its mask, overlays and outlines; zooms and pans.

    Signals
    -------
    zoom_changed(float)
        Screen pixels per level-0 pixel (1.0 = one image pixel per screen pixel).
    view_changed()
        Zoom or pan changed.
    tile_loaded(object)
        A slide tile arrived from the loader (its key); the view repainted it if visible.
    mask_changed()
        The mask's drawing changed (an edit, its colours or visibility): the overview follows.
    """

    zoom_changed = Signal(float)
    view_changed = Signal()
    tile_loaded = Signal(object)
    mask_changed = Signal()

    def __init__(self, parent: QWidget | None = None, *, cache_bytes: int = DEFAULT_CACHE_BYTES, threads: int = 2):
        super().__init__(parent)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent, True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(200, 150)
        self._source: FlatImage | SlidePyramid | None = None
        self.cache = TileCache(cache_bytes)
        self._threads = threads
        self._pool: TaskPool | None = None  # started with the first slide
        self._request_timer = QTimer(self)
        self._request_timer.setSingleShot(True)
        self._request_timer.setInterval(0)
        self._request_timer.timeout.connect(self._request_tiles)
        self.last_error: str | None = None
        self._mask = MaskLayer()
        self._mask_rgb = DEFAULT_MASK_COLOR
        self._layers: dict[str, Overlay] = {}
        self._outlines: dict[str, tuple[list, QColor, bool]] = {}
        self._banner: str | None = None
        self._placeholder = "Open a project (File ▸ Open project…) or run gusa-studio --demo"
        self._zoom = 1.0
        self._offset = QPointF(0, 0)
        self._fit_mode = True
        self._anim = QVariantAnimation(self)
        self._anim.setDuration(160)
        self._anim.setStartValue(0.0)
        self._anim.setEndValue(1.0)
        self._anim.setEasingCurve(QEasingCurve.Type.OutCubic)
        self._anim.valueChanged.connect(self._on_anim_value_changed)
        self._anim.finished.connect(self._on_anim_finished)
        self._anim_path = None  # (z0, z1, offset function of (t, z), fit at the end)
        self.overview = OverviewWidget(self, self)
        self.view_changed.connect(self._place_overview)

    # ----------------------------------------------------------------- image
    def set_image(self, image: np.ndarray | None, *, bgra: np.ndarray | None = None) -> None:
        """Show ``image`` ``(H, W, 3)`` uint8 (or nothing) as a one-level slide, fitted to the view.

        ``bgra`` may give the image already converted by :func:`~app.workspace.canvas_image.rgb_to_bgra`.
        """
        self._set_source(None if image is None else FlatImage(image, bgra=bgra))

    def set_slide(self, slide, thumbnail: np.ndarray | None = None) -> None:
        """Show ``slide`` (a :class:`~gusa_core.slides.Slide`, or nothing), fitted to the view.

        ``thumbnail`` is the whole slide small (``Slide.get_thumbnail``); it fills tiles not yet
        decoded and is read here when not given. The caller closes the slide.
        """
        if slide is not None and thumbnail is None:
            thumbnail = slide.get_thumbnail(1024)
        if slide is not None and self._pool is None:
            self._pool = TaskPool(self._threads, self)
            self._pool.done.connect(self._on_pool_done)
            self._pool.failed.connect(self._on_pool_failed)
        self._set_source(None if slide is None else SlidePyramid(slide, thumbnail))

    def _set_source(self, source) -> None:
        if self._pool is not None:
            self._pool.clear()
        self.cache.clear()
        self._source = source
        self._banner = None
        self._layers.clear()
        self._outlines.clear()
        dims = None if source is None else source.dimensions
        labels = self._mask.labels
        if labels is not None and (dims is None or self._mask.downsample != 1.0 or labels.shape != dims[::-1]):
            self.set_mask(None)
        self.overview.sync()
        self.fit()

    def slide(self):
        """The :class:`~gusa_core.slides.Slide` shown, or None (nothing, or a flat image)."""
        return self._source.slide if isinstance(self._source, SlidePyramid) else None

    def is_slide(self) -> bool:
        return isinstance(self._source, SlidePyramid)

    def has_image(self) -> bool:
        return self._source is not None

    def image_shape(self) -> tuple[int, int] | None:
        """``(H, W)`` of the shown image (level 0 of a slide), or ``None``."""
        return None if self._source is None else self._source.dimensions[::-1]

    def pixel_rgb(self, row: int, col: int) -> tuple[int, int, int] | None:
        """The RGB of image pixel ``(row, col)`` of a flat image, or ``None``."""
        return None if self._source is None else self._source.pixel_rgb(row, col)

    def thumbnail(self) -> QImage | None:
        """The overview image of a slide (None for a flat image or nothing)."""
        return self._source.thumbnail() if self.is_slide() else None

    def shutdown(self) -> None:
        """End the tile loader's threads (call when the widget goes away)."""
        if self._pool is not None:
            self._pool.shutdown()

    # ---------------------------------------------------------------- tiles
    def viewer_downsamples(self) -> list[float]:
        return [1.0] if self._source is None else list(self._source.downsamples)

    def current_level(self) -> int:
        """The viewer level drawn at the current zoom (its downsample is ``2 ** level``)."""
        return 0 if self._source is None else self._source.level_for(self._zoom)

    def pending_tiles(self) -> int:
        """Tiles queued or being decoded."""
        return 0 if self._pool is None else self._pool.pending()

    def missing_tiles(self) -> int:
        """Tiles of the current viewport not yet in the cache."""
        return 0 if self._source is None else self._source.missing(self.cache, self._zoom, self.viewport())

    def _request_tiles(self) -> None:
        if self._source is None or self._pool is None or self.width() <= 0:
            return
        self._pool.request(self._source.jobs(self.cache, self._zoom, self.viewport(), self.cache.max_bytes))

    def _on_pool_done(self, key, image) -> None:
        if not isinstance(self._source, SlidePyramid) or key[0] != self._source.gen:
            return
        self.cache.put(key, image, image.width() * image.height() * 4)
        r = self._source.tile_box0(key)
        self.update(self.image_rect_to_widget(r))
        self.tile_loaded.emit(key)

    def _on_pool_failed(self, key, message: str) -> None:
        if isinstance(self._source, SlidePyramid) and key[0] == self._source.gen:
            self.last_error = message

    # ------------------------------------------------------------------ mask
    def set_mask(self, labels: np.ndarray | None, *, downsample: float = 1.0, colors=None) -> None:
        """Show the mask ``labels`` (H, W) uint8 (kept by reference: edits then call :meth:`update_mask_rect`).

        ``colors`` None draws a RoI mask (255) in the mask colour; otherwise ``colors[k - 1]`` is the
        ``(r, g, b)`` of value ``k`` (a slide's class regions) at ``downsample`` level-0 pixels per pixel.
        """
        self._mask.set_labels(labels, downsample)
        self.set_mask_colors(colors)

    def set_mask_colors(self, colors=None) -> None:
        """Colours of the mask's values (see :meth:`set_mask`)."""
        if colors is None:
            self._mask.set_colors({255: self._mask_rgb})
        else:
            self._mask.set_colors({k: tuple(int(v) for v in rgb) for k, rgb in enumerate(colors, start=1)})
        self.mask_changed.emit()
        self.update()

    def mask(self) -> np.ndarray | None:
        return self._mask.labels

    def mask_downsample(self) -> float:
        """Level-0 pixels per mask pixel."""
        return self._mask.downsample

    def update_mask_rect(self, rect: tuple[int, int, int, int] | None) -> None:
        """Redraw the mask inside ``rect`` ``(r0, c0, r1, c1)`` (mask pixels; None: all); repaint only there."""
        if self._mask.labels is None:
            return
        self.mask_changed.emit()
        if rect is None:
            self._mask.clear_cache()
            self.update()
            return
        self._mask.update(rect)
        if self._mask.visible:
            d = self._mask.downsample
            ks, e = MaskLayer.sampling(self._zoom, d)
            k = (e + 1) * ks  # the outline's ring
            r0, c0, r1, c1 = rect
            box = rect_rc_to_qrect((r0 - k, c0 - k, r1 + k, c1 + k))
            self.update(self.image_rect_to_widget(QRectF(box.x() * d, box.y() * d, box.width() * d, box.height() * d)))

    def refresh_mask(self) -> None:
        """Redraw the whole mask (after the array was changed in place)."""
        self.update_mask_rect(None)

    def mask_color(self) -> tuple[int, int, int]:
        return self._mask_rgb

    def set_mask_opacity(self, opacity: float) -> None:
        """Opacity of the mask in [0, 1]."""
        self._mask.opacity = min(1.0, max(0.0, float(opacity)))
        self.update()

    def mask_opacity(self) -> float:
        return self._mask.opacity

    def set_mask_visible(self, visible: bool) -> None:
        self._mask.visible = bool(visible)
        self.mask_changed.emit()
        self.update()

    def mask_visible(self) -> bool:
        return self._mask.visible

    def mask_preview(self, max_side: int) -> QImage | None:
        """The mask over the whole image, about ``max_side`` pixels long (for the overview)."""
        return self._mask.preview(max_side)

    # --------------------------------------------------------------- layers
    def set_overlay(self, name: str, rgba: np.ndarray | None, *, opacity: float = 1.0, downsample: float | None = None) -> None:
        """Add, replace or (``rgba=None``) remove an overlay drawn over the image, under the mask.

        Parameters
        ----------
        name : str
            Layer name (e.g. ``"attention"``, ``"heatmap"``).
        rgba : ndarray of shape (H, W, 4) uint8, or None
            Straight (not premultiplied) RGBA.
        opacity : float
            Extra opacity multiplied with the layer's alpha.
        downsample : float, optional
            Level-0 pixels per layer pixel; default: the layer is stretched over the whole image.
        """
        if rgba is None or self._source is None:
            self._layers.pop(name, None)
        else:
            if downsample is None:
                downsample = self._source.dimensions[0] / max(1, np.shape(rgba)[1])
            self._layers[name] = Overlay(rgba, downsample, opacity)
        self.update()

    def overlay(self, name: str) -> QImage | None:
        """The image of overlay ``name`` (premultiplied ARGB), or None."""
        layer = self._layers.get(name)
        return None if layer is None else layer.image

    def overlay_names(self) -> list[str]:
        return list(self._layers)

    def set_outline(self, name: str, polygons, *, color=(0, 255, 255), dashed: bool = False) -> None:
        """Add, replace or (``polygons=None``) remove outlines: a list of ``(N, 2)`` level-0 (row, col) arrays.

        ``dashed`` draws a dashed line (a model's suggestion, not yet the mask).
        """
        if polygons is None:
            self._outlines.pop(name, None)
        else:
            self._outlines[name] = (outline_polygons(polygons), QColor(*color), bool(dashed))
        self.update()

    def outline(self, name: str) -> tuple[int, bool] | None:
        """``(number of polygons, dashed)`` of an outline, or None (for tests and status)."""
        entry = self._outlines.get(name)
        return None if entry is None else (len(entry[0]), entry[2])

    # --------------------------------------------------------------- banner
    def show_banner(self, text: str) -> None:
        """Show an inline message over the canvas (e.g. an image that cannot be read)."""
        self._banner = text
        self.update()

    def banner_text(self) -> str | None:
        return self._banner

    def set_placeholder(self, text: str) -> None:
        self._placeholder = text
        self.update()

    # ------------------------------------------------------------ geometry
    def zoom(self) -> float:
        """Screen pixels per level-0 pixel."""
        return self._zoom

    def offset(self) -> QPointF:
        return QPointF(self._offset)

    def widget_to_image(self, p: QPointF) -> QPointF:
        """Widget pixel position to level-0 coordinates (x, y), unclamped."""
        return QPointF((p.x() - self._offset.x()) / self._zoom, (p.y() - self._offset.y()) / self._zoom)

    def image_to_widget(self, p: QPointF) -> QPointF:
        return QPointF(p.x() * self._zoom + self._offset.x(), p.y() * self._zoom + self._offset.y())

    def image_rect_to_widget(self, rect: QRect | QRectF) -> QRect:
        """A level-0 rectangle as the widget rectangle that covers it (with a margin)."""
        r = QRectF(rect)
        tl = self.image_to_widget(r.topLeft())
        return QRectF(tl.x(), tl.y(), r.width() * self._zoom, r.height() * self._zoom).toAlignedRect().adjusted(-2, -2, 2, 2)

    def widget_box_to_image(self, rect: QRect) -> tuple[float, float, float, float]:
        """A widget rectangle as the level-0 box ``(x, y, width, height)`` under it."""
        tl = self.widget_to_image(QPointF(rect.topLeft()))
        return (tl.x(), tl.y(), (rect.width() + 1) / self._zoom, (rect.height() + 1) / self._zoom)

    def viewport(self) -> tuple[float, float, float, float]:
        """The level-0 box ``(x, y, width, height)`` under the widget."""
        tl = self.widget_to_image(QPointF(0, 0))
        return (tl.x(), tl.y(), self.width() / self._zoom, self.height() / self._zoom)

    # --------------------------------------------------------- magnification
    def um_per_screen_px(self) -> float | None:
        """Microns per screen pixel at the current zoom (None without a stored pixel size)."""
        mpp = None if self._source is None else self._source.mpp
        return None if not mpp else max(mpp) / self._zoom

    def magnification(self) -> float | None:
        """The magnification shown (e.g. 10.0), None for an uncalibrated image."""
        s = self._source
        native = None if s is None else native_magnification(s.objective_power, s.mpp)
        return None if native is None else native * self._zoom

    def set_magnification(self, mag: float) -> bool:
        """Zoom to ``mag`` (1x ... 40x) about the centre; False when the image records no scale."""
        s = self._source
        z = None if s is None else magnification_zoom(mag, s.objective_power, s.mpp)
        if z is None:
            return False
        self.set_zoom(z)
        return True

    # ------------------------------------------------------- zoom and pan
    def fit_zoom(self) -> float:
        if self._source is None:
            return 1.0
        w, h = self._source.dimensions
        return max(1e-4, min((self.width() - 8) / w, (self.height() - 8) / h))

    def _min_zoom(self) -> float:
        return min(MIN_ZOOM, self.fit_zoom() * 0.5)

    def fit(self) -> None:
        """Zoom so the whole image is visible, centred (Ctrl+0)."""
        self.stop_animation()
        self._fit_mode = True
        z = self.fit_zoom()
        self._set_view(z, self._centred_offset(z))

    def actual_size(self, anchor: QPointF | None = None) -> None:
        """One level-0 pixel per screen pixel (Ctrl+1), keeping ``anchor`` (default: centre) still."""
        self.set_zoom(1.0, anchor)

    def set_zoom(self, zoom: float, anchor: QPointF | None = None) -> None:
        """Zoom to ``zoom`` keeping the image point under widget point ``anchor`` (default: centre) still."""
        if self._source is None:
            return
        self.stop_animation()
        zoom = min(MAX_ZOOM, max(self._min_zoom(), float(zoom)))
        if anchor is None:
            anchor = QPointF(self.width() / 2, self.height() / 2)
        p = self.widget_to_image(anchor)
        self._fit_mode = False
        self._set_view(zoom, QPointF(anchor.x() - p.x() * zoom, anchor.y() - p.y() * zoom))

    def zoom_by(self, factor: float, anchor: QPointF | None = None) -> None:
        self.set_zoom(self._zoom * factor, anchor)

    def pan_by(self, dx: float, dy: float) -> None:
        """Move the image by ``(dx, dy)`` widget pixels."""
        self.stop_animation()
        self._fit_mode = False
        self._set_view(self._zoom, QPointF(self._offset.x() + dx, self._offset.y() + dy))

    def set_view(self, zoom: float, offset: QPointF) -> None:
        """Show ``zoom`` with the image's top-left at widget point ``offset`` (as another view shows it)."""
        self.stop_animation()
        self._fit_mode = False
        self._set_view(float(zoom), QPointF(offset))

    def center_on(self, x: float, y: float) -> None:
        """Put level-0 point ``(x, y)`` at the centre of the view."""
        self.stop_animation()
        self._fit_mode = False
        self._set_view(self._zoom, QPointF(self.width() / 2 - x * self._zoom, self.height() / 2 - y * self._zoom))

    def animate_zoom(self, zoom: float, anchor: QPointF | None = None) -> None:
        """Glide to ``zoom`` (about 0.16 s), keeping the image point under ``anchor`` still."""
        if self._source is None:
            return
        z1 = min(MAX_ZOOM, max(self._min_zoom(), float(zoom)))
        if anchor is None:
            anchor = QPointF(self.width() / 2, self.height() / 2)
        p = self.widget_to_image(anchor)
        self._start_animation(z1, lambda t, z: QPointF(anchor.x() - p.x() * z, anchor.y() - p.y() * z), fit=False)

    def animate_zoom_by(self, factor: float, anchor: QPointF | None = None) -> None:
        """Glide by ``factor`` from the current (or currently targeted) zoom."""
        base = self._anim_path[1] if self.is_animating() and self._anim_path else self._zoom
        self.animate_zoom(base * factor, anchor)

    def animate_fit(self) -> None:
        """Glide to the whole image, centred."""
        if self._source is None:
            return
        z1 = self.fit_zoom()
        o0, o1 = QPointF(self._offset), self._centred_offset(z1)
        self._start_animation(z1, lambda t, z: o0 + (o1 - o0) * t, fit=True)

    def stop_animation(self) -> None:
        """Stop a glide where it is (a direct zoom or pan takes over)."""
        if self.is_animating():
            self._anim_path = None
            self._anim.stop()

    def is_animating(self) -> bool:
        return self._anim.state() == QVariantAnimation.State.Running

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
        _, z1, offset, fit = self._anim_path
        self._anim_path = None
        self._set_view(z1, offset(1.0, z1))
        self._fit_mode = fit

    def _centred_offset(self, zoom: float) -> QPointF:
        if self._source is None:
            return QPointF(0, 0)
        w, h = self._source.dimensions
        return QPointF((self.width() - w * zoom) / 2, (self.height() - h * zoom) / 2)

    def _set_view(self, zoom: float, offset: QPointF) -> None:
        if self._source is not None:
            # keep at least a quarter of the view (or the whole image if smaller) on the image
            iw, ih = self._source.dimensions[0] * zoom, self._source.dimensions[1] * zoom
            kx, ky = min(iw, self.width() / 4), min(ih, self.height() / 4)
            x = min(max(offset.x(), kx - iw), self.width() - kx)
            y = min(max(offset.y(), ky - ih), self.height() - ky)
            if self.is_slide() and zoom >= 1.0:  # whole screen pixels: level-0 pixels land on screen pixels
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
        self._place_overview()
        super().resizeEvent(event)

    def _place_overview(self) -> None:
        self.overview.move(self.width() - self.overview.width() - 10, 10)

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
        if self._source is None:
            self._paint_placeholder(painter)
            self._paint_banner(painter)
            return
        painter.setClipRect(exposed)
        self._source.paint(painter, self, exposed, self.cache)
        area = self.widget_box_to_image(exposed)
        for layer in self._layers.values():
            layer.paint(painter, self, area)
        if self._mask.visible and self._mask.labels is not None:
            self._mask.paint(painter, self, area)
        if self._outlines:
            paint_outlines(painter, self, self._outlines)
        painter.setClipping(False)
        self._paint_foreground(painter, exposed)
        if self.is_slide():
            paint_scale_bar(painter, QPointF(12, self.height() - 12), self.um_per_screen_px())
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
