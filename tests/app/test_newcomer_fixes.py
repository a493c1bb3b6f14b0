"""Small things a newcomer met: the title, tooltips, the new-project folder, the demo's first start, Reset layout."""

from __future__ import annotations

from PySide6.QtWidgets import QAbstractButton, QApplication, QDockWidget, QLineEdit, QTabBar

from gusa_core.project import Project


def test_title_does_not_repeat_the_app_name(qtbot, window, demo_project):
    from app.shell.main_window import APP_NAME

    old = QApplication.applicationDisplayName()
    QApplication.setApplicationDisplayName(APP_NAME)  # what main() sets: the platform appends it to the title
    try:
        window.set_project(demo_project)
        assert window.windowTitle() == "demo[*]"
        QApplication.setApplicationDisplayName("Something else")
        window._update_title()
        assert window.windowTitle() == f"{APP_NAME} — demo[*]"  # the platform appends another name: the title says it
    finally:
        QApplication.setApplicationDisplayName(old)


def test_every_button_of_the_app_has_a_tooltip(qtbot, window, demo_project):
    window.install_features()
    window.set_project(demo_project)
    for title in ("Training", "Runs", "Review"):
        window.show_dock(title)
    missing = []
    for b in window.findChildren(QAbstractButton):
        if b.objectName().startswith("qt_") or isinstance(b.parent(), (QLineEdit, QTabBar, QDockWidget)):
            continue  # Qt's own (dock title, tab scrolling, line-edit clear button)
        if not b.toolTip():
            missing.append((type(b).__name__, b.text(), type(b.parent()).__name__))
    assert missing == []


def test_new_project_accepts_a_folder_that_does_not_exist_yet(qtbot, window, demo_project, tmp_path):
    target = tmp_path / "brand-new" / "project"
    answers = iter([str(demo_project.folder / "images"), str(target)])
    window.dialogs.directory = lambda parent, title, start="": next(answers)
    asked = []

    def new_directory(parent, title, start=""):
        asked.append(title)
        return next(answers)

    window.dialogs.new_directory = new_directory
    window.new_project_dialog()
    assert asked and "new name" in asked[0]
    assert window.project is not None and window.project.folder == target
    assert len(Project.open(target).images) == len(demo_project.images)


def test_demo_first_start_says_what_it_is_doing(qtbot, window, monkeypatch, tmp_path):
    import gusa_core.demo as demo
    from PySide6.QtWidgets import QProgressBar

    from app import main as app_main

    real = demo.write_demo_project
    monkeypatch.setattr(demo, "write_demo_project", lambda folder, **kw: real(folder, per_class=1, unlabelled=0, size=(64, 48)))
    monkeypatch.setattr(type(window), "demo_folder", staticmethod(lambda: tmp_path / "appdata" / "demo-project"))
    assert not app_main._open_demo(window)
    assert "Preparing the demo project" in window.canvas._placeholder
    assert any(bar.maximum() == 0 for bar in window.statusBar().findChildren(QProgressBar))  # busy while writing
    qtbot.waitUntil(lambda: window.project is not None, timeout=30000)
    assert not [bar for bar in window.statusBar().findChildren(QProgressBar) if bar.isVisible()]


def test_reset_layout_brings_floating_and_closed_docks_back(qtbot, window):
    window.install_features()
    window.show_dock("Review")
    review = window._docks["Review"]
    review.setFloating(True)
    window.image_list_dock.close()
    window.reset_layout_action.trigger()
    assert not review.isFloating() and not review.isVisible()
    assert window.image_list_dock.isVisible() and window.side_panel_dock.isVisible()
    assert window.reset_layout_action in window.view_menu.actions()
