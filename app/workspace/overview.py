"""The slide overview: the whole slide small, the viewport as a rectangle; click or drag to go there."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QWidget

__all__ = ["OverviewWidget"]

_MAX_SIDE = 220


class OverviewWidget(QWidget):
    """Thumbnail of a :class:`~app.workspace.canvas_view.CanvasView`'s slide with its viewport.

    It follows ``view.view_changed``; a click or drag centres the view on that point.

    Signals
    -------
    navigated(float, float)
        The level-0 point the user clicked or dragged to.
    """

    navigated = Signal(float, float)

    def __init__(self, view, parent: QWidget | None = None):
        super().__init__(parent)
        self._view = view
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setToolTip("Overview: click or drag to move the view")
        view.view_changed.connect(self._on_view_view_changed)
        view.mask_changed.connect(self._on_view_mask_changed)
        self._drag = False
        self._regions = None
        self._regions_dirty = True
        self.sync()

    def sync(self) -> None:
        """Resize to the slide's aspect ratio and repaint; hidden without a slide or while all of it is in view."""
        thumb = self._view.thumbnail()
        if thumb is None:
            self.hide()
            return
        s = _MAX_SIDE / max(thumb.width(), thumb.height())
        self.setFixedSize(QSize(max(20, round(thumb.width() * s)) + 4, max(20, round(thumb.height() * s)) + 4))
        self._show_if_needed()
        self.update()

    def _show_if_needed(self) -> None:
        # with the whole slide on screen the overview would only cover part of it
        slide = self._view.slide()
        if slide is None:
            self.hide()
            return
        x, y, w, h = self._view.viewport()
        sw, sh = slide.dimensions
        self.setVisible(not (x <= 0 and y <= 0 and x + w >= sw and y + h >= sh) or self._drag)

    def _on_view_view_changed(self) -> None:
        self._show_if_needed()
        self.update()

    def _on_view_mask_changed(self) -> None:
        self._regions_dirty = True  # rebuilt at the next paint: a stroke's many changes cost one preview
        self.update()

    def _image_rect(self) -> QRectF:
        return QRectF(2, 2, self.width() - 4, self.height() - 4)

    def viewport_rect(self) -> QRectF:
        """The view's viewport in this widget's coordinates."""
        slide = self._view.slide()
        if slide is None:
            return QRectF()
        r = self._image_rect()
        sx, sy = r.width() / slide.dimensions[0], r.height() / slide.dimensions[1]
        x, y, w, h = self._view.viewport()
        return QRectF(r.x() + x * sx, r.y() + y * sy, w * sx, h * sy).intersected(r)

    def to_level0(self, p: QPointF) -> QPointF:
        slide = self._view.slide()
        r = self._image_rect()
        return QPointF((p.x() - r.x()) * slide.dimensions[0] / r.width(), (p.y() - r.y()) * slide.dimensions[1] / r.height())

    def paintEvent(self, event) -> None:
        thumb = self._view.thumbnail()
        painter = QPainter(self)
        try:
            painter.fillRect(self.rect(), QColor(20, 20, 22, 220))
            if thumb is None:
                return
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
            painter.drawImage(self._image_rect(), thumb, QRectF(thumb.rect()))
            if self._regions_dirty:
                self._regions = self._view.mask_preview(2 * _MAX_SIDE)
                self._regions_dirty = False
            if self._regions is not None:
                painter.drawImage(self._image_rect(), self._regions, QRectF(self._regions.rect()))
            pen = QPen(QColor(230, 30, 30), 2)
            painter.setPen(pen)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            vr = self.viewport_rect()
            if vr.width() < 4 or vr.height() < 4:  # a tiny viewport still shows where it is
                vr = QRectF(vr.center().x() - 3, vr.center().y() - 3, 6, 6)
            painter.drawRect(vr)
        finally:
            painter.end()

    def mousePressEvent(self, event) -> None:
        if event.button() == Qt.MouseButton.LeftButton and self._view.slide() is not None:
            self._drag = True
            self._go(event.position())
            event.accept()

    def mouseMoveEvent(self, event) -> None:
        if self._drag:
            self._go(event.position())
            event.accept()

    def mouseReleaseEvent(self, event) -> None:
        self._drag = False
        event.accept()

    def _go(self, pos: QPointF) -> None:
        p = self.to_level0(pos)
        self._view.center_on(p.x(), p.y())
        self.navigated.emit(p.x(), p.y())
