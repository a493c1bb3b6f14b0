"""MaskEditor: brush strokes against independent drawings, undo/redo, bounded history."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy import ndimage

from gusa_core.annotation import MaskEditor, _line_thickness

H, W = 96, 128


def _capsule_oracle(shape, points, radius):
    """Pixels whose centre lies within ``radius`` of the polyline (pure geometry)."""
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    inside = np.zeros(shape, bool)
    pts = [points[0]] + list(points)
    for (r0, c0), (r1, c1) in zip(pts[:-1], pts[1:]):
        dr, dc = r1 - r0, c1 - c0
        length2 = dr * dr + dc * dc
        t = np.zeros_like(rows) if length2 == 0 else np.clip(((rows - r0) * dr + (cols - c0) * dc) / length2, 0, 1)
        d2 = (rows - (r0 + t * dr)) ** 2 + (cols - (c0 + t * dc)) ** 2
        inside |= d2 <= radius * radius
    return inside


def _full_drawing(shape, points, radius, value=255, base=None):
    """The same stroke drawn by OpenCV on the whole mask at once (no rectangles)."""
    m = np.zeros(shape, np.uint8) if base is None else base.copy()
    prev = points[0]
    for r, c in points:
        if (r, c) != prev:
            cv2.line(m, (prev[1], prev[0]), (c, r), value, thickness=_line_thickness(radius))
        cv2.circle(m, (c, r), radius, value, -1)
        prev = (r, c)
    return m


STROKE = [(10, 10), (12, 30), (40, 60), (40, 61), (80, 120), (95, 127), (60, 5)]


def test_stroke_matches_whole_mask_drawing_and_geometry():
    ed = MaskEditor(np.zeros((H, W), np.uint8))
    ed.begin_stroke(255)
    for r, c in STROKE:
        ed.stroke_to(r, c, 6)
    ed.end_stroke()
    expected = _full_drawing((H, W), STROKE, 6)
    np.testing.assert_array_equal(ed.mask, expected)
    oracle = _capsule_oracle((H, W), STROKE, 6)
    painted = ed.mask > 0
    iou = (painted & oracle).sum() / (painted | oracle).sum()
    assert iou > 0.9
    # Within the radius is painted, beyond it by more than a pixel is not.
    assert painted[oracle].all()
    assert not painted[~_capsule_oracle((H, W), STROKE, 7.5)].any()


def test_line_is_as_wide_as_the_disc():
    for radius in (0, 1, 2, 5, 40):
        m = np.zeros((200, 200), np.uint8)
        cv2.line(m, (10, 100), (190, 100), 255, thickness=_line_thickness(radius))
        assert (m[:, 100] > 0).sum() == 2 * radius + 1


def test_each_move_reports_a_rect_holding_its_changes():
    ed = MaskEditor(np.zeros((H, W), np.uint8))
    rects = []
    ed.events.changed.connect(rects.append)
    ed.begin_stroke(255)
    for r, c in STROKE:
        before = ed.mask.copy()
        r0, c0, r1, c1 = ed.stroke_to(r, c, 5)
        assert 0 <= r0 <= r1 <= H and 0 <= c0 <= c1 <= W
        changed = before != ed.mask
        outside = changed.copy()
        outside[r0:r1, c0:c1] = False
        assert not outside.any()
    ed.end_stroke()
    assert len(rects) == len(STROKE)


def test_erase_stroke_and_off_mask_points():
    base = np.full((H, W), 255, np.uint8)
    ed = MaskEditor(base)
    ed.begin_stroke(0)
    pts = [(-20, -20), (50, 50), (200, 300)]
    for r, c in pts:
        ed.stroke_to(r, c, 3)
    ed.end_stroke()
    np.testing.assert_array_equal(ed.mask, _full_drawing((H, W), pts, 3, value=0, base=base))
    assert base.all(), "the input array is not modified"
    empty = ed.begin_stroke(255) or ed.stroke_to(-50, -50, 3)
    assert empty[2] <= empty[0] or empty[3] <= empty[1]
    assert ed.end_stroke() is None


def test_one_undo_step_per_stroke_and_exact_undo_redo():
    rng = np.random.default_rng(1)
    start = ((rng.random((H, W)) > 0.7) * 255).astype(np.uint8)
    ed = MaskEditor(start)
    states = [ed.mask.copy()]
    for value, pts in [(255, STROKE[:3]), (0, STROKE[2:5]), (255, STROKE[4:])]:
        ed.begin_stroke(value)
        for r, c in pts:
            ed.stroke_to(r, c, 4)
        ed.end_stroke()
        states.append(ed.mask.copy())
    assert ed.undo_steps == 3
    events = []
    ed.events.changed.connect(events.append)
    for k in (2, 1, 0):
        rect = ed.undo()
        np.testing.assert_array_equal(ed.mask, states[k])
        assert rect is not None and events[-1] == rect
    assert not ed.can_undo and ed.undo() is None
    for k in (1, 2, 3):
        ed.redo()
        np.testing.assert_array_equal(ed.mask, states[k])
    assert not ed.can_redo and ed.redo() is None


def test_history_entry_is_the_changed_rectangle_only():
    ed = MaskEditor(np.zeros((1536, 2048), np.uint8))
    ed.begin_stroke(255)
    for k in range(10):
        ed.stroke_to(100 + 5 * k, 200 + 7 * k, 10)
    r0, c0, r1, c1 = ed.end_stroke()
    assert ed.history_bytes == 2 * (r1 - r0) * (c1 - c0)
    assert ed.history_bytes < 2 * 1536 * 2048 / 100
    assert (r0, c0, r1, c1) == (90, 190, 156, 274)


def test_new_edit_clears_redo():
    ed = MaskEditor(np.zeros((H, W), np.uint8))
    ed.paint_disc(20, 20, 5)
    ed.undo()
    assert ed.can_redo
    ed.paint_disc(50, 50, 5)
    assert not ed.can_redo and ed.undo_steps == 1


def test_undo_during_stroke_ends_it_first():
    ed = MaskEditor(np.zeros((H, W), np.uint8))
    ed.begin_stroke(255)
    ed.stroke_to(30, 30, 5)
    assert ed.can_undo
    ed.undo()
    assert not ed.mask.any() and not ed.in_stroke and ed.can_redo


def test_history_is_bounded_in_bytes_and_steps():
    ed = MaskEditor(np.zeros((H, W), np.uint8), max_history_bytes=4000)
    for k in range(20):
        ed.paint_disc(10 + 3 * k, 10 + 5 * k, 8)  # 17x17 disc: 578 bytes per step
    assert ed.history_bytes <= 4000
    assert 1 <= ed.undo_steps < 20
    ed2 = MaskEditor(np.zeros((H, W), np.uint8), max_history_steps=5)
    for k in range(12):
        ed2.paint_disc(10 + 3 * k, 10 + 5 * k, 2)
    assert ed2.undo_steps == 5
    while ed2.undo() is not None:
        pass
    assert ed2.mask.sum() > 0, "the oldest steps were forgotten, so their pixels stay"


def test_paint_disc_matches_cv2_circle():
    ed = MaskEditor(np.zeros((H, W), np.uint8))
    rect = ed.paint_disc(5, 120, 9)
    expected = np.zeros((H, W), np.uint8)
    cv2.circle(expected, (120, 5), 9, 255, -1)
    np.testing.assert_array_equal(ed.mask, expected)
    assert rect == (0, 111, 15, 128)


def test_fill_polygon_and_erase():
    ed = MaskEditor(np.zeros((H, W), np.uint8))
    ed.fill_polygon([(10, 20), (10, 40), (30, 40), (30, 20)], 255)
    expected = np.zeros((H, W), np.uint8)
    expected[10:31, 20:41] = 255
    np.testing.assert_array_equal(ed.mask, expected)
    tri = [(50, 10), (90, 10), (90, 100)]
    ed.fill_polygon(tri, 255)
    ref = np.zeros((H, W), np.uint8)
    cv2.fillPoly(ref, [np.array([(c, r) for r, c in tri], np.int32)], 255)
    assert ((ed.mask > 0) == ((expected > 0) | (ref > 0))).all()
    assert abs(int((ref > 0).sum()) - 0.5 * 40 * 90) / (0.5 * 40 * 90) < 0.1
    ed.fill_polygon([(0, 0), (0, W), (20, W), (20, 0)], 0)
    assert not ed.mask[:21].any() and ed.undo_steps == 3
    assert ed.fill_polygon([(1, 1), (2, 2)]) is None


def test_fill_holes_against_scipy():
    rng = np.random.default_rng(3)
    for _ in range(5):
        m = ((rng.random((H, W)) > 0.45) * 255).astype(np.uint8)
        m = cv2.morphologyEx(m, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        ed = MaskEditor(m)
        ed.fill_holes()
        expected = ndimage.binary_fill_holes(m > 0)  # 4-connected background by default
        np.testing.assert_array_equal(ed.mask > 0, expected)
        ed.undo()
        np.testing.assert_array_equal(ed.mask, m)
    ring = np.zeros((H, W), np.uint8)
    cv2.circle(ring, (60, 40), 20, 255, 3)
    ed = MaskEditor(ring)
    rect = ed.fill_holes()
    assert ed.mask[40, 60] == 255 and rect is not None
    assert ed.fill_holes() is None, "nothing left to fill: no undo step"
    assert ed.undo_steps == 1


def test_clear_is_one_step_and_events_fire():
    ed = MaskEditor(np.full((H, W), 255, np.uint8))
    seen = []
    ed.events.changed.connect(seen.append)
    assert ed.clear() == (0, 0, H, W)
    assert not ed.mask.any() and seen == [(0, 0, H, W)]
    assert ed.clear() is None, "clearing an empty mask changes nothing"
    ed.undo()
    assert ed.mask.all()


def test_stroke_to_needs_begin_and_bad_mask_rejected():
    ed = MaskEditor(np.zeros((H, W), np.uint8))
    with pytest.raises(RuntimeError):
        ed.stroke_to(1, 1, 1)
    with pytest.raises(ValueError):
        MaskEditor(np.zeros((4, 4, 3), np.uint8))


def test_replace_is_one_undo_step():
    import numpy as np

    from gusa_core.annotation import MaskEditor

    ed = MaskEditor(np.zeros((40, 50), np.uint8))
    ed.begin_stroke(255)
    ed.stroke_to(10, 10, 3)
    ed.end_stroke()
    before = ed.mask.copy()
    imported = np.zeros((40, 50), np.uint8)
    imported[20:30, 5:45] = 1
    rect = ed.replace(imported)
    assert rect is not None
    assert set(np.unique(ed.mask)) == {0, 255}
    np.testing.assert_array_equal(ed.mask > 0, imported > 0)
    ed.undo()
    np.testing.assert_array_equal(ed.mask, before)
    ed.redo()
    np.testing.assert_array_equal(ed.mask > 0, imported > 0)


# ------------------------------------------------------------------ the label shares the history
def test_label_changes_are_undo_steps_interleaved_with_strokes():
    from gusa_core.annotation import MaskEditor

    events = []
    ed = MaskEditor(np.zeros((20, 20), np.uint8), label="Benign")
    ed.events.label_changed.connect(events.append)
    assert ed.paint_disc(5, 5, 2) is not None
    assert ed.set_label("Invasive") is True
    assert ed.set_label("Invasive") is False  # no change, no step
    assert ed.undo_steps == 2
    assert ed.undo() is None and ed.label == "Benign"  # the label step comes back first
    assert ed.mask[5, 5] == 255
    assert ed.undo() == (3, 3, 8, 8) and not ed.mask.any()
    assert ed.redo() is not None and ed.mask[5, 5] == 255
    assert ed.redo() is None and ed.label == "Invasive"
    assert events == ["Invasive", "Benign", "Invasive"]
    assert ed.history_bytes > 0 and not ed.can_redo


def test_a_new_label_clears_the_redo_history_and_sync_label_records_nothing():
    from gusa_core.annotation import MaskEditor

    ed = MaskEditor(np.zeros((8, 8), np.uint8))
    ed.set_label("A")
    ed.undo()
    assert ed.can_redo
    ed.set_label(None)  # unlabelled -> None is no change: the redo stays
    assert ed.can_redo
    ed.set_label("B")
    assert not ed.can_redo and ed.label == "B"
    ed.sync_label("C")
    assert ed.label == "C" and ed.undo_steps == 1
    ed.undo()
    assert ed.label is None
