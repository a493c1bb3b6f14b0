"""Image → Classes…: rename, add, recolour and remove classes; the window follows; the manifest keeps it."""

from __future__ import annotations

from PySide6.QtCore import Qt

from gusa_core.project import Project

from app.workspace.classes_dialog import ClassesDialog


def _select(dlg, name):
    for i in range(dlg.list.count()):
        if dlg.list.item(i).data(Qt.ItemDataRole.UserRole) == name:
            dlg.list.setCurrentRow(i)
            return
    raise AssertionError(name)


def test_rename_add_recolour_remove(qtbot, window, demo_project, error_messages):
    win = window
    assert win.open_project(demo_project.folder)
    qtbot.waitUntil(lambda: win.current_image_id() is not None, timeout=5000)
    insitu = [r.id for r in win.project.images if r.label == "InSitu"]
    dlg = ClassesDialog(win.project, win)
    qtbot.addWidget(dlg)

    _select(dlg, "InSitu")
    assert dlg.rename_selected("DCIS")
    assert [a.text() for a in win.label_actions][2] == "Label DCIS"
    assert win.image_list.class_combo.findData("DCIS") >= 0 and win.image_list.class_combo.findData("InSitu") < 0
    on_disk = Project.open(demo_project.folder)
    assert "DCIS" in on_disk.classes and all(on_disk.image(i).label == "DCIS" for i in insitu)

    assert dlg.add_class("Lymph node")
    _select(dlg, "Lymph node")
    assert dlg.recolor_selected((10, 20, 30))
    assert Project.open(demo_project.folder).class_colors["Lymph node"] == (10, 20, 30)
    assert len(win.label_actions) == 5

    _select(dlg, "DCIS")
    assert dlg.remove_selected(confirm=False)
    on_disk = Project.open(demo_project.folder)
    assert "DCIS" not in on_disk.classes and all(on_disk.image(i).label is None for i in insitu)
    assert len(win.label_actions) == 4

    assert not dlg.add_class("Normal")  # a duplicate is refused with a message, nothing changes
    assert error_messages and "Normal" in error_messages[-1][1]
    assert Project.open(demo_project.folder).classes.count("Normal") == 1
