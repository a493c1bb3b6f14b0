"""The application icon: ``resources/gusa-studio.png`` if present, else drawn here."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QIcon, QImage, QPainter, QPainterPath, QPen, QRadialGradient

__all__ = ["app_icon", "draw_icon", "RESOURCES"]

RESOURCES = Path(__file__).resolve().parents[2] / "resources"


def draw_icon(size: int = 256) -> QImage:
    """Draw the icon: an H&E-pink tissue disc, purple nuclei, an amber RoI outline."""
    img = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    img.fill(Qt.GlobalColor.transparent)
    p = QPainter(img)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    s = size / 256
    bg = QPainterPath()
    bg.addRoundedRect(QRectF(8 * s, 8 * s, 240 * s, 240 * s), 48 * s, 48 * s)
    p.fillPath(bg, QColor(34, 38, 52))
    grad = QRadialGradient(QPointF(128 * s, 120 * s), 100 * s)
    grad.setColorAt(0.0, QColor(246, 200, 222))
    grad.setColorAt(1.0, QColor(214, 128, 176))
    p.setBrush(QBrush(grad))
    p.setPen(Qt.PenStyle.NoPen)
    p.drawEllipse(QPointF(128 * s, 128 * s), 92 * s, 92 * s)
    p.setBrush(QColor(92, 52, 150))
    for x, y, r in ((92, 96, 13), (140, 80, 10), (170, 120, 12), (110, 150, 11), (150, 165, 14), (78, 135, 8), (128, 118, 9)):
        p.drawEllipse(QPointF(x * s, y * s), r * s, r * s)
    roi = QPainterPath()
    roi.moveTo(120 * s, 130 * s)
    roi.cubicTo(150 * s, 105 * s, 198 * s, 120 * s, 190 * s, 160 * s)
    roi.cubicTo(182 * s, 200 * s, 130 * s, 200 * s, 118 * s, 172 * s)
    roi.cubicTo(110 * s, 155 * s, 110 * s, 140 * s, 120 * s, 130 * s)
    p.setBrush(QColor(255, 214, 0, 90))
    p.setPen(QPen(QColor(255, 214, 0), 9 * s))
    p.drawPath(roi)
    p.end()
    return img


def app_icon() -> QIcon:
    """The application's icon."""
    path = RESOURCES / "gusa-studio.png"
    icon = QIcon(str(path)) if path.is_file() else QIcon()
    if icon.isNull():
        from PySide6.QtGui import QPixmap

        icon = QIcon(QPixmap.fromImage(draw_icon(256)))
    return icon
