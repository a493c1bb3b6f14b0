"""Class labels go through the image's undo history, and class keys act only on the canvas or the image list."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QSpinBox

from gusa_core.project import Project


def _open(qtbot, win, project):
    win.set_project(project)
    qtbot.waitUntil(lambda: win.current_image_id() is not None)


def _wait_saved(qtbot, win):
    qtbot.waitUntil(lambda: not win.isWindowModified(), timeout=10000)


def _focus(qtbot, widget):
    widget.window().activateWindow()
    widget.setFocus(Qt.FocusReason.OtherFocusReason)
    qtbot.waitUntil(lambda: QApplication.focusWidget() is widget)


def test_ctrl_z_takes_back_a_label_on_disk_too(qtbot, window, demo_project):
    win = window
    _open(qtbot, win, demo_project)
    target = next(r.id for r in demo_project.images if r.label is None)
    win.show_image(target)
    _focus(qtbot, win.canvas)
    QTest.keyClick(win.canvas, Qt.Key.Key_2)
    second = demo_project.classes[1]
    assert win.project.image(target).label == second
    assert win.undo_action.isEnabled()
    _wait_saved(qtbot, win)
    assert Project.open(demo_project.folder).image(target).label == second

    QTest.keyClick(win.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert win.project.image(target).label is None
    assert not win.side_panel.class_button(second).isChecked()
    _wait_saved(qtbot, win)
    assert Project.open(demo_project.folder).image(target).label is None

    QTest.keyClick(win.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert win.project.image(target).label == second
    # the history is per image: another image's Ctrl+Z does not touch this label
    other = next(r.id for r in demo_project.images if r.id != target)
    win.show_image(other)
    win.undo()
    assert win.project.image(target).label == second
    # back on the first image its history is still there
    win.show_image(target)
    win.undo()
    assert win.project.image(target).label is None


def test_side_panel_label_and_image_list_key_are_undoable(qtbot, window, demo_project):
    win = window
    _open(qtbot, win, demo_project)
    target = win.current_image_id()
    before = win.project.image(target).label
    first = demo_project.classes[0] if before != demo_project.classes[0] else demo_project.classes[1]
    win.side_panel.class_button(first).click()
    assert win.project.image(target).label == first
    win.undo()
    assert win.project.image(target).label == before
    _focus(qtbot, win.image_list.view if hasattr(win.image_list, "view") else win.image_list)
    QTest.keyClick(QApplication.focusWidget(), Qt.Key.Key_0)
    assert win.project.image(target).label is None


def test_a_digit_typed_in_a_dock_form_does_not_relabel(qtbot, window, demo_project):
    win = window
    win.install_features()
    _open(qtbot, win, demo_project)
    target = win.current_image_id()
    before = win.project.image(target).label
    win.show_dock("Training")
    spin = win.features["app.training.training_panel"].epochs_spin
    assert isinstance(spin, QSpinBox)
    for widget in (spin, win.features["app.training.training_panel"].start_button):
        _focus(qtbot, widget)
        for key in (Qt.Key.Key_1, Qt.Key.Key_2, Qt.Key.Key_0):
            QTest.keyClick(widget, key)
        assert win.project.image(target).label == before
    # floating, the dock is a window of its own: still no relabelling
    dock = win._docks["Training"]
    dock.setFloating(True)
    _focus(qtbot, spin)
    QTest.keyClick(spin, Qt.Key.Key_3)
    assert win.project.image(target).label == before


def test_counters_follow_labels_and_filters(qtbot, window, demo_project):
    from app.workspace.image_list import UNLABELLED

    win = window
    _open(qtbot, win, demo_project)
    target = next(r.id for r in demo_project.images if r.label is None)
    win.show_image(target)
    n = len(demo_project.images)
    labelled = len(demo_project.labelled())
    assert f"{labelled} labelled" in win.image_list.count_label.text()
    win.set_label(demo_project.classes[0])
    assert f"{labelled + 1} labelled" in win.image_list.count_label.text()  # not stale after labelling
    win.undo()
    assert f"{labelled} labelled" in win.image_list.count_label.text()
    # the side panel's "i of N" follows the list's filter
    assert f"of {n}" in win.side_panel.image_facts.text()
    win.image_list.proxy.set_class_filter(UNLABELLED)
    unlabelled = n - labelled
    assert f"1 of {unlabelled}" in win.side_panel.image_facts.text()


def test_review_predictions_are_redone_after_the_run_trains(tmp_path):
    import os

    from app.review.prediction_cache import PredictorCache, prediction_key, run_version
    from gusa_core.runs import run_json_path

    run = tmp_path / "run"
    run.mkdir()
    run_json_path(run).write_text("{}")
    image = tmp_path / "a.png"
    image.write_bytes(b"x")
    before = prediction_key("a", image, run, None)
    st = os.stat(run_json_path(run))
    os.utime(run_json_path(run), ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # the run trained one more epoch
    after = prediction_key("a", image, run, None)
    assert before != after and after.run_mtime_ns == run_version(run)
    made = []
    cache = PredictorCache(factory=lambda run_dir, fold, device: made.append(run_dir) or object())
    first = cache.get(run, None, "cpu")
    assert cache.get(run, None, "cpu") is first and len(made) == 1
    os.utime(run_json_path(run), ns=(st.st_atime_ns, st.st_mtime_ns + 2 * 10**9))
    assert cache.get(run, None, "cpu") is not first and len(made) == 2
