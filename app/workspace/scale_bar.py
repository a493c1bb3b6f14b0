"""The slide viewer's scale bar: a round length in µm (or mm) drawn about 120 screen pixels long."""

from __future__ import annotations

import math

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPen

__all__ = ["nice_length", "format_length", "paint_scale_bar"]

_STEPS = (1.0, 2.0, 5.0)


def nice_length(um_per_px: float, target_px: float = 120.0) -> tuple[float, float]:
    """The largest 1-2-5 length (µm) not longer than ``target_px`` screen pixels, and its pixels.

    Parameters
    ----------
    um_per_px : float
        Microns per screen pixel.
    target_px : float

    Returns
    -------
    (length_um, length_px) : (float, float)
    """
    raw = um_per_px * target_px
    exp = math.floor(math.log10(raw))
    best = _STEPS[0] * 10**exp
    for step in _STEPS:
        if step * 10**exp <= raw * (1 + 1e-9):
            best = step * 10**exp
    return best, best / um_per_px


def format_length(um: float) -> str:
    """``"500 µm"``, ``"2 mm"``, ``"0.5 µm"``."""
    if um >= 1000:
        return f"{um / 1000:g} mm"
    return f"{um:g} µm"


def paint_scale_bar(painter: QPainter, bottom_left: QPointF, um_per_px: float | None) -> QRectF:
    """Draw the bar (or "uncalibrated" when the slide records no pixel size) above ``bottom_left``.

    Returns the rectangle painted, in widget coordinates.
    """
    fm = painter.fontMetrics()
    if not um_per_px:
        text, bar_px = "uncalibrated", 0.0
    else:
        um, bar_px = nice_length(um_per_px)
        text = format_length(um)
    width = max(bar_px, fm.horizontalAdvance(text)) + 16
    box = QRectF(bottom_left.x(), bottom_left.y() - fm.height() - 22, width, fm.height() + 22)
    path = QPainterPath()
    path.addRoundedRect(box, 4, 4)
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    painter.fillPath(path, QColor(0, 0, 0, 150))
    painter.setPen(QColor(255, 255, 255))
    painter.drawText(box.adjusted(8, 4, -8, -14), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop, text)
    if bar_px:
        pen = QPen(QColor(255, 255, 255), 3)
        pen.setCapStyle(Qt.PenCapStyle.FlatCap)
        painter.setPen(pen)
        y = box.bottom() - 8
        painter.drawLine(QPointF(box.left() + 8, y), QPointF(box.left() + 8 + bar_px, y))
    painter.restore()
    return box
