"""Features plug into the typed host in any order and never look each other up through the window."""

from __future__ import annotations

import random
import re
from pathlib import Path

from PySide6.QtGui import QAction

APP = Path(__file__).resolve().parents[2] / "app"


def test_no_feature_finds_another_through_the_window():
    pattern = re.compile(r"(getattr|hasattr)\((window|host|self\.window)\b")
    hits = [f"{p.relative_to(APP.parent)}:{n}" for p in APP.rglob("*.py")
            for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert hits == []


def test_no_app_file_is_over_600_lines():
    long = {str(p.relative_to(APP.parent)): n for p in APP.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 600}
    assert long == {}


def test_only_dialogs_opens_standard_dialogs():
    pattern = re.compile(r"QFileDialog\.|QMessageBox\.(question|information|warning)|QInputDialog\.|QColorDialog\.")
    allowed = {APP / "base" / "dialogs.py", APP / "base" / "errors.py"}
    hits = [f"{p.relative_to(APP.parent)}:{n}" for p in APP.rglob("*.py") if p not in allowed
            for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert hits == []


def _actions(window) -> set[str]:
    return {a.objectName() for a in window.findChildren(QAction) if a.objectName().startswith("action_")}


def _install(qtbot, project, modules):
    from app.shell.main_window import MainWindow

    window = MainWindow(project, features=False)
    qtbot.addWidget(window)
    window.install_features(modules)
    return window


def test_the_window_is_a_host_and_features_install_in_any_order(qtbot, demo_project, error_messages):
    from app.shell.features import FEATURE_MODULES
    from app.shell.host import Host

    forward = _install(qtbot, demo_project, FEATURE_MODULES)
    assert isinstance(forward, Host)
    shuffled = list(reversed(FEATURE_MODULES))
    random.Random(7).shuffle(shuffled)
    for order in (list(reversed(FEATURE_MODULES)), shuffled):
        window = _install(qtbot, demo_project, order)
        assert set(window.features) == set(FEATURE_MODULES)
        assert _actions(window) == _actions(forward) >= {
            "action_train", "action_runs", "action_review", "action_compare_models", "action_classify",
            "action_report", "action_classes"}
        assert set(window._docks) >= {"Training", "Runs", "Review"}
        review = window.features["app.review.review_panel"]
        runs_panel = window.features["app.training.runs_panel"]
        training = window.features["app.training.training_panel"]
        # the shared runs service reaches every feature whatever the order
        assert runs_panel.model is window.runs
        with qtbot.waitSignal(window.runs.resume_requested, timeout=1000):
            runs_panel.model.request_resume(Path(demo_project.folder) / "runs" / "nothing")
        assert "no run to resume" in training.status_label.text()
        assert "no run to resume" in error_messages.pop()[1]
        window.show_image(demo_project.images[1].id)
        assert review.image_id == demo_project.images[1].id
    assert error_messages == []


def test_threads_are_started_only_in_workers():
    pattern = re.compile(r"threading\.Thread\(|QThreadPool\(|ThreadPoolExecutor\(|QThread\)|class \w+\(QThread\)")
    workers = APP / "base" / "workers.py"
    hits = [f"{p.relative_to(APP.parent)}:{n}" for p in APP.rglob("*.py") if p != workers
            for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert hits == []
