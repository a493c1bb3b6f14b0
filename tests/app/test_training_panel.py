"""The training panel and the runs panel: settings, live training in a worker, stop, resume, runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from app.base import errors as app_errors
from app.base.workers import wait_all
from gusa_core.models_registry import DEFAULT_VARIANT, DESCRIPTIONS, VARIANT_NAMES
from gusa_core.runs import Run, fold_number, read_run_meta, runs_dir

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(autouse=True)
def shown_errors():
    """Error dialogs captured (title, text, details) instead of blocking; no thread left behind.

    ``tests/app/conftest.py`` points QSettings at a temporary folder.
    """
    captured = []
    app_errors.set_error_sink(lambda parent, title, text, details: captured.append((title, text, details)))
    yield captured
    app_errors.set_error_sink(None)
    assert wait_all(120000), "a worker thread did not end"


# ----------------------------------------------------------------- settings
def test_parse_input_size_accepts_presets_and_refuses_bad_sizes():
    from app.training.training_panel import INPUT_SIZE_PRESETS, parse_input_size

    assert [parse_input_size(p) for p in INPUT_SIZE_PRESETS] == [(512, 384), (256, 192), (128, 96), (64, 48)]
    assert parse_input_size(" 320 x 240 ") == (320, 240)
    for bad, words in (("500x384", "multiples of 16"), ("16x16", "too small"), ("big", "WIDTHxHEIGHT"), ("", "WIDTHxHEIGHT")):
        with pytest.raises(ValueError, match=words):
            parse_input_size(bad)


def test_panel_defaults_and_config(qtbot, tmp_path):
    from app.training.training_panel import TrainingPanel

    panel = TrainingPanel(None)
    qtbot.addWidget(panel)
    combo = panel.variant_combo
    assert [combo.itemData(i) for i in range(combo.count())] == list(VARIANT_NAMES)
    assert combo.currentData() == DEFAULT_VARIANT == "fa-gusa"
    for i, name in enumerate(VARIANT_NAMES):
        assert combo.itemData(i, Qt.ItemDataRole.ToolTipRole) == DESCRIPTIONS[name]
    assert panel.run_name_edit.text().endswith("_fa-gusa")
    panel.set_variant("baseline")
    assert panel.run_name_edit.text().endswith("_baseline")  # follows the variant until edited
    # 1 fold shows the validation fraction
    panel.folds_spin.setValue(1)
    assert not panel.val_fraction_spin.isHidden()
    panel.folds_spin.setValue(3)
    assert panel.val_fraction_spin.isHidden()
    panel.set_input_size(64, 48)
    panel.set_pretrained("none")
    cfg = panel.config_kwargs()
    assert cfg["variant"] == "baseline" and cfg["folds"] == 3 and cfg["input_size"] == (64, 48)
    assert cfg["pretrained"] == "none" and cfg["device"] == "auto" and cfg["precision"] == "auto"
    assert [panel.precision_combo.itemData(i) for i in range(panel.precision_combo.count())] == ["auto", "fp32", "bf16"]
    assert "On this computer's CPU" in panel.precision_combo.toolTip()
    panel.precision_combo.setCurrentIndex(panel.precision_combo.findData("fp32"))
    assert panel.config_kwargs()["precision"] == "fp32"
    assert cfg["suggested_masks"] == "include"  # the default: accepted suggestions train like painted masks
    panel.suggested_combo.setCurrentIndex(panel.suggested_combo.findData("exclude"))
    assert panel.config_kwargs()["suggested_masks"] == "exclude"
    assert cfg["class_weights"] == "none"  # the paper's plain cross-entropy unless asked
    panel.class_weights_combo.setCurrentIndex(panel.class_weights_combo.findData("balanced"))
    assert panel.config_kwargs()["class_weights"] == "balanced"
    panel.input_size_combo.setCurrentText("100x50")
    assert not panel.input_size_error.isHidden() and "multiples of 16" in panel.input_size_error.text()
    with pytest.raises(ValueError):
        panel.config_kwargs()
    # no project: Start is disabled
    assert not panel.start_button.isEnabled()


def test_weights_status_names_the_expected_file(qtbot, tmp_path, monkeypatch):
    from app.training.training_panel import TrainingPanel, imagenet_weights_path

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    expected = tmp_path / "th" / "hub" / "checkpoints" / "densenet169-b2777c0a.pth"
    assert imagenet_weights_path() == expected
    panel = TrainingPanel(None)
    qtbot.addWidget(panel)
    panel.set_pretrained("auto")
    assert "not found" in panel.weights_status.text() and str(expected) in panel.weights_status.text().replace("\u200b", "")
    expected.parent.mkdir(parents=True)
    expected.write_bytes(b"x")
    panel.set_pretrained("none")
    panel.set_pretrained("auto")
    assert panel.weights_status.text().replace("\u200b", "").startswith(f"ImageNet weights found at {expected}")
    panel.set_pretrained(str(tmp_path / "mine.safetensors"))
    assert panel.config_kwargs()["pretrained"] == str(tmp_path / "mine.safetensors")
    assert "missing" in panel.weights_status.text()


def test_device_list_comes_from_the_core(qtbot):
    from app.training.training_panel import TrainingPanel
    from gusa_core.device import available_devices

    panel = TrainingPanel(None)
    qtbot.addWidget(panel)
    panel.detect_devices()
    expected = ["auto"] + [ident for ident, _label in available_devices()]
    qtbot.waitUntil(lambda: panel.device_combo.count() == len(expected), timeout=30000)
    assert [panel.device_combo.itemData(i) for i in range(panel.device_combo.count())] == expected


def test_eta_label_ignores_warm_up_and_says_minutes_left(qtbot):
    """The trainer's events, as the job's bridge delivers them, drive the estimate shown in the panel.

    The model build and warm-up batches take 30 s; a steady batch 1 s, a validation 10 s.
    """
    from app.training.training_panel import TrainingPanel
    from gusa_core.training.eta import EtaEstimator

    panel = TrainingPanel(None)
    qtbot.addWidget(panel)
    panel._config = {"folds": 2, "epochs": 3}
    panel._reset_progress_state()
    panel._estimator = EtaEstimator(folds=2, epochs=3, batch_size=4)
    clock = [0.0]

    def emit(kind, payload, seconds):
        clock[0] += seconds
        panel._bridge.event.emit((kind, payload, clock[0]))

    emit("run_start", {"folds": 2, "epochs": 3}, 0.0)
    emit("fold_start", (0, 2), 1.0)
    shown = []
    for epoch in (1, 2):
        for b in range(20):
            warm = epoch == 1 and b < 3
            emit("batch_end", {"fold": 0, "epoch": epoch, "epochs": 3, "batches": 20, "loss": 0.5},
                 (20.0, 5.0, 5.0)[b] if warm else 1.0)
            if b == 2 and epoch == 1:
                emit("log", "a message between batches", 0.5)
            shown.append(panel.eta_label.text())
        emit("epoch_end", {"fold": 0, "epoch": epoch, "epochs": 3}, 10.0)
    assert shown[:7] == ["estimating…"] * 7  # three warm-up batches, then four steady ones
    # Left: one epoch of this fold (20 s + 10 s) and a fold of three epochs (90 s)
    # plus its build and warm-up (27 s over three steady batches): 147 s.
    assert panel._estimator.remaining_seconds() == pytest.approx(147.0, rel=0.02)
    assert panel.eta_label.text() == "about 2 min left"


# --------------------------------------------------------------- runs panel
def _fake_run(folder: Path, name: str, **meta) -> Path:
    """A run folder holding only its run.json (what ``gusa_core.runs`` lists), with ``meta`` in it."""
    from gusa_core.runs import run_json_path, runs_dir

    run = runs_dir(folder) / name
    run.mkdir(parents=True)
    run_json_path(run).write_text(json.dumps({"format": "gusa-run", **meta}))
    return run


class _P:
    def __init__(self, folder):
        self.folder = Path(folder)


def test_runs_panel_lists_runs_and_remembers_the_active_one(qtbot, tmp_path):
    from app.training.runs_panel import RunsPanel
    from gusa_core.runs import run_json_path

    a = _fake_run(tmp_path, "a", variant="baseline", folds=2, status="finished", created="2025-01-01T10:00:00",
                  fold_results=[{"fold": 0, "status": "finished", "val_acc": 0.7, "val_auc": 0.9},
                                {"fold": 1, "status": "finished", "val_acc": 0.8, "val_auc": 0.9}])
    b = _fake_run(tmp_path, "b", variant="fa-gusa", folds=1, status="stopped", created="2025-01-02T10:00:00",
                  fold_results=[{"fold": 0, "status": "finished", "val_acc": 0.5, "val_auc": 0.6, "val_miou": 0.4}])
    (runs_dir(tmp_path) / "broken").mkdir()
    run_json_path(runs_dir(tmp_path) / "broken").write_text("{not json")
    panel = RunsPanel(_P(tmp_path))
    qtbot.addWidget(panel)
    assert [r.name for r in panel.runs] == ["b", "a"]  # newest first, broken skipped
    cells = [[panel.table.item(r, c).text() for c in range(panel.table.columnCount())] for r in range(2)]
    assert cells[1][1:7] == ["baseline", "2", "finished", "0.750", "0.900", "–"]
    assert cells[0][1:7] == ["fa-gusa", "1", "stopped", "0.500", "0.600", "0.400"]
    # with nothing chosen, the newest finished run is active
    assert panel.active_run_dir == str(a)
    with qtbot.waitSignal(panel.model.active_run_changed, timeout=1000) as sig:
        panel.select_run("b")
        panel.use_button.click()
    assert sig.args == [str(b)]
    # remembered per project folder
    again = RunsPanel(_P(tmp_path))
    qtbot.addWidget(again)
    assert again.active_run_dir == str(b)
    # delete asks, then removes the folder and clears the active run
    again.dialogs.question = lambda *a, **k: False
    assert not again.delete_run(b)
    assert b.exists()
    with qtbot.waitSignal(again.model.active_run_changed, timeout=1000):
        assert again.delete_run(b, confirm=False)
    assert not b.exists() and [r.name for r in again.runs] == ["a"]
    assert not any(p.name.startswith(".deleting") for p in runs_dir(tmp_path).iterdir())


# ----------------------------------------------------------- real training
@pytest.fixture(scope="module")
def _demo_template(tmp_path_factory):
    from gusa_core.demo import write_demo_project

    folder = tmp_path_factory.mktemp("demo_template") / "demo"
    write_demo_project(folder, per_class=3, unlabelled=0, size=(128, 96))
    return folder


@pytest.fixture
def tiny_project(_demo_template, tmp_path):
    """A fresh copy of a small demo project (12 labelled 128x96 images, 8 with masks)."""
    import shutil

    from gusa_core.project import Project

    folder = tmp_path / "demo"
    shutil.copytree(_demo_template, folder)
    return Project.open(folder)


def _tiny_settings(panel, *, epochs=1, folds=1, batch_size=4, name="tiny"):
    panel.set_variant("fa-gusa")
    panel.set_input_size(64, 48)
    panel.set_pretrained("none")
    panel.epochs_spin.setValue(epochs)
    panel.folds_spin.setValue(folds)
    panel.batch_spin.setValue(batch_size)
    panel.device_combo.setCurrentIndex(panel.device_combo.findData("auto"))
    panel.run_name_edit.setText(name)
    panel.run_name_edit.textEdited.emit(name)


def test_tiny_training_run_from_the_panel_finishes(qtbot, tiny_project, shown_errors):
    from app.training.runs_panel import RunsPanel
    from app.training.training_panel import TrainingPanel

    panel = TrainingPanel(tiny_project)
    runs = RunsPanel(tiny_project)
    qtbot.addWidget(panel)
    qtbot.addWidget(runs)
    panel.training_finished.connect(lambda *_: runs.refresh())
    _tiny_settings(panel, epochs=1, folds=2, batch_size=4)
    epochs, batches = [], []
    panel.epoch_finished.connect(epochs.append)
    panel.batch_finished.connect(batches.append)
    with qtbot.waitSignal(panel.training_started, timeout=5000):
        qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    assert panel.is_running and not panel.start_button.isEnabled() and panel.stop_button.isEnabled()
    with qtbot.waitSignal(panel.training_finished, timeout=300000) as sig:
        pass
    summary = sig.args[0]
    assert summary["status"] == "finished", (summary, shown_errors, panel.log_view.toPlainText())
    assert shown_errors == []  # no error message
    run_dir = runs_dir(tiny_project.folder) / "tiny"
    assert read_run_meta(run_dir)["status"] == "finished"
    assert [fold_number(d) for d in Run(run_dir).fold_dirs()] == [0, 1]
    # one epoch per fold: two epoch records, one point per fold in each plot
    assert [r["fold"] for r in epochs] == [0, 1]
    assert panel.curves.points("Loss") == 4 and panel.curves.points("Accuracy") == 4
    assert batches and all(b["batches"] == batches[0]["batches"] for b in batches)
    assert panel.overall_bar.value() == panel.overall_bar.maximum()
    log = panel.log_view.toPlainText()
    assert "fold 1 epoch 1/1: train loss" in log and "Traceback" not in log
    assert panel.status_label.text().startswith("Finished")
    assert not panel.is_running and panel.start_button.isEnabled()
    # the runs panel lists it with its metrics
    assert [r.name for r in runs.runs] == ["tiny"] and runs.runs[0].status == "finished"
    assert runs.runs[0].summary()["mean_val_acc"] is not None and runs.table.item(0, 4).text() != "–"
    assert runs.active_run_dir == str(run_dir)


def test_stop_ends_within_one_batch_and_resume_finishes(qtbot, tiny_project, shown_errors):
    from app.training.training_panel import TrainingPanel

    panel = TrainingPanel(tiny_project)
    qtbot.addWidget(panel)
    _tiny_settings(panel, epochs=2, folds=1, batch_size=2, name="stopme")
    after_stop = []
    stop_sent = []

    def on_batch(rec):
        if stop_sent:
            after_stop.append(rec)
        else:
            stop_sent.append(rec)
            qtbot.mouseClick(panel.stop_button, Qt.MouseButton.LeftButton)

    panel.batch_finished.connect(on_batch)
    with qtbot.waitSignal(panel.training_finished, timeout=300000) as sig:
        qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    assert sig.args[0]["status"] == "stopped"
    assert stop_sent and stop_sent[0]["batches"] >= 4  # there was a lot of epoch left
    assert len(after_stop) <= 1  # the batch running when Stop was clicked, at most
    run_dir = runs_dir(tiny_project.folder) / "stopme"
    assert read_run_meta(run_dir)["status"] == "stopped"
    assert panel.status_label.text().startswith("Stopped")
    # stopped in epoch 1: no epoch was completed, and the message says so
    assert "had not completed an epoch" in panel.status_label.text()
    assert "keeps its last completed epoch" not in panel.status_label.text()
    assert shown_errors == []
    assert panel.resume_button.isEnabled()
    panel.batch_finished.disconnect(on_batch)
    epochs = []
    panel.epoch_finished.connect(epochs.append)
    with qtbot.waitSignal(panel.training_finished, timeout=300000) as sig:
        qtbot.mouseClick(panel.resume_button, Qt.MouseButton.LeftButton)
    assert sig.args[0]["status"] == "finished"
    assert read_run_meta(run_dir)["status"] == "finished"
    assert len(epochs) == 2 and panel.curves.points("Loss") == 4
    assert not panel.resume_button.isEnabled()


def test_training_error_is_a_message_not_a_traceback(qtbot, tiny_project, shown_errors):
    from app.training.training_panel import TrainingPanel

    panel = TrainingPanel(tiny_project)
    qtbot.addWidget(panel)
    _tiny_settings(panel, name="bad")
    missing = Path(tiny_project.folder) / "no-such-weights.safetensors"
    panel.set_pretrained(str(missing))
    with qtbot.waitSignal(panel.training_failed, timeout=120000) as sig:
        panel.start()
    message = sig.args[0]
    assert "no-such-weights" in message and "Traceback" not in message
    assert len(shown_errors) == 1
    title, text, details = shown_errors[0]
    assert text == message and "Traceback" in details  # the traceback stays behind "details"
    assert panel.status_label.text().startswith("Training failed")
    assert panel.start_button.isEnabled()


def test_start_refuses_an_existing_run_name(qtbot, tiny_project, shown_errors):
    from app.training.training_panel import TrainingPanel

    _fake_run(Path(tiny_project.folder), "taken", status="finished")
    panel = TrainingPanel(tiny_project)
    qtbot.addWidget(panel)
    _tiny_settings(panel, name="taken")
    assert not panel.start()
    assert "already exists" in shown_errors[0][1]
    assert not panel.is_running


def test_canvas_accepts_a_stroke_while_training_runs(qtbot, tiny_project, shown_errors):
    from PySide6.QtCore import QPoint
    from PySide6.QtGui import QAction

    import app.training.runs_panel
    import app.training.training_panel
    from app.shell.main_window import MainWindow

    window = MainWindow(tiny_project)
    qtbot.addWidget(window)
    window.dialogs.confirm = lambda *a, **k: True
    panel = app.training.training_panel.install(window)
    runs_panel = app.training.runs_panel.install(window)
    assert {a.text() for a in window.model_menu.actions()} >= {"Train…", "Runs"}
    window.resize(1100, 750)
    window.show()
    qtbot.waitExposed(window)
    window.findChild(QAction, "action_train").trigger()
    assert panel.isVisible() and panel.project is tiny_project
    unmasked = next(r.id for r in tiny_project.images if not tiny_project.has_mask(r.id))
    window.show_image(unmasked)
    editor = window.current_editor()
    assert editor is not None and not editor.mask.any()
    _tiny_settings(panel, epochs=1, folds=1, batch_size=1, name="live")
    with qtbot.waitSignal(panel.batch_finished, timeout=120000):
        panel.start()
    canvas = window.canvas
    canvas.set_tool("brush")
    canvas.set_brush_size(15)
    centre = canvas.rect().center()
    strokes = []
    canvas.stroke_finished.connect(strokes.append)
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=centre)
    for dx in range(0, 40, 8):
        qtbot.mouseMove(canvas, centre + QPoint(dx, 0))
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=centre + QPoint(40, 0))
    assert panel.is_running, "training ended before the stroke: make the run longer"
    assert len(strokes) == 1 and editor.mask.any()
    painted = int((editor.mask > 0).sum())
    with qtbot.waitSignal(panel.training_finished, timeout=300000) as sig:
        pass
    assert sig.args[0]["status"] == "finished"
    assert int((editor.mask > 0).sum()) == painted
    assert [r.name for r in runs_panel.runs] == ["live"] == [r.name for r in window.runs.runs]


def test_quick_preset_fills_the_settings(qtbot, tmp_path):
    from gusa_core.demo import write_demo_project

    from app.training.training_job import TRAINING_PRESETS
    from app.training.training_panel import TrainingPanel

    panel = TrainingPanel(write_demo_project(tmp_path / "demo", per_class=1, unlabelled=0, size=(64, 48)))
    qtbot.addWidget(panel)
    quick = next(i for i, (label, _, _) in enumerate(TRAINING_PRESETS) if label.startswith("Quick"))
    panel.preset_actions[quick].trigger()
    kw = panel.config_kwargs()
    assert kw["folds"] == 1 and kw["epochs"] == 10 and tuple(kw["input_size"]) == (128, 96)
    assert kw["lr"] == pytest.approx(1e-3)
    panel.preset_actions[0].trigger()
    kw = panel.config_kwargs()
    assert kw["folds"] == 4 and kw["epochs"] == 30 and tuple(kw["input_size"]) == (512, 384)
    assert kw["lr"] == pytest.approx(5e-5)
