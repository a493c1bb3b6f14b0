"""Two app windows on one project: the second is read-only until it takes over; nothing is written twice."""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("PySide6")
from PySide6.QtCore import QPoint, QSettings, QStandardPaths, Qt  # noqa: E402
from project_helpers import make_project, write_png  # noqa: E402

from gusa_core.project import Project  # noqa: E402
from gusa_core.project.lock import LOCK_NAME, ProjectLock  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_qt_settings(tmp_path_factory):
    """QSettings in a temporary folder, never the user's (as tests/app does)."""
    from app.base.qt_compat import guard_refcount_bug

    guard_refcount_bug()
    base = tmp_path_factory.mktemp("qt-settings")
    QStandardPaths.setTestModeEnabled(True)
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    for scope in (QSettings.Scope.UserScope, QSettings.Scope.SystemScope):
        QSettings.setPath(QSettings.Format.IniFormat, scope, str(base))
    from app.base import errors

    shown = []
    errors.set_error_sink(lambda parent, title, text, details: shown.append((title, text)))
    yield shown
    errors.set_error_sink(None)


def _window(qtbot):
    from app.shell.main_window import MainWindow

    win = MainWindow(features=False)
    qtbot.addWidget(win)
    win.resize(900, 600)
    win.show()
    qtbot.waitExposed(win)
    return win


def _files(folder):
    """The project's own files (cache/ holds derived thumbnails any reader may add; the lock changes hands)."""
    return {
        p: p.read_bytes() for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != LOCK_NAME and "cache" not in p.relative_to(folder).parts
    }  # fmt: skip


def test_second_window_is_read_only_until_it_takes_over(qtbot, tmp_path, outside_snapshot, _isolated_qt_settings):
    folder = tmp_path / "case" / "project"
    project = make_project(folder)
    ids = project.ids()
    extra = write_png(tmp_path / "case" / "extra.png")
    check = outside_snapshot(folder)
    first, second = _window(qtbot), _window(qtbot)
    assert first.open_project(folder) and not first.is_read_only()
    assert second.open_project(folder) and second.is_read_only()
    assert second.read_only_bar.isVisibleTo(second) and not first.read_only_bar.isVisibleTo(first)
    banner = second.read_only_label.text()
    assert f"GuSA Studio (host {os.uname().nodename}, pid {os.getpid()}, since" in banner
    assert "(read-only)" in second.windowTitle()
    qtbot.waitUntil(lambda: second.current_image_id() is not None, timeout=5000)

    before = _files(folder)
    # every write path of the read-only window is refused with a status message
    second.show_image(ids[1])
    mask_before = second.canvas.editor().mask.copy()
    with qtbot.waitSignal(second.canvas.edit_refused, timeout=2000):
        qtbot.mousePress(second.canvas, Qt.MouseButton.LeftButton, pos=second.canvas.rect().center())
    qtbot.mouseRelease(second.canvas, Qt.MouseButton.LeftButton, pos=second.canvas.rect().center())
    assert np.array_equal(second.canvas.editor().mask, mask_before)
    assert "Read-only" in second.statusBar().currentMessage()
    second.set_label("Invasive")
    second.set_image_label(ids[2], "Invasive")
    second._on_side_panel_notes_edited("written from the read-only window")
    second._commit_notes()
    second.fill_holes()
    second.replace_mask(np.full((12, 16), 255, np.uint8))
    second.add_images([extra])
    assert not second.remove_image(ids[0], confirm=False)
    second.use_as_color_reference(ids[0])
    assert not second.save_now()
    assert not second.autosave.has_pending()
    assert [r.label for r in second.project.images] == [r.label for r in project.images]
    assert second.project.image(ids[1]).notes == ""
    assert not second.label_actions[0].isEnabled() and not second.add_images_action.isEnabled()
    assert _files(folder) == before

    # the first window writes as usual
    first.show_image(ids[2])
    first.set_label("InSitu")
    assert first.save_now()
    assert Project.open(folder, read_only=True).image(ids[2]).label == "InSitu"

    # take over: the second window re-reads the project and edits; the first turns read-only
    second.dialogs.confirm = lambda *a: True
    assert second.take_over()
    assert not second.is_read_only() and not second.read_only_bar.isVisibleTo(second)
    assert second.project.image(ids[2]).label == "InSitu"  # what the first window saved
    assert not first.check_lock()
    assert first.is_read_only() and "took this project over" in first.read_only_label.text()
    first.set_label("Normal")
    assert first.project.image(ids[2]).label == "InSitu"
    second.show_image(ids[0])
    second.set_label("Invasive")
    assert second.save_now()
    first.close()
    assert ProjectLock(folder).holder().purpose == "GuSA Studio"  # closing the first window kept the second's lock
    assert Project.open(folder, read_only=True).image(ids[0]).label == "Invasive"
    second.close()
    assert not (folder / LOCK_NAME).exists()
    check()


def test_autosave_of_a_window_whose_lock_was_taken_turns_it_read_only(qtbot, tmp_path, outside_snapshot, _isolated_qt_settings):
    folder = tmp_path / "case" / "project"
    make_project(folder)
    check = outside_snapshot(folder)
    win = _window(qtbot)
    assert win.open_project(folder)
    qtbot.waitUntil(lambda: win.current_image_id() is not None, timeout=5000)
    other = Project.open(folder, lock="gusa demo", take_over=True)
    before = _files(folder)
    win.project.set_label(win.current_image_id(), "Invasive")  # an edit that raced the take-over
    with qtbot.waitSignal(win.autosave.failed, timeout=5000):
        win.autosave.save_manifest(win.project)
    qtbot.waitUntil(lambda: win.is_read_only(), timeout=5000)
    assert "gusa demo" in win.read_only_label.text()
    assert _isolated_qt_settings == []  # a status message, not an error dialog
    assert _files(folder) == before
    win.close()
    assert ProjectLock(folder).holder().purpose == "gusa demo"
    other.close()
    check()


def test_missing_mask_opens_empty_with_a_banner_and_can_be_painted_again(qtbot, tmp_path, outside_snapshot, _isolated_qt_settings):
    folder = tmp_path / "case" / "project"
    project = make_project(folder)
    image_id = project.images[0].id
    (folder / "masks" / f"{image_id}.png").unlink()
    check = outside_snapshot(folder)
    win = _window(qtbot)
    assert win.open_project(folder)
    win.show_image(image_id)
    assert f"mask missing for {image_id}" in win.canvas.banner_text()
    editor = win.canvas.editor()
    assert editor is not None and not editor.mask.any()
    win.replace_mask(np.full((12, 16), 255, np.uint8), how="replace")
    assert win.save_now()
    assert Project.open(folder, read_only=True).load_mask(image_id).all()
    win.close()
    check()
