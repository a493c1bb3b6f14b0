"""Quitting while training asks; Resume (after a relaunch) continues the run with its own settings and curves."""

from __future__ import annotations

import shutil

import pytest
from PySide6.QtCore import Qt

from app.base import errors as app_errors
from app.base.workers import wait_all
from gusa_core.runs import Run, read_run_meta, runs_dir

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(autouse=True)
def shown_errors():
    captured = []
    app_errors.set_error_sink(lambda parent, title, text, details: captured.append((title, text, details)))
    yield captured
    app_errors.set_error_sink(None)
    assert wait_all(120000), "a worker thread did not end"


@pytest.fixture
def tiny_project(tmp_path):
    from gusa_core.demo import write_demo_project
    from gusa_core.project import Project

    folder = tmp_path / "demo"
    write_demo_project(folder, per_class=2, unlabelled=0, size=(128, 96))
    return Project.open(folder)


def _tiny(panel, name):
    panel.set_variant("fa-gusa")
    panel.set_input_size(64, 48)
    panel.set_pretrained("none")
    panel.epochs_spin.setValue(2)
    panel.folds_spin.setValue(1)
    panel.batch_spin.setValue(4)
    panel.run_name_edit.setText(name)
    panel.run_name_edit.textEdited.emit(name)


def test_quit_while_training_asks_then_resume_uses_the_runs_settings(qtbot, tiny_project, shown_errors):
    from app.shell.main_window import MainWindow
    from app.training.training_panel import TrainingPanel

    win = MainWindow(tiny_project, features=False)
    qtbot.addWidget(win)
    win.install_features()
    win.show()
    panel = win.features["app.training.training_panel"]
    answers, asked = [None, 0], []

    def choose(parent, title, text, options):
        asked.append((title, text, list(options)))
        return answers.pop(0)

    win.dialogs.choose = choose
    _tiny(panel, "quitme")
    closed_during = []

    def on_epoch(rec):
        if rec["epoch"] != 1:
            return
        win.close()  # Cancel: the window and the run stay
        closed_during.append((win.isVisible(), panel.is_running))
        win.close()  # Stop training and quit: the run keeps epoch 1

    panel.epoch_finished.connect(on_epoch)
    with qtbot.waitSignal(panel.training_finished, timeout=300000) as sig:
        panel.start()
    assert closed_during == [(True, True)]
    assert len(asked) == 2 and asked[0][2] == ["Stop training and quit", "Quit when training finishes"]
    assert "quitme" in asked[0][1] and "last completed epoch" in asked[0][1]
    assert not win.isVisible()
    assert sig.args[0]["status"] == "stopped"
    run_dir = runs_dir(tiny_project.folder) / "quitme"
    assert read_run_meta(run_dir)["status"] == "stopped"
    assert [r["epoch"] for r in Run(run_dir).epoch_history()] == [1]

    # the app starts again: a fresh panel with its default settings and a new run name
    fresh = TrainingPanel(tiny_project)
    qtbot.addWidget(fresh)
    assert fresh.run_name_edit.text() != "quitme"
    assert fresh.epochs_spin.value() != 2 and fresh.input_size_combo.currentText() != "64x48"
    assert fresh.resume_button.isEnabled() and fresh.resume_button.text() == "Resume quitme"
    epochs = []
    fresh.epoch_finished.connect(epochs.append)
    with qtbot.waitSignal(fresh.training_started, timeout=10000):
        qtbot.mouseClick(fresh.resume_button, Qt.MouseButton.LeftButton)
    # the run's own settings, read-only while it trains
    assert fresh.run_name_edit.text() == "quitme"
    assert (fresh.epochs_spin.value(), fresh.folds_spin.value(), fresh.input_size_combo.currentText()) == (2, 1, "64x48")
    assert not fresh.epochs_spin.isEnabled() and not fresh.input_size_combo.isEnabled()
    assert fresh.curves.points("Loss") == 2  # epoch 1 (train + val) from before the stop
    with qtbot.waitSignal(fresh.training_finished, timeout=300000) as sig:
        pass
    assert sig.args[0]["status"] == "finished", fresh.log_view.toPlainText()
    assert [r["epoch"] for r in epochs] == [2]
    assert fresh.curves.points("Loss") == 4  # epochs 1 and 2
    xs = [x for (title, _f, _k), (xs_, _ys) in fresh.curves._data.items() if title == "Loss" for x in xs_]
    assert min(xs) == 1
    x0, _x1 = fresh.curves.plots["Loss"].viewRange()[0]
    assert x0 > 0  # no tick at epoch 0 or below
    # a finished run frees its name: the next Start makes a new run instead of failing with "already exists"
    assert fresh.run_name_edit.text() != "quitme" and not fresh.resume_button.isEnabled()
    assert fresh.run_dir() is not None and not fresh.run_dir().exists()
    assert shown_errors == []


def test_quit_when_training_finishes_closes_the_window_afterwards(qtbot, tiny_project, shown_errors):
    from app.shell.main_window import MainWindow

    win = MainWindow(tiny_project, features=False)
    qtbot.addWidget(win)
    win.install_features()
    win.show()
    panel = win.features["app.training.training_panel"]
    win.dialogs.choose = lambda parent, title, text, options: 1
    _tiny(panel, "later")
    panel.epochs_spin.setValue(1)
    with qtbot.waitSignal(panel.training_started, timeout=10000):
        panel.start()
    win.close()
    assert win.isVisible() and panel.is_running
    qtbot.waitUntil(lambda: not win.isVisible(), timeout=300000)
    assert read_run_meta(runs_dir(tiny_project.folder) / "later")["status"] == "finished"
