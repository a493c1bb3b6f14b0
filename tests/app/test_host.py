"""Features plug into the typed host in any order and never look each other up through the window."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from PySide6.QtGui import QAction

from gusa_core.runs import runs_dir

APP = Path(__file__).resolve().parents[2] / "app"


def test_no_feature_finds_another_through_the_window():
    pattern = re.compile(r"(getattr|hasattr)\((window|host|self\.window)\b")
    hits = [f"{p.relative_to(APP.parent)}:{n}" for p in APP.rglob("*.py")
            for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert hits == []


def test_no_feature_searches_the_window_for_another_features_widget():
    """A feature asks the Host (e.g. ``review_field``), never ``host.findChild(OtherPanel)``."""
    pattern = re.compile(r"\bfindChildren?\(")
    hits = [f"{p.relative_to(APP.parent)}:{n}" for p in APP.rglob("*.py") if p.parent.name != "shell"
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
            runs_panel.model.request_resume(runs_dir(demo_project.folder) / "nothing")
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


def test_app_knows_no_run_folder_layout():
    """Only gusa_core.runs builds run-folder paths: no run.json, fold-k or runs/ spelled out in app/."""
    pattern = re.compile(r"""["'](runs|run\.json|fold-\d*|last|model\.safetensors|model\.json)["'/]|fold-\{""")
    hits = [f"{p.relative_to(APP.parent)}:{n}: {line.strip()}" for p in APP.rglob("*.py")
            for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert hits == []


def test_app_layers_contract_holds():
    import shutil
    import os
    import subprocess
    import sys

    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    if not Path(exe).exists():
        pytest.fail("lint-imports (import-linter) is not installed: pip install -e '.[dev]'")
    proc = subprocess.run([exe, str(APP.parent / "pyproject.toml")], cwd=APP.parent, capture_output=True, text=True,
                          encoding="utf-8", errors="replace", env={**os.environ, "PYTHONUTF8": "1"})
    out = proc.stdout + proc.stderr
    assert "app is layered: the shell over the rooms over base KEPT" in out, out


def test_review_follows_the_active_run_of_a_newly_opened_project(qtbot, demo_project, error_messages):
    from app.shell.features import FEATURE_MODULES
    from gusa_core.atomic import atomic_write_json
    from gusa_core.runs import read_run_meta, run_json_path, write_untrained_run

    classes, size = list(demo_project.classes), (64, 48)
    older = write_untrained_run(runs_dir(demo_project.folder) / "older", variant="baseline", class_names=classes,
                                input_size=size).folder
    newer = write_untrained_run(runs_dir(demo_project.folder) / "newer", variant="baseline", class_names=classes,
                                input_size=size, seed=1).folder
    for folder, created in ((older, "2025-01-01T00:00:00+00:00"), (newer, "2025-01-02T00:00:00+00:00")):
        atomic_write_json(run_json_path(folder), {**read_run_meta(folder), "created": created})
    window = _install(qtbot, None, list(reversed(FEATURE_MODULES)))
    review = window.features["app.review.review_panel"]
    window.runs.set_project(demo_project)
    assert window.runs.active_run == str(newer)  # no choice yet: the newest finished run
    window.runs.set_active_run(older)
    window.runs.set_project(None)
    window.set_project(demo_project)  # the choice is remembered per project, and review follows it
    assert window.runs.active_run == str(older)
    assert review.run_dir == str(older.resolve())
    assert error_messages == []
