"""Interaction half of the one canvas: brush, eraser, lasso and pan on a flat image's RoI or a slide's regions.

:class:`AnnotationView` adds to :class:`~app.workspace.canvas_view.CanvasView` the tools, which
edit the mask through the core's :class:`gusa_core.annotation.MaskEditor` (one undo step per
stroke), and the navigation gestures. The same code paints a flat image's RoI (value 255) and
a slide's class regions (the current class value) at the mask's downsample: a level-0 point
``(x, y)`` is mask pixel ``(y / d - 0.5, x / d - 0.5)`` (the core rounds to the pixel).

On a flat image the brush is sized in image pixels; on a slide in screen pixels, so it feels
the same at every magnification (its size on the slide, in µm, follows the zoom).

============================  ===========================================
wheel                         zoom towards the cursor
Ctrl+wheel                    brush size
space+drag, middle/right drag pan (and the pan tool; its click is ``clicked``)
arrow keys                    pan
Alt while painting            the opposite tool (brush erases, eraser paints)
lasso: drag                   freehand outline, filled on release
lasso: click, click, ...      polygon vertices; Enter or double-click fills,
                              Backspace removes a vertex, Esc cancels
``1`` – ``5`` on a slide      magnification 1x, 5x, 10x, 20x, 40x
``H`` on a slide              the pan tool
============================  ===========================================

The window's actions give the other keys (tools, brush size, undo, fit, labels, classes).
"""

from __future__ import annotations

import math

from PySide6.QtCore import QEvent, QPointF, QRect, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QCursor, QPainter, QPainterPath, QPen, QPolygonF
from PySide6.QtWidgets import QWidget

from app.base.coords import pixel_of_point, point_to_rc
from app.workspace.canvas_view import CanvasView

__all__ = ["AnnotationView", "TOOLS", "MIN_BRUSH", "MAX_BRUSH", "MAGNIFICATIONS", "MAGNIFICATION_KEYS", "SCREEN_BRUSH"]

TOOLS = ("brush", "eraser", "lasso", "pan")
MIN_BRUSH = 1
MAX_BRUSH = 800
SCREEN_BRUSH = (4, 400)  # a slide's brush, in screen pixels
MAGNIFICATIONS = (1, 5, 10, 20, 40)
MAGNIFICATION_KEYS = {Qt.Key.Key_1: 1, Qt.Key.Key_2: 5, Qt.Key.Key_3: 10, Qt.Key.Key_4: 20, Qt.Key.Key_5: 40}
_LASSO_DRAG_PX = 6  # a press that moves further than this is a freehand lasso
_ROI = 255


class AnnotationView(CanvasView):
    """The canvas with tools that edit the mask.

    Signals
    -------
    cursor_moved(object)
        ``(row, col)`` of the level-0 pixel under the cursor, or ``None`` off the image.
    stroke_finished(object)
        A brush stroke, lasso fill or other edit ended; its ``(r0, c0, r1, c1)`` in mask pixels.
    brush_size_changed(int)
        Brush diameter (image pixels on a flat image, screen pixels on a slide).
    tool_changed(str)
        One of :data:`TOOLS`.
    edit_refused()
        A paint or lasso press on a read-only canvas.
    clicked(float, float)
        A left click without dragging with the pan tool, at this level-0 point (x, y).
    """

    cursor_moved = Signal(object)
    stroke_finished = Signal(object)
    brush_size_changed = Signal(int)
    tool_changed = Signal(str)
    edit_refused = Signal()
    clicked = Signal(float, float)

    def __init__(self, parent: QWidget | None = None, **kwargs):
        super().__init__(parent, **kwargs)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self._editor = None
        self._tool = "brush"
        self._value = _ROI
        self._class_value = 1
        self._brushes = {False: 40, True: 40}  # image pixels (flat), screen pixels (slide)
        self._cursor_pos: QPointF | None = None
        self._painting = False
        self._pan_last: QPointF | None = None
        self._press_pos: QPointF | None = None
        self._space = False
        self._lasso: list[QPointF] = []  # level-0 points
        self._lasso_mode: str | None = None  # "drag" | "click"
        self._lasso_value = _ROI
        self._lasso_travel = 0.0
        self._read_only = False
        self._update_cursor()

    # ----------------------------------------------------------- editor
    def set_editor(self, editor, *, downsample: float = 1.0, colors=None) -> None:
        """Edit ``editor.mask`` (a ``MaskEditor``'s) and show it; ``None`` stops editing.

        ``colors`` None: a RoI mask painted with 255; else a slide's class regions (see :meth:`set_mask`),
        painted with :meth:`class_value`.
        """
        if self._editor is not None:
            try:
                self._editor.events.changed.disconnect(self._on_editor_changed)
            except (TypeError, ValueError, RuntimeError):
                pass
        self._cancel_lasso()
        self._painting = False
        self._editor = editor
        self._value = _ROI if colors is None else self._class_value
        if editor is None:
            self.set_mask(None)
        else:
            editor.events.changed.connect(self._on_editor_changed)
            self.set_mask(editor.mask, downsample=downsample, colors=colors)

    def editor(self):
        return self._editor

    def set_read_only(self, read_only: bool) -> None:
        """Show the mask but refuse every paint and lasso stroke, on flat images and slides (zoom and pan work)."""
        self._read_only = bool(read_only)
        self._cancel_lasso()
        self._painting = False

    def is_read_only(self) -> bool:
        return self._read_only

    def _on_editor_changed(self, rect) -> None:
        if self._editor is not None and self.mask() is not self._editor.mask:
            self._mask.set_labels(self._editor.mask, self.mask_downsample())  # the editor was reset with a new array
            self.refresh_mask()
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
            self._update_cursor_area()
            self._tool = tool
            self._update_cursor()
            self._update_cursor_area()
            self.tool_changed.emit(tool)

    def class_value(self) -> int:
        """The mask value a slide's brush and lasso paint (class index + 1)."""
        return self._class_value

    def set_class_value(self, value: int) -> None:
        self._class_value = int(value)
        if self._value != _ROI:
            self._value = self._class_value

    def brush_on_screen(self) -> bool:
        """Whether the brush is sized in screen pixels (a slide) rather than image pixels."""
        return self.is_slide()

    def brush_size(self) -> int:
        """Brush diameter: image pixels on a flat image, screen pixels on a slide."""
        return self._brushes[self.brush_on_screen()]

    def set_brush_size(self, size: int) -> None:
        lo, hi = SCREEN_BRUSH if self.brush_on_screen() else (MIN_BRUSH, MAX_BRUSH)
        size = int(min(hi, max(lo, size)))
        if size != self.brush_size():
            self._update_cursor_area()
            self._brushes[self.brush_on_screen()] = size
            self._update_cursor_area()
            self.brush_size_changed.emit(size)

    def change_brush_size(self, steps: int) -> None:
        """Grow (``steps > 0``) or shrink the brush by about 10 % per step."""
        size = self.brush_size()
        for _ in range(abs(steps)):
            delta = max(1, round(size * 0.1))
            size = size + delta if steps > 0 else size - delta
        self.set_brush_size(size)

    def brush_um(self) -> float | None:
        """Brush diameter on the image in µm at the current zoom (None if uncalibrated)."""
        upp = self.um_per_screen_px()
        return None if upp is None else self._screen_brush() * upp

    def _screen_brush(self) -> float:
        return self.brush_size() if self.brush_on_screen() else self.brush_size() * self.zoom()

    def set_slide(self, slide, thumbnail=None) -> None:
        super().set_slide(slide, thumbnail)
        self.brush_size_changed.emit(self.brush_size())

    def set_image(self, image, *, bgra=None) -> None:
        was_slide = self.is_slide()
        super().set_image(image, bgra=bgra)
        if was_slide:
            self.brush_size_changed.emit(self.brush_size())

    def _update_cursor(self) -> None:
        if self._pan_last is not None:
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
        elif self._space or self._tool == "pan":
            self.setCursor(Qt.CursorShape.OpenHandCursor)
        elif self._tool == "lasso":
            self.setCursor(Qt.CursorShape.CrossCursor)
        else:
            self.setCursor(Qt.CursorShape.BlankCursor)  # the circle is the cursor

    # ---------------------------------------------------------- helpers
    def _mask_point(self, widget_pos: QPointF) -> tuple[float, float]:
        """Continuous mask (row, col) of a widget point; pixel centres are whole numbers."""
        row, col = point_to_rc(self.widget_to_image(widget_pos))
        d = self.mask_downsample()
        return row / d - 0.5, col / d - 0.5

    def _brush_value(self, modifiers) -> int:
        erase = self._tool == "eraser"
        if modifiers & Qt.KeyboardModifier.AltModifier:
            erase = not erase
        return 0 if erase else self._value

    def _cursor_rect(self, pos: QPointF | None) -> QRect:
        if pos is None:
            return QRect()
        r = max(3.0, self._screen_brush() / 2) + 3
        return QRectF(pos.x() - r, pos.y() - r, 2 * r, 2 * r).toAlignedRect()

    def _update_cursor_area(self) -> None:
        if self._cursor_pos is not None:
            self.update(self._cursor_rect(self._cursor_pos))

    def _move_cursor(self, pos: QPointF | None) -> None:
        if self._tool in ("brush", "eraser"):
            self._update_cursor_area()
            self._cursor_pos = pos
            self._update_cursor_area()
        else:
            self._cursor_pos = pos
        if pos is None:
            self.cursor_moved.emit(None)
            return
        row, col = pixel_of_point(self.widget_to_image(pos))
        shape = self.image_shape()
        inside = shape is not None and 0 <= row < shape[0] and 0 <= col < shape[1]
        self.cursor_moved.emit((row, col) if inside else None)

    def _stroke_to(self, widget_pos: QPointF) -> None:
        row, col = self._mask_point(widget_pos)
        d = self.mask_downsample()
        if self.brush_on_screen():
            radius = max(0.0, self.brush_size() / 2 / (self.zoom() * d) - 0.5)
        else:
            radius = (self.brush_size() - 1) / 2 / d
        self._editor.stroke_to(row, col, radius)

    # ------------------------------------------------------------ mouse
    def _pan_button(self, event) -> bool:
        b = event.button()
        return b in (Qt.MouseButton.MiddleButton, Qt.MouseButton.RightButton) or (
            b == Qt.MouseButton.LeftButton and (self._space or self._tool == "pan"))

    def mousePressEvent(self, event) -> None:
        pos = event.position()
        if not self.has_image():
            super().mousePressEvent(event)
            return
        if self._pan_button(event):
            self._pan_last = pos
            self._press_pos = pos if event.button() == Qt.MouseButton.LeftButton else None
            self._update_cursor()
            event.accept()
            return
        if event.button() != Qt.MouseButton.LeftButton or self._editor is None:
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
            self._lasso_value = 0 if event.modifiers() & Qt.KeyboardModifier.AltModifier else self._value
            if self._lasso_mode != "click":
                self._lasso = [self.widget_to_image(pos)]
                self._lasso_mode = "drag"
            else:
                self._lasso.append(self.widget_to_image(pos))
            self._update_lasso_area()
        event.accept()

    def mouseMoveEvent(self, event) -> None:
        pos = event.position()
        if self._pan_last is not None:
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
                self._lasso.append(self.widget_to_image(pos))
                self._lasso_travel = max(self._lasso_travel, (pos - self._press_pos).manhattanLength())
            self._update_lasso_area()
        event.accept()

    def mouseReleaseEvent(self, event) -> None:
        if self._pan_last is not None and self._pan_button(event):
            self._pan_last = None
            press, self._press_pos = self._press_pos, None
            self._update_cursor()
            if press is not None and (event.position() - press).manhattanLength() < 4:
                p = self.widget_to_image(event.position())
                self.clicked.emit(p.x(), p.y())
            event.accept()
            return
        if event.button() != Qt.MouseButton.LeftButton:
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
        dy = event.angleDelta().y() or event.angleDelta().x()
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.change_brush_size(1 if dy > 0 else -1)
        elif dy:
            # exponential in the wheel angle: trackpads (small deltas) zoom smoothly
            self.zoom_by(math.pow(2.0, dy / 360.0), event.position())
            self._update_cursor_area()
        event.accept()

    def leaveEvent(self, event) -> None:
        self._move_cursor(None)
        super().leaveEvent(event)

    # --------------------------------------------------------- keyboard
    def _own_key(self, key, mods) -> bool:
        """Keys the canvas takes ahead of the window's shortcuts: the lasso's, and a slide's presets."""
        mods = mods & ~Qt.KeyboardModifier.KeypadModifier
        if mods != Qt.KeyboardModifier.NoModifier:
            return False
        if self._lasso and key in (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Escape, Qt.Key.Key_Backspace):
            return True
        return self.is_slide() and (key in MAGNIFICATION_KEYS or key == Qt.Key.Key_H)

    def event(self, event) -> bool:
        if event.type() == QEvent.Type.ShortcutOverride and self._own_key(event.key(), event.modifiers()):
            event.accept()
            return True
        return super().event(event)

    def keyPressEvent(self, event) -> None:
        key = event.key()
        plain = not (event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier)
        step = max(40, min(self.width(), self.height()) // 8)
        if key == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = True
            self._update_cursor()
        elif key in (Qt.Key.Key_Left, Qt.Key.Key_Right, Qt.Key.Key_Up, Qt.Key.Key_Down):
            dx = {Qt.Key.Key_Left: step, Qt.Key.Key_Right: -step}.get(key, 0)
            dy = {Qt.Key.Key_Up: step, Qt.Key.Key_Down: -step}.get(key, 0)
            self.pan_by(dx, dy)
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
        elif plain and self.is_slide() and key in MAGNIFICATION_KEYS:
            self.set_magnification(MAGNIFICATION_KEYS[key])
        elif plain and self.is_slide() and key == Qt.Key.Key_H:
            self.set_tool("pan")
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
        """The lasso's vertices so far, as level-0 ``(row, col)``."""
        return [point_to_rc(p) for p in self._lasso]

    def close_lasso(self) -> tuple | None:
        """Fill the lasso polygon (one undo step); returns the changed rectangle."""
        d = self.mask_downsample()
        pts = [(r / d - 0.5, c / d - 0.5) for r, c in (point_to_rc(p) for p in self._lasso)]
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
    def _lasso_color(self) -> QColor:
        if not self._lasso_value:
            return QColor(255, 255, 255)
        if self._lasso_value == _ROI:
            return QColor(*self.mask_color())
        return QColor(*self._mask.colour_of(self._lasso_value))

    def _paint_foreground(self, painter: QPainter, exposed: QRect) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        if self._lasso:
            poly = self._lasso_widget_polygon()
            fill = QPainterPath()
            fill.addPolygon(poly)
            fill.closeSubpath()
            color = self._lasso_color()
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
        if self._tool in ("brush", "eraser") and self._cursor_pos is not None and self._pan_last is None and not self._space:
            r = max(1.0, self._screen_brush() / 2)
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
