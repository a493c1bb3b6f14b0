"""Fixtures of the app tests: offscreen Qt, settings in a temporary folder, a demo project."""

from __future__ import annotations

import json
import os
import shutil
import tempfile

# before any Qt import: an offscreen desktop screen of 1920x1080 (the plugin's default is 800x800, and the
# window keeps its frame inside the screen); tests/app/layout_probe.py checks laptop sizes in a subprocess
_SCREEN = os.path.join(tempfile.mkdtemp(prefix="gusa-screen-"), "screen.json")
with open(_SCREEN, "w") as _f:
    json.dump({"screens": [{"name": "desktop", "x": 0, "y": 0, "width": 1920, "height": 1080, "logicalDpi": 96}]}, _f)
os.environ["QT_QPA_PLATFORM"] = f"offscreen:configfile={_SCREEN}"

import pytest
from PySide6.QtCore import QSettings, QStandardPaths

from app.base.qt_compat import guard_refcount_bug

guard_refcount_bug()  # PySide6 6.12.0 on Python 3.11 would abort the test run otherwise


@pytest.fixture(scope="session", autouse=True)
def _isolated_settings(tmp_path_factory):
    """QSettings and the app data folder live in a temporary folder, never the user's."""
    base = tmp_path_factory.mktemp("qt-settings")
    os.environ["XDG_CONFIG_HOME"] = str(base / "config")
    os.environ["XDG_DATA_HOME"] = str(base / "data")
    QStandardPaths.setTestModeEnabled(True)
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    for scope in (QSettings.Scope.UserScope, QSettings.Scope.SystemScope):
        QSettings.setPath(QSettings.Format.IniFormat, scope, str(base / "ini"))
    yield base


@pytest.fixture(autouse=True)
def _fresh_settings(_isolated_settings):
    from app.base.settings import settings

    s = settings()
    s.clear()
    s.sync()
    yield


@pytest.fixture
def error_messages():
    """Messages the app would show in a dialog, captured instead of blocking."""
    from app.base import errors

    captured: list[tuple[str, str]] = []
    errors.set_error_sink(lambda parent, title, text, details: captured.append((title, text)))
    yield captured
    errors.set_error_sink(None)


@pytest.fixture(scope="session")
def _demo_template(tmp_path_factory):
    from gusa_core.demo import write_demo_project

    return write_demo_project(tmp_path_factory.mktemp("demo-template") / "demo", per_class=2, unlabelled=1, size=(192, 144)).folder


@pytest.fixture
def demo_project(tmp_path, _demo_template):
    """A small demo project (synthetic H&E, 192x144 images, 2 per class + 1 unlabelled), fresh per test."""
    from gusa_core.project import Project

    shutil.copytree(_demo_template, tmp_path / "demo")
    return Project.open(tmp_path / "demo")


@pytest.fixture
def window(qtbot, error_messages):
    """A shown ``MainWindow`` with no project."""
    from app.shell.main_window import MainWindow

    win = MainWindow(features=False)
    qtbot.addWidget(win)
    win.resize(1200, 800)
    win.show()
    qtbot.waitExposed(win)
    yield win
    if win.isVisible():
        win.close()
