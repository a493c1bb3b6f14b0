"""Interaction half of the slide viewer: brush, eraser and lasso on class regions, pan, zoom, presets.

The brush is sized in screen pixels, so it feels the same at every zoom; its size on the slide
(in µm) follows the zoom and is shown in the toolbar. Strokes paint the current class value
into the label mask through a :class:`~gusa_core.annotation.MaskEditor` (one undo step per
stroke); the label mask is ``downsample`` times coarser than level 0, so a point ``(x, y)`` of
level 0 is label pixel ``(y / d - 0.5, x / d - 0.5)`` (the core rounds to the pixel).

Keys (when the viewer has the focus): ``1`` ``2`` ``3`` ``4`` ``5`` magnification 1x, 5x, 10x,
20x, 40x; Alt + lasso erases; ``B``/``E``/``L`` brush, eraser, lasso; ``[``/``]`` brush size; ``Ctrl+Z`` /
``Ctrl+Shift+Z`` undo/redo; ``F`` or ``Ctrl+0`` whole slide; arrow keys pan; space + drag,
middle or right drag pan; the wheel zooms about the cursor.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QPointF, QRect, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPen, QPolygonF
from PySide6.QtWidgets import QWidget

from app.workspace.overview import OverviewWidget
from app.workspace.scale_bar import paint_scale_bar
from app.workspace.slide_canvas import SlideView
from gusa_core.slides.tiles import magnification_zoom, native_magnification

__all__ = ["SlideAnnotationView", "MAGNIFICATIONS", "MAGNIFICATION_KEYS", "TOOLS"]

MAGNIFICATIONS = (1, 5, 10, 20, 40)
MAGNIFICATION_KEYS = {Qt.Key.Key_1: 1, Qt.Key.Key_2: 5, Qt.Key.Key_3: 10, Qt.Key.Key_4: 20, Qt.Key.Key_5: 40}
TOOLS = ("brush", "eraser", "lasso", "pan")
_TOOL_KEYS = {Qt.Key.Key_B: "brush", Qt.Key.Key_E: "eraser", Qt.Key.Key_L: "lasso", Qt.Key.Key_H: "pan"}
_PAN_STEP = 0.25  # share of the view per arrow key
_PLAIN_KEYS = {Qt.Key.Key_F, Qt.Key.Key_BracketLeft, Qt.Key.Key_BracketRight, Qt.Key.Key_Space, Qt.Key.Key_Escape,
               Qt.Key.Key_Left, Qt.Key.Key_Right, Qt.Key.Key_Up, Qt.Key.Key_Down, *MAGNIFICATION_KEYS, *_TOOL_KEYS}


def _own_key(key, mods) -> bool:
    """Keys the viewer handles itself, ahead of the window's shortcuts for the image canvas."""
    mods = mods & ~Qt.KeyboardModifier.KeypadModifier
    if mods == Qt.KeyboardModifier.NoModifier:
        return key in _PLAIN_KEYS
    ctrl = Qt.KeyboardModifier.ControlModifier
    return (mods in (ctrl, ctrl | Qt.KeyboardModifier.ShiftModifier) and key == Qt.Key.Key_Z) or (mods == ctrl and key == Qt.Key.Key_0)


class SlideAnnotationView(SlideView):
    """A :class:`SlideView` the user paints class regions on.

    Signals
    -------
    stroke_finished(object)
        A brush stroke, eraser stroke or lasso fill changed the label mask (its rectangle).
    tool_changed(str)
    brush_changed(int)
        Brush diameter in screen pixels.
    history_changed()
        After an undo or redo.
    """

    stroke_finished = Signal(object)
    tool_changed = Signal(str)
    brush_changed = Signal(int)
    history_changed = Signal()

    def __init__(self, parent: QWidget | None = None, **kwargs):
        super().__init__(parent, **kwargs)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self._editor = None
        self._tool = "brush"
        self._value = 1
        self._brush = 40
        self._cursor: QPointF | None = None
        self._painting = False
        self._pan_last: QPointF | None = None
        self._space = False
        self._lasso: list[QPointF] = []  # level-0 points
        self._lasso_value = 1
        self.overview = OverviewWidget(self, self)
        self.view_changed.connect(self._place_overview)

    # ------------------------------------------------------------------ state
    def set_slide(self, slide, thumbnail=None) -> None:
        super().set_slide(slide, thumbnail)
        self.overview.sync()
        self._place_overview()

    def set_editor(self, editor, downsample: float = 1.0, colors=()) -> None:
        """Paint into ``editor.mask`` (a label mask at ``downsample``); None stops editing."""
        if self._editor is not None:
            self._editor.events.changed.disconnect(self._on_editor_changed)
        self._editor = editor
        if editor is not None:
            editor.events.changed.connect(self._on_editor_changed)
            self.set_regions(editor.mask, downsample, colors)
        else:
            self.set_regions(None)

    def editor(self):
        return self._editor

    def _on_editor_changed(self, rect) -> None:
        self.update_regions(rect)

    def tool(self) -> str:
        return self._tool

    def set_tool(self, tool: str) -> None:
        if tool not in TOOLS:
            raise ValueError(f"unknown tool {tool!r}")
        if tool != self._tool:
            self._tool = tool
            self._lasso = []
            self.setCursor(Qt.CursorShape.OpenHandCursor if tool == "pan" else Qt.CursorShape.CrossCursor)
            self.tool_changed.emit(tool)
            self.update()

    def class_value(self) -> int:
        """Label value painted by the brush and lasso (class index + 1)."""
        return self._value

    def set_class_value(self, value: int) -> None:
        self._value = int(value)

    def brush_size(self) -> int:
        """Brush diameter in screen pixels."""
        return self._brush

    def set_brush_size(self, px: int) -> None:
        px = max(4, min(400, int(px)))
        if px != self._brush:
            self._brush = px
            self.brush_changed.emit(px)
            self.update()

    def brush_um(self) -> float | None:
        """Brush diameter on the slide in µm at the current zoom (None if uncalibrated)."""
        slide = self.slide()
        if slide is None or not slide.mpp:
            return None
        return self._brush / self.zoom() * max(slide.mpp)

    def um_per_screen_px(self) -> float | None:
        slide = self.slide()
        return None if slide is None or not slide.mpp else max(slide.mpp) / self.zoom()

    def magnification(self) -> float | None:
        """The magnification shown (e.g. 10.0), None for an uncalibrated slide."""
        slide = self.slide()
        native = None if slide is None else native_magnification(slide.objective_power, slide.mpp)
        return None if native is None else native * self.zoom()

    def set_magnification(self, mag: float) -> bool:
        """Zoom to ``mag`` (1x ... 40x) about the centre; False when the slide records no scale."""
        slide = self.slide()
        if slide is None:
            return False
        z = magnification_zoom(mag, slide.objective_power, slide.mpp)
        if z is None:
            return False
        self.set_zoom(z)
        return True

    # --------------------------------------------------------------- geometry
    def _label_point(self, widget_pos: QPointF) -> tuple[float, float]:
        p = self.widget_to_level0(widget_pos)
        d = self._label_ds
        return p.y() / d - 0.5, p.x() / d - 0.5

    def _place_overview(self) -> None:
        self.overview.move(self.width() - self.overview.width() - 10, 10)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._place_overview()

    # ------------------------------------------------------------------ mouse
    def _pan_button(self, event) -> bool:
        b = event.button()
        return b in (Qt.MouseButton.MiddleButton, Qt.MouseButton.RightButton) or (
            b == Qt.MouseButton.LeftButton and (self._space or self._tool == "pan")
        )

    def mousePressEvent(self, event) -> None:
        pos = event.position()
        if self.slide() is None:
            return
        if self._pan_button(event):
            self._pan_last = pos
            event.accept()
            return
        if event.button() != Qt.MouseButton.LeftButton or self._editor is None:
            return
        if self._tool in ("brush", "eraser"):
            self._painting = True
            self._editor.begin_stroke(0 if self._tool == "eraser" else self._value)
            self._stroke_to(pos)
        elif self._tool == "lasso":
            self._lasso_value = 0 if event.modifiers() & Qt.KeyboardModifier.AltModifier else self._value  # Alt erases
            self._lasso = [self.widget_to_level0(pos)]
        event.accept()

    def mouseMoveEvent(self, event) -> None:
        pos = event.position()
        old = self._cursor
        self._cursor = pos
        if self._pan_last is not None:
            d = pos - self._pan_last
            self._pan_last = pos
            self.pan_by(d.x(), d.y())
            return
        if self._painting:
            self._stroke_to(pos)
        elif self._lasso:
            self._lasso.append(self.widget_to_level0(pos))
            self.update()
            return
        r = self._brush / 2 + 3
        for p in (old, pos):
            if p is not None:
                self.update(QRectF(p.x() - r, p.y() - r, 2 * r, 2 * r).toAlignedRect())

    def mouseReleaseEvent(self, event) -> None:
        if self._pan_last is not None and self._pan_button(event):
            self._pan_last = None
            return
        if event.button() != Qt.MouseButton.LeftButton:
            return
        if self._painting:
            self._painting = False
            rect = self._editor.end_stroke()
            if rect is not None:
                self.stroke_finished.emit(rect)
        elif self._lasso:
            self.close_lasso()

    def _stroke_to(self, pos: QPointF) -> None:
        row, col = self._label_point(pos)
        radius = (self._brush / 2) / (self.zoom() * self._label_ds)
        self._editor.stroke_to(row, col, max(0.0, radius - 0.5))

    def close_lasso(self):
        """Fill the lasso polygon with the current class (erase it when Alt was held) as one undo step."""
        pts, self._lasso = self._lasso, []
        self.update()
        if len(pts) < 3 or self._editor is None:
            return None
        d = self._label_ds
        rect = self._editor.fill_polygon([(p.y() / d - 0.5, p.x() / d - 0.5) for p in pts], self._lasso_value)
        if rect is not None:
            self.stroke_finished.emit(rect)
        return rect

    def wheelEvent(self, event) -> None:
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.zoom_by(1.25**steps, event.position())
        event.accept()

    def leaveEvent(self, event) -> None:
        self._cursor = None
        self.update()
        super().leaveEvent(event)

    # ------------------------------------------------------------------- keys
    def event(self, event) -> bool:
        # take the viewer's keys before window shortcuts (the image list's 1-9 label keys) see them
        if event.type() == QEvent.Type.ShortcutOverride and _own_key(event.key(), event.modifiers()):
            event.accept()
            return True
        return super().event(event)

    def undo(self) -> None:
        if self._editor is not None and self._editor.undo() is not None:
            self.history_changed.emit()

    def redo(self) -> None:
        if self._editor is not None and self._editor.redo() is not None:
            self.history_changed.emit()

    def keyPressEvent(self, event) -> None:
        key, mods = event.key(), event.modifiers()
        ctrl = bool(mods & Qt.KeyboardModifier.ControlModifier)
        if ctrl and key == Qt.Key.Key_Z:
            self.redo() if mods & Qt.KeyboardModifier.ShiftModifier else self.undo()
        elif ctrl and key == Qt.Key.Key_0 or key == Qt.Key.Key_F:
            self.fit()
        elif key in MAGNIFICATION_KEYS and not ctrl:
            self.set_magnification(MAGNIFICATION_KEYS[key])
        elif key in _TOOL_KEYS and not ctrl:
            self.set_tool(_TOOL_KEYS[key])
        elif key == Qt.Key.Key_BracketLeft:
            self.set_brush_size(round(self._brush / 1.25))
        elif key == Qt.Key.Key_BracketRight:
            self.set_brush_size(round(self._brush * 1.25))
        elif key == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = True
        elif key in (Qt.Key.Key_Left, Qt.Key.Key_Right, Qt.Key.Key_Up, Qt.Key.Key_Down):
            dx = {Qt.Key.Key_Left: 1, Qt.Key.Key_Right: -1}.get(key, 0) * self.width() * _PAN_STEP
            dy = {Qt.Key.Key_Up: 1, Qt.Key.Key_Down: -1}.get(key, 0) * self.height() * _PAN_STEP
            self.pan_by(dx, dy)
        elif key == Qt.Key.Key_Escape:
            self._lasso = []
            self.update()
        else:
            super().keyPressEvent(event)
            return
        event.accept()

    def keyReleaseEvent(self, event) -> None:
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = False
        super().keyReleaseEvent(event)

    # -------------------------------------------------------------- painting
    def _paint_foreground(self, painter: QPainter, exposed: QRect) -> None:
        if self.slide() is None:
            painter.setPen(QColor(170, 174, 180))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "No slide open")
            return
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        if self._lasso:
            pen = QPen(QColor(255, 255, 255), 1.5, Qt.PenStyle.DashLine)
            painter.setPen(pen)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawPolyline(QPolygonF([self.level0_to_widget(p) for p in self._lasso]))
        if self._cursor is not None and self._tool in ("brush", "eraser"):
            r = self._brush / 2
            painter.setPen(QPen(QColor(0, 0, 0, 160), 3))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawEllipse(self._cursor, r, r)
            painter.setPen(QPen(QColor(255, 255, 255), 1.5))
            painter.drawEllipse(self._cursor, r, r)
        paint_scale_bar(painter, QPointF(12, self.height() - 12), self.um_per_screen_px())
