"""Assisted annotation in the app: scan, the dashed suggestion, accept / edit / reject, the annotate-next queue."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from app_helpers import drag, focus, image_pixel

TIMEOUT = 180_000  # ms: loading two fold models and scanning on a busy 2-core machine


@pytest.fixture
def assisted(qtbot, window, demo_project):
    """The window with the Assist feature, the demo project open, a two-fold random run active and scanned."""
    from gusa_core.assist import annotation_queue, scan_project
    from gusa_core.runs import runs_dir, write_untrained_run

    run = write_untrained_run(runs_dir(demo_project.folder) / "r", variant="fa-gusa", class_names=list(demo_project.classes),
                              input_size=(64, 48), folds=2, seed=3).folder
    window.install_features(["app.review.assist_panel"])
    panel = window.features["app.review.assist_panel"]
    assert window.open_project(demo_project.folder)
    qtbot.waitUntil(lambda: window.current_image_id() is not None, timeout=5000)
    window.runs.set_active_run(run)
    assert panel.run_dir == str(run) and panel.warning.isVisibleTo(panel)  # 64x48 is too coarse: warned
    with qtbot.waitSignal(panel.scan_finished, timeout=TIMEOUT):
        assert panel.start_scan()
    project = window.project
    expected = annotation_queue(list(scan_project(run, project, temperature=1.0)), project)
    return window, panel, expected


def _square_record(panel, image_id, shape):
    """Replace a scan record's RoI maps by a square of 0.9 (a known suggestion)."""
    h, w = shape
    roi = np.full((2, h // 16, w // 16), 0.1, np.float32)
    roi[:, 2:6, 3:8] = 0.9
    panel.records[image_id] = {**panel.records[image_id], "fold_roi": roi}


def _suggest_on_first_free_image(win, panel) -> str:
    """Show the first image without a mask with a known (square) suggestion; its id."""
    target = next(r.id for r in win.project.images if r.mask is None)
    win.show_image(target)
    _square_record(panel, target, win.canvas.image_shape())
    panel.update_suggestion()
    return target


def _expected(panel, image_id):
    from gusa_core.assist import suggestion

    return suggestion(panel.records[image_id], tau=panel.tau.value())


def test_queue_column_and_next_key_step_through_the_queue(qtbot, assisted):
    win, panel, expected = assisted
    assert [it.id for it in panel.queue] == [it.id for it in expected] and expected
    assert panel.queue_list.count() == len(expected)
    model = win.image_list.model
    for rank, it in enumerate(expected, 1):
        assert model.queue_rank(it.id) == rank
    from app.workspace.image_list import COL_NEXT

    assert not win.image_list.view.isColumnHidden(COL_NEXT)
    win.show_image(expected[0].id)
    seen = []
    for _ in range(min(3, len(expected) - 1)):
        QTest.keyClick(win.canvas, Qt.Key.Key_N, Qt.KeyboardModifier.ShiftModifier)
        seen.append(win.current_image_id())
    assert seen == [it.id for it in expected[1:1 + len(seen)]]


def test_accept_with_enter_is_one_undo_step_and_marks_the_provenance(qtbot, assisted):
    win, panel, _ = assisted
    target = _suggest_on_first_free_image(win, panel)
    assert panel.pending is not None and win.canvas.outline("suggestion")[1] is True  # dashed
    want = _expected(panel, target)
    assert want.any() and not want.all()
    editor = win.canvas.editor()
    steps = editor.undo_steps
    focus(qtbot, win.canvas)
    QTest.keyClick(win.canvas, Qt.Key.Key_Return)
    np.testing.assert_array_equal(editor.mask, want)
    assert editor.undo_steps == steps + 1 and win.canvas.outline("suggestion") is None
    assert win.project.image(target).mask_source == "accepted"
    qtbot.waitUntil(lambda: not win.autosave.has_pending(), timeout=10000)
    np.testing.assert_array_equal(win.project.load_mask(target), want)
    assert win.project.image(target).mask_source == "accepted"
    win.undo()
    assert not editor.mask.any()


def test_an_edit_accepts_the_suggestion_then_corrects_it(qtbot, assisted):
    win, panel, _ = assisted
    free = [r.id for r in win.project.images if r.mask is None]
    target = free[-1]
    win.show_image(target)
    _square_record(panel, target, win.canvas.image_shape())
    panel.update_suggestion()
    want = _expected(panel, target)
    canvas = win.canvas
    win.set_tool("eraser")
    canvas.set_brush_size(3)
    rows, cols = np.nonzero(want)
    r, c = int(rows.mean()), int(cols.mean())
    from app.base.coords import rc_to_point

    centre = canvas.image_to_widget(rc_to_point(r + 0.5, c + 0.5))  # the middle of the suggested square
    drag(canvas, [(centre.x(), centre.y()), (centre.x() + 2, centre.y())])
    mask = canvas.editor().mask
    er, ec = image_pixel(canvas, (centre.x(), centre.y()))
    assert mask[er, ec] == 0  # erased by the stroke
    assert (mask > 0).sum() > 0.8 * (want > 0).sum()  # the rest of the suggestion is the mask
    assert canvas.editor().undo_steps == 2  # accept, then the stroke
    assert win.project.image(target).mask_source == "edited"


def test_reject_with_delete_hides_the_suggestion(qtbot, assisted):
    win, panel, _ = assisted
    target = _suggest_on_first_free_image(win, panel)
    assert panel.pending is not None
    focus(qtbot, win.canvas)
    QTest.keyClick(win.canvas, Qt.Key.Key_Delete)
    assert panel.pending is None and win.canvas.outline("suggestion") is None
    assert not win.canvas.editor().mask.any() and win.project.image(target).mask is None
    win.show_image(next(r.id for r in win.project.images if r.id != target))
    win.show_image(target)
    assert panel.pending is None  # stays rejected

    # recorded in the project for this run's weights: a new session's scan does not suggest it again
    from gusa_core.assist import scan_project, suggester_key
    from gusa_core.project import Project

    key = suggester_key(panel.run_dir)
    assert Project.open(win.project.folder, read_only=True).is_suggestion_rejected(target, key)
    panel.rejected.clear()  # what a restart forgets
    fresh = next(scan_project(panel.run_dir, win.project, ids=[target], temperature=1.0))
    panel.records[target] = {**fresh, "fold_roi": panel.records[target]["fold_roi"]}
    panel.update_suggestion()
    assert fresh["rejected"] and panel.pending is None


def test_enter_and_delete_act_only_from_the_canvas_or_the_panel(qtbot, assisted):
    from PySide6.QtWidgets import QDialog, QLineEdit, QVBoxLayout

    win, panel, _ = assisted
    target = _suggest_on_first_free_image(win, panel)
    win.show_dock("Assist")
    assert panel.pending is not None and panel.accept_action.isEnabled()
    # a text field of another dock, the image list, the panel's own field and list, a dialog keep their keys
    notes = win.side_panel.notes_edit
    focus(qtbot, notes)
    QTest.keyClicks(notes, "a")
    QTest.keyClick(notes, Qt.Key.Key_Return)
    QTest.keyClick(notes, Qt.Key.Key_Delete)
    assert notes.toPlainText() == "a\n"
    for widget in (win.image_list.view, panel.tau, panel.queue_list):
        focus(qtbot, widget)
        QTest.keyClick(widget, Qt.Key.Key_Delete)
    for widget in (win.image_list.view, panel.tau):
        focus(qtbot, widget)
        QTest.keyClick(widget, Qt.Key.Key_Return)
    dialog = QDialog(win)
    edit = QLineEdit("text", dialog)
    QVBoxLayout(dialog).addWidget(edit)
    dialog.show()
    qtbot.waitExposed(dialog)
    focus(qtbot, edit)
    edit.setCursorPosition(0)
    QTest.keyClick(edit, Qt.Key.Key_Delete)
    QTest.keyClick(edit, Qt.Key.Key_Return)
    assert edit.text() == "ext"
    dialog.close()
    assert panel.pending is not None and win.current_image_id() == target and win.project.image(target).mask is None
    assert win.canvas.outline("suggestion") is not None
    # the panel (its buttons) takes Delete, the canvas Enter
    focus(qtbot, panel.scan_button)
    QTest.keyClick(panel.scan_button, Qt.Key.Key_Delete)
    assert panel.pending is None and win.canvas.outline("suggestion") is None
    panel.rejected.discard(target)
    panel.records[target]["rejected"] = False  # the project records it too: forget it here to try Enter
    panel.update_suggestion()
    focus(qtbot, win.canvas)
    QTest.keyClick(win.canvas, Qt.Key.Key_Return)
    assert panel.pending is None and win.project.image(target).mask_source == "accepted"
