"""app.base.coords: the one (row, col) <-> (x, y) conversion."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRect, QRectF

from app.base.coords import pixel_of_point, point_to_rc, qrect_to_rect_rc, rc_to_point, rc_to_xy, rect_rc_to_qrect, xy_to_rc


def test_row_col_is_y_x():
    assert rc_to_xy(10, 20) == (20, 10)
    assert xy_to_rc(20, 10) == (10, 20)
    p = rc_to_point(3.5, 7.25)
    assert (p.x(), p.y()) == (7.25, 3.5)
    assert point_to_rc(p) == (3.5, 7.25)
    assert pixel_of_point(QPointF(7.9, 3.1)) == (3, 7)
    assert pixel_of_point(QPointF(-0.5, 2.0)) == (2, -1)


def test_rectangles_round_trip():
    rect = (5, 10, 25, 40)  # rows 5:25, cols 10:40
    q = rect_rc_to_qrect(rect)
    assert (q.x(), q.y(), q.width(), q.height()) == (10, 5, 30, 20)
    assert qrect_to_rect_rc(q) == rect
    assert qrect_to_rect_rc(QRectF(10.2, 5.7, 29.5, 19.0)) == (5, 10, 25, 40)
    assert rect_rc_to_qrect((3, 3, 3, 9)).isEmpty()
    assert isinstance(q, QRect)
