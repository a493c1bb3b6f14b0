"""The one place where image (row, col) becomes Qt (x, y) and back.

``gusa_core`` indexes arrays as ``(row, col)``; Qt speaks ``(x, y)``. Every
conversion in ``app/`` goes through these helpers so the two never get
swapped silently. Image rectangles from the core are ``(r0, c0, r1, c1)``
with ``r1``/``c1`` exclusive.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QPointF, QRect, QRectF

__all__ = [
    "rc_to_xy",
    "xy_to_rc",
    "point_to_rc",
    "rc_to_point",
    "rect_rc_to_qrect",
    "qrect_to_rect_rc",
    "pixel_of_point",
]


def rc_to_xy(row: float, col: float) -> tuple[float, float]:
    """Image ``(row, col)`` to Qt ``(x, y)`` in image pixels."""
    return col, row


def xy_to_rc(x: float, y: float) -> tuple[float, float]:
    """Qt ``(x, y)`` in image pixels to image ``(row, col)``."""
    return y, x


def point_to_rc(point: QPointF) -> tuple[float, float]:
    """A point in image coordinates (``QPointF``) to ``(row, col)`` floats."""
    return xy_to_rc(point.x(), point.y())


def rc_to_point(row: float, col: float) -> QPointF:
    """``(row, col)`` to a ``QPointF`` in image coordinates."""
    x, y = rc_to_xy(row, col)
    return QPointF(x, y)


def pixel_of_point(point: QPointF) -> tuple[int, int]:
    """The ``(row, col)`` of the pixel that contains an image-space point."""
    row, col = point_to_rc(point)
    return math.floor(row), math.floor(col)


def rect_rc_to_qrect(rect: tuple[int, int, int, int]) -> QRect:
    """``(r0, c0, r1, c1)`` (end exclusive) to a ``QRect`` in image pixels."""
    r0, c0, r1, c1 = (int(v) for v in rect)
    x0, y0 = rc_to_xy(r0, c0)
    return QRect(int(x0), int(y0), max(0, c1 - c0), max(0, r1 - r0))


def qrect_to_rect_rc(rect: QRect | QRectF) -> tuple[int, int, int, int]:
    """A ``QRect`` in image pixels to ``(r0, c0, r1, c1)`` (end exclusive)."""
    if isinstance(rect, QRectF):
        left, top = math.floor(rect.left()), math.floor(rect.top())
        right, bottom = math.ceil(rect.right()), math.ceil(rect.bottom())
        return top, left, bottom, right
    return rect.top(), rect.left(), rect.top() + rect.height(), rect.left() + rect.width()
