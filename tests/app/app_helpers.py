"""Helpers of the app tests: synthetic mouse input on a widget."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication


def send_mouse(widget, kind: str, pos, *, button=Qt.MouseButton.LeftButton, modifiers=Qt.KeyboardModifier.NoModifier):
    """Deliver a synthetic mouse event (``kind``: press, move, release) at widget ``pos``."""
    types = {"press": QEvent.Type.MouseButtonPress, "move": QEvent.Type.MouseMove, "release": QEvent.Type.MouseButtonRelease}
    pos = QPointF(pos)
    buttons = Qt.MouseButton.NoButton if kind == "release" else button
    ev = QMouseEvent(types[kind], pos, widget.mapToGlobal(pos), button if kind != "move" else Qt.MouseButton.NoButton,
                     buttons, modifiers)
    QApplication.sendEvent(widget, ev)


def drag(widget, points, **kwargs):
    """Press at the first point, move through the others, release at the last."""
    points = [QPointF(*p) if isinstance(p, tuple) else QPointF(p) for p in points]
    send_mouse(widget, "press", points[0], **kwargs)
    for p in points[1:]:
        send_mouse(widget, "move", p, **kwargs)
    send_mouse(widget, "release", points[-1], **kwargs)


def image_pixel(canvas, widget_pos) -> tuple[int, int]:
    """The (row, col) of the image pixel under a widget position."""
    from app.base.coords import pixel_of_point

    return pixel_of_point(canvas.widget_to_image(QPointF(*widget_pos)))


def mask_drawn(canvas, rc) -> bool:
    """Whether the canvas draws its mask over level-0 pixel ``rc`` = (row, col): the rendering with the
    mask shown differs there from the rendering with it hidden."""
    from app.base.coords import rc_to_point

    p = canvas.image_to_widget(rc_to_point(rc[0] + 0.5, rc[1] + 0.5)).toPoint()
    visible = canvas.mask_visible()
    canvas.set_mask_visible(True)
    on = canvas.grab().toImage().pixel(p)
    canvas.set_mask_visible(False)
    off = canvas.grab().toImage().pixel(p)
    canvas.set_mask_visible(visible)
    return on != off


def focus(qtbot, widget):
    """Give ``widget`` the keyboard focus in its active window (shortcut contexts follow the focus)."""
    widget.window().activateWindow()
    widget.setFocus(Qt.FocusReason.OtherFocusReason)
    qtbot.waitUntil(lambda: QApplication.focusWidget() is widget)
