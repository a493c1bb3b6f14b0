"""Interaction half of the annotation canvas: tools, mouse, keyboard, cursor.

:class:`AnnotationView` adds to :class:`~app.workspace.canvas_view.CanvasView` the
brush, eraser and polygon/lasso tools, which edit the mask through the core's
:class:`gusa_core.annotation.MaskEditor` (one undo step per stroke), and the
navigation gestures:

============================  ===========================================
wheel                         zoom towards the cursor
Ctrl+wheel, ``[`` / ``]``     brush size
space+drag, middle drag       pan
arrow keys                    pan
``+`` / ``-``                 zoom in / out
Alt while painting            the opposite tool (brush erases, eraser paints)
lasso: drag                   freehand outline, filled on release
lasso: click, click, ...      polygon vertices; Enter or double-click fills,
                              Backspace removes a vertex, Esc cancels
============================  ===========================================
"""

from __future__ import annotations

import math

from PySide6.QtCore import QPointF, QRect, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QCursor, QPainter, QPainterPath, QPen, QPolygonF
from PySide6.QtWidgets import QWidget

from app.workspace.canvas_view import CanvasView
from app.base.coords import pixel_of_point, point_to_rc

__all__ = ["AnnotationView", "TOOLS", "MIN_BRUSH", "MAX_BRUSH"]

TOOLS = ("brush", "eraser", "lasso")
MIN_BRUSH = 1
MAX_BRUSH = 800
_LASSO_DRAG_PX = 6  # a press that moves further than this is a freehand lasso


class AnnotationView(CanvasView):
    """The canvas with tools that edit the mask.

    Signals
    -------
    cursor_moved(object)
        ``(row, col)`` of the image pixel under the cursor, or ``None`` off the image.
    stroke_finished(object)
        A brush stroke, lasso fill or other edit ended; its ``(r0, c0, r1, c1)``.
    brush_size_changed(int)
        Brush diameter in image pixels.
    tool_changed(str)
        One of :data:`TOOLS`.
    """

    cursor_moved = Signal(object)
    stroke_finished = Signal(object)
    brush_size_changed = Signal(int)
    tool_changed = Signal(str)
    edit_refused = Signal()  # a paint or lasso press on a read-only canvas

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self._editor = None
        self._tool = "brush"
        self._brush = 40
        self._cursor_pos: QPointF | None = None  # widget coordinates
        self._painting = False
        self._panning = False
        self._space = False
        self._pan_last = QPointF()
        self._lasso: list[QPointF] = []  # image coordinates
        self._lasso_mode: str | None = None  # "drag" | "click"
        self._press_pos = QPointF()
        self._lasso_value = 255
        self._lasso_travel = 0.0
        self._read_only = False
        self._update_cursor()

    # ----------------------------------------------------------- editor
    def set_editor(self, editor) -> None:
        """Edit through ``editor`` (a ``MaskEditor``) and show its mask; ``None`` stops editing."""
        if self._editor is not None:
            try:
                self._editor.events.changed.disconnect(self._on_editor_changed)
            except (TypeError, ValueError):
                pass
        self._cancel_lasso()
        self._painting = False
        self._editor = editor
        if editor is None:
            self.set_mask(None)
        else:
            editor.events.changed.connect(self._on_editor_changed)
            self.set_mask(editor.mask)

    def editor(self):
        return self._editor

    def set_read_only(self, read_only: bool) -> None:
        """Show the mask but refuse every paint and lasso stroke (zoom and pan still work)."""
        self._read_only = bool(read_only)
        self._cancel_lasso()
        self._painting = False

    def is_read_only(self) -> bool:
        return self._read_only

    def _on_editor_changed(self, rect) -> None:
        if self._editor is not None and self.mask() is not self._editor.mask:
            self.set_mask(self._editor.mask)  # the editor was reset with a new array
        else:
            self.update_mask_rect(rect)

    # ------------------------------------------------------------ tools
    def tool(self) -> str:
        return self._tool

    def set_tool(self, tool: str) -> None:
        if tool not in TOOLS:
            raise ValueError(f"unknown tool {tool!r}; expected one of {TOOLS}")
        if tool != self._tool:
            self._cancel_lasso()
            self._tool = tool
            self._update_cursor()
            self._update_cursor_area()
            self.tool_changed.emit(tool)

    def brush_size(self) -> int:
        """Brush diameter in image pixels."""
        return self._brush

    def set_brush_size(self, size: int) -> None:
        size = int(min(MAX_BRUSH, max(MIN_BRUSH, size)))
        if size != self._brush:
            self._update_cursor_area()
            self._brush = size
            self._update_cursor_area()
            self.brush_size_changed.emit(size)

    def change_brush_size(self, steps: int) -> None:
        """Grow (``steps > 0``) or shrink the brush by about 10 % per step."""
        size = self._brush
        for _ in range(abs(steps)):
            delta = max(1, round(size * 0.1))
            size = size + delta if steps > 0 else size - delta
        self.set_brush_size(size)

    def _update_cursor(self) -> None:
        if self._panning:
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
        elif self._space:
            self.setCursor(Qt.CursorShape.OpenHandCursor)
        elif self._tool == "lasso":
            self.setCursor(Qt.CursorShape.CrossCursor)
        else:
            self.setCursor(Qt.CursorShape.BlankCursor)  # the circle is the cursor

    # ---------------------------------------------------------- helpers
    def _image_point(self, widget_pos: QPointF) -> QPointF:
        return self.widget_to_image(widget_pos)

    def _brush_value(self, modifiers) -> int:
        erase = self._tool == "eraser"
        if modifiers & Qt.KeyboardModifier.AltModifier:
            erase = not erase
        return 0 if erase else 255

    def _cursor_rect(self, pos: QPointF | None) -> QRect:
        if pos is None:
            return QRect()
        r = max(3.0, self._brush * self.zoom() / 2) + 3
        return QRectF(pos.x() - r, pos.y() - r, 2 * r, 2 * r).toAlignedRect()

    def _update_cursor_area(self) -> None:
        if self._cursor_pos is not None:
            self.update(self._cursor_rect(self._cursor_pos))

    def _move_cursor(self, pos: QPointF | None) -> None:
        if self._tool != "lasso":
            self._update_cursor_area()
            self._cursor_pos = pos
            self._update_cursor_area()
        else:
            self._cursor_pos = pos
        if pos is None:
            self.cursor_moved.emit(None)
            return
        row, col = pixel_of_point(self._image_point(pos))
        shape = self.image_shape()
        inside = shape is not None and 0 <= row < shape[0] and 0 <= col < shape[1]
        self.cursor_moved.emit((row, col) if inside else None)

    def _stroke_to(self, widget_pos: QPointF) -> None:
        # the brush centre is the continuous position; the core rounds to the pixel
        row, col = point_to_rc(self._image_point(widget_pos) - QPointF(0.5, 0.5))
        self._editor.stroke_to(row, col, (self._brush - 1) / 2)

    # ------------------------------------------------------------ mouse
    def mousePressEvent(self, event) -> None:
        pos = event.position()
        button = event.button()
        if button == Qt.MouseButton.MiddleButton or (button == Qt.MouseButton.LeftButton and self._space):
            self._panning = True
            self._pan_last = pos
            self._update_cursor()
            event.accept()
            return
        if button != Qt.MouseButton.LeftButton or self._editor is None or not self.has_image():
            super().mousePressEvent(event)
            return
        if self._read_only:
            self.edit_refused.emit()
            event.accept()
            return
        if self._tool in ("brush", "eraser"):
            self._painting = True
            self._editor.begin_stroke(self._brush_value(event.modifiers()))
            self._stroke_to(pos)
        else:
            self._press_pos = pos
            self._lasso_travel = 0.0
            self._lasso_value = 0 if event.modifiers() & Qt.KeyboardModifier.AltModifier else 255
            if self._lasso_mode != "click":
                self._lasso = [self._image_point(pos)]
                self._lasso_mode = "drag"
            else:
                self._lasso.append(self._image_point(pos))
            self._update_lasso_area()
        event.accept()

    def mouseMoveEvent(self, event) -> None:
        pos = event.position()
        if self._panning:
            delta = pos - self._pan_last
            self._pan_last = pos
            self.pan_by(delta.x(), delta.y())
            self._cursor_pos = pos
            event.accept()
            return
        self._move_cursor(pos)
        if self._painting and self._editor is not None:
            self._stroke_to(pos)
        elif self._tool == "lasso" and self._lasso:
            if self._lasso_mode == "drag" and event.buttons() & Qt.MouseButton.LeftButton:
                self._lasso.append(self._image_point(pos))
                self._lasso_travel = max(self._lasso_travel, (pos - self._press_pos).manhattanLength())
            self._update_lasso_area()
        event.accept()

    def mouseReleaseEvent(self, event) -> None:
        button = event.button()
        if self._panning and button in (Qt.MouseButton.MiddleButton, Qt.MouseButton.LeftButton):
            self._panning = False
            self._update_cursor()
            event.accept()
            return
        if button != Qt.MouseButton.LeftButton:
            super().mouseReleaseEvent(event)
            return
        if self._painting:
            self._painting = False
            rect = self._editor.end_stroke() if self._editor is not None else None
            if rect is not None:
                self.stroke_finished.emit(rect)
        elif self._tool == "lasso" and self._lasso_mode == "drag":
            if self._lasso_travel > _LASSO_DRAG_PX and len(self._lasso) >= 3:
                self.close_lasso()
            else:
                self._lasso_mode = "click"  # a click starts a polygon: one vertex per click
                self._lasso = self._lasso[:1]
        event.accept()

    def mouseDoubleClickEvent(self, event) -> None:
        if self._tool == "lasso" and self._lasso_mode == "click":
            self.close_lasso()
            event.accept()
            return
        super().mouseDoubleClickEvent(event)

    def wheelEvent(self, event) -> None:
        dy = event.angleDelta().y()
        if not dy:
            dy = event.angleDelta().x()
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            steps = 1 if dy > 0 else -1
            self.change_brush_size(steps)
        elif dy:
            # exponential in the wheel angle: trackpads (small deltas) zoom smoothly
            self.zoom_by(math.pow(2.0, dy / 360.0), event.position())
            self._update_cursor_area()
        event.accept()

    def leaveEvent(self, event) -> None:
        self._move_cursor(None)
        super().leaveEvent(event)

    # --------------------------------------------------------- keyboard
    def keyPressEvent(self, event) -> None:
        key = event.key()
        step = max(40, min(self.width(), self.height()) // 8)
        if key == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = True
            self._update_cursor()
        elif key == Qt.Key.Key_Left:
            self.pan_by(step, 0)
        elif key == Qt.Key.Key_Right:
            self.pan_by(-step, 0)
        elif key == Qt.Key.Key_Up:
            self.pan_by(0, step)
        elif key == Qt.Key.Key_Down:
            self.pan_by(0, -step)
        elif key in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self._lasso:
            self.close_lasso()
        elif key == Qt.Key.Key_Escape and self._lasso:
            self._cancel_lasso()
        elif key == Qt.Key.Key_Backspace and self._lasso_mode == "click" and self._lasso:
            self._update_lasso_area()
            self._lasso.pop()
            if not self._lasso:
                self._lasso_mode = None
            self._update_lasso_area()
        else:
            super().keyPressEvent(event)
            return
        event.accept()

    def keyReleaseEvent(self, event) -> None:
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = False
            self._update_cursor()
            event.accept()
            return
        super().keyReleaseEvent(event)

    def focusOutEvent(self, event) -> None:
        self._space = False
        self._update_cursor()
        super().focusOutEvent(event)

    # ------------------------------------------------------------ lasso
    def lasso_points(self) -> list[tuple[float, float]]:
        """The lasso's vertices so far, as ``(row, col)``."""
        return [point_to_rc(p) for p in self._lasso]

    def close_lasso(self) -> tuple | None:
        """Fill the lasso polygon (one undo step); returns the changed rectangle."""
        pts = [point_to_rc(p - QPointF(0.5, 0.5)) for p in self._lasso]
        self._cancel_lasso()
        if self._editor is None or len(pts) < 3:
            return None
        rect = self._editor.fill_polygon(pts, self._lasso_value)
        if rect is not None:
            self.stroke_finished.emit(rect)
        return rect

    def _cancel_lasso(self) -> None:
        if self._lasso:
            self._update_lasso_area()
        self._lasso = []
        self._lasso_mode = None

    def _lasso_widget_polygon(self) -> QPolygonF:
        poly = QPolygonF([self.image_to_widget(p) for p in self._lasso])
        if self._lasso_mode == "click" and self._cursor_pos is not None:
            poly.append(self._cursor_pos)
        return poly

    def _update_lasso_area(self) -> None:
        # the whole polygon's box: cheap enough (lines only) and never leaves trails
        self.update(self._lasso_widget_polygon().boundingRect().toAlignedRect().adjusted(-4, -4, 4, 4))
        if self._cursor_pos is not None:
            self.update(self._cursor_rect(self._cursor_pos))

    # --------------------------------------------------------- painting
    def _paint_foreground(self, painter: QPainter, exposed: QRect) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        if self._lasso:
            poly = self._lasso_widget_polygon()
            fill = QPainterPath()
            fill.addPolygon(poly)
            fill.closeSubpath()
            color = QColor(*self.mask_color()) if self._lasso_value else QColor(255, 255, 255)
            color.setAlpha(60)
            painter.fillPath(fill, color)
            for pen in (QPen(QColor(0, 0, 0, 200), 3), QPen(QColor(255, 255, 255), 1.2)):
                painter.setPen(pen)
                painter.drawPolyline(poly)
            if self._lasso_mode == "click":
                painter.setBrush(QColor(255, 255, 255))
                painter.setPen(QPen(QColor(0, 0, 0), 1))
                n = poly.size() - (1 if self._cursor_pos is not None else 0)
                for i in range(n):
                    painter.drawEllipse(poly.at(i), 3, 3)
        if self._tool in ("brush", "eraser") and self._cursor_pos is not None and not self._panning and not self._space:
            r = max(1.0, self._brush * self.zoom() / 2)
            c = self._cursor_pos
            painter.setBrush(Qt.BrushStyle.NoBrush)
            outer = QPen(QColor(0, 0, 0, 180), 3)
            inner = QPen(QColor(255, 255, 255) if self._tool == "brush" else QColor(255, 120, 120), 1.3)
            if self._tool == "eraser":
                inner.setStyle(Qt.PenStyle.DashLine)
            for pen in (outer, inner):
                painter.setPen(pen)
                painter.drawEllipse(c, r, r)
            painter.setPen(QPen(QColor(255, 255, 255), 1))
            painter.drawPoint(c)

    def cursor_widget_pos(self) -> QPointF | None:
        return self._cursor_pos

    def sync_cursor(self) -> None:
        """Refresh the cursor circle at the mouse's current position."""
        pos = self.mapFromGlobal(QCursor.pos())
        if self.rect().contains(pos):
            self._move_cursor(QPointF(pos))
