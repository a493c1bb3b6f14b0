"""Review panel: probabilities, attention overlays, caching, "Predict all" (pytest-qt, offscreen)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest

from app.review.colormaps import apply_colormap, attention_rgba, colorbar_image, contour_polygons, threshold_outline
from app.review.prediction_cache import PredictionCache, PredictorCache, default_fold, prediction_key, scan_runs
from gusa_core.runs import runs_dir

SIZE = (64, 48)  # (w, h) network input: tiny
CLASSES = ["Normal", "Benign", "InSitu", "Invasive"]
TIMEOUT = 120_000  # ms: model loading on a busy 2-core machine


# ------------------------------------------------------------------ fixtures
def save_random_run(folder: Path, variant: str, *, folds: int = 1, seed: int = 0, created: str | None = None) -> Path:
    """A run folder with random-weight models of ``variant`` (eval-mode outputs not degenerate).

    ``created`` overrides the creation time (runs are listed newest first).
    """
    import torch

    from gusa_core.atomic import atomic_write_json
    from gusa_core.runs import read_run_meta, run_json_path, write_untrained_run

    torch.set_num_threads(1)
    run = write_untrained_run(folder, variant=variant, class_names=CLASSES, input_size=SIZE, folds=folds, seed=seed)
    if created is not None:
        atomic_write_json(run_json_path(run.folder), {**read_run_meta(run.folder), "created": created})
    return run.folder


def make_project(folder: Path, n: int = 3):
    """A project of ``n`` small synthetic images (96x72), labelled, the first with a RoI mask."""
    from PIL import Image

    from gusa_core.demo import generate_tissue
    from gusa_core.project import Project

    project = Project.create(folder)
    rng = np.random.default_rng(0)
    (folder / "src").mkdir()
    for i in range(n):
        label = CLASSES[i % len(CLASSES)]
        image, mask = generate_tissue(label, size=(96, 72), rng=rng)
        path = folder / "src" / f"img{i}.png"
        Image.fromarray(image).save(path)
        record = project.add_image(path, label=label)
        if i == 0:
            m = np.zeros((72, 96), np.uint8)
            m[20:50, 30:70] = 255
            project.save_mask(record.id, m)
    project.save()
    return project


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    project = make_project(tmp_path_factory.mktemp("review") / "proj")
    save_random_run(runs_dir(project.folder) / "fa-gusa-run", "fa-gusa", folds=2, seed=1, created="2024-01-01T00:00:01+00:00")
    save_random_run(runs_dir(project.folder) / "baseline-run", "baseline", folds=1, seed=5, created="2024-01-01T00:00:05+00:00")
    return project


@pytest.fixture(autouse=True)
def _tmp_settings(tmp_path, monkeypatch):
    from PySide6.QtCore import QSettings

    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))
    from app.base import errors

    errors.set_error_sink(lambda *a: None)
    yield
    errors.set_error_sink(None)


class RecordingCanvas:
    """Stands in for the main canvas: records the layers the panel sets."""

    def __init__(self):
        self.overlays = {}
        self.outlines = {}

    def set_overlay(self, name, rgba, *, opacity=1.0):
        self.overlays[name] = rgba

    def set_outline(self, name, polygons, *, color=(0, 255, 255)):
        self.outlines[name] = polygons


class RecordingList:
    def __init__(self):
        self.calls = []

    def set_predictions(self, predictions):
        self.calls.append(dict(predictions))


def _run_dir(project, name):
    return str((runs_dir(project.folder) / name).resolve())


def _oracle(project, image_id, run_dir, fold):
    from gusa_core.imageio import read_image
    from gusa_core.inference import Predictor

    return Predictor.from_run(run_dir, fold=fold, device="cpu").predict_image(read_image(project.image_path(image_id)))


def _panel(qtbot, project, **kwargs):
    from app.review.review_panel import ReviewPanel

    panel = ReviewPanel(project, prediction_cache=PredictionCache(), predictor_cache=PredictorCache(), device="cpu", **kwargs)
    qtbot.addWidget(panel)
    return panel


# ------------------------------------------------------------------ pure helpers (no torch, no Qt)
def test_colormap_matches_matplotlib_and_outline_follows_threshold():
    from matplotlib import colormaps

    a = np.linspace(0, 1, 256, dtype=np.float32).reshape(16, 16)
    rgb = apply_colormap(a, "viridis")
    expected = np.round(colormaps["viridis"](np.arange(256))[:, :3] * 255).astype(np.uint8).reshape(16, 16, 3)
    assert np.array_equal(rgb, expected)
    assert colorbar_image("jet", width=50, height=4).shape == (4, 50, 3)

    att = np.zeros((40, 50), np.float32)
    att[10:30, 15:35] = 0.8
    line = threshold_outline(att, 0.5, thickness=1)
    assert line[10, 20] and line[29, 20] and line[20, 15] and line[20, 34]  # the square's border
    assert not line[20, 25] and not line[2, 2]  # neither inside nor far outside
    assert not threshold_outline(att, 0.9).any()  # nothing above τ: no outline
    rgba = attention_rgba(att, opacity=0.5, threshold=0.5, outline=True, thickness=1)
    assert rgba.shape == (40, 50, 4) and rgba.dtype == np.uint8
    assert (rgba[..., 3][~line] == 128).all() and (rgba[..., 3][line] == 255).all()
    (poly,) = contour_polygons(att > 0.5)
    assert poly[:, 0].min() == pytest.approx(10.5) and poly[:, 1].max() == pytest.approx(34.5)


def test_prediction_cache_is_bounded_and_keeps_summaries(tmp_path):
    class P:
        def __init__(self, label):
            self.label, self.probs, self.attention = label, np.array([0.25, 0.75], np.float32), np.zeros((100, 100), np.float32)

    img = tmp_path / "a.png"
    img.write_bytes(b"x")
    cache = PredictionCache(max_bytes=3 * 40_000 + 1000)
    keys = [prediction_key(f"id{i}", img, tmp_path, None) for i in range(5)]
    for i, key in enumerate(keys):
        cache.put(key, P(f"c{i}"))
    assert len(cache) == 3 and cache.get(keys[0]) is None and cache.get(keys[4]).label == "c4"
    assert cache.summary(keys[0])[0] == "c0"  # evicted map, kept class
    cache.get(keys[2])
    cache.put(prediction_key("new", img, tmp_path, 1), P("n"))
    assert cache.get(keys[2]) is not None and cache.get(keys[3]) is None  # LRU, not FIFO
    before = prediction_key("id0", img, tmp_path, None)
    os.utime(img, ns=(1, 10**18))
    assert prediction_key("id0", img, tmp_path, None) != before  # a changed file misses the cache


def test_predictor_cache_loads_each_model_once_across_threads(tmp_path):
    calls = []
    gate = threading.Event()

    def factory(run_dir, *, fold, device):
        calls.append((run_dir, fold, device))
        gate.wait(5)
        return object()

    cache = PredictorCache(max_predictors=2, factory=factory)
    got = []
    threads = [threading.Thread(target=lambda: got.append(cache.get(tmp_path, 0, "cpu"))) for _ in range(4)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join(10)
    assert len(calls) == 1 and len({id(g) for g in got}) == 1
    cache.get(tmp_path, 1, "cpu")
    cache.get(tmp_path, None, "cpu")
    assert len(cache) == 2 and not cache.cached(tmp_path, 0, "cpu")  # least recently used dropped


def test_scan_runs_reads_json_only(project):
    infos = {r.name: r for r in scan_runs(project.folder)}
    assert infos["fa-gusa-run"].folds == (0, 1) and infos["fa-gusa-run"].variant == "fa-gusa"
    assert default_fold(infos["fa-gusa-run"]) is None and default_fold(infos["baseline-run"]) == 0
    assert infos["baseline-run"].folds == (0,)


def test_opening_review_and_compare_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys, app.review.review_panel, app.review.compare_view, app.review.prediction_cache, app.review.colormaps; "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2]).returncode == 0


# ------------------------------------------------------------------ the panel
def test_review_shows_predictors_probabilities_and_overlay(qtbot, project):
    canvas = RecordingCanvas()
    panel = _panel(qtbot, project, canvas=canvas)
    run = _run_dir(project, "fa-gusa-run")
    panel.set_run(run, None)  # the ensemble of both folds
    assert panel.fold_combo.currentText() == "ensemble (2 folds)"
    image_id = project.images[0].id
    with qtbot.waitSignal(panel.prediction_ready, timeout=TIMEOUT) as blocker:
        panel.set_image(image_id)
    assert blocker.args[0] == image_id
    expected = _oracle(project, image_id, run, None)
    shown = panel.bars.values()
    assert list(shown) == CLASSES
    np.testing.assert_allclose([shown[c] for c in CLASSES], expected.probs, atol=1e-5)
    assert expected.label in panel.predicted_label.text()
    assert "ỹ" in panel.kind_label.text()
    h, w = 72, 96
    overlay = canvas.overlays["attention"]
    assert overlay is not None and overlay.shape == (h, w, 4)
    np.testing.assert_array_equal(overlay, attention_rgba(expected.attention, colormap="jet", opacity=0.45))
    truth = project.image(image_id).label
    assert panel.disagrees == (truth != expected.label)
    assert ("disagrees" in panel.agreement_label.text()) == (truth != expected.label)
    engine = panel.predictors.engine_info(run, None, "cpu")  # which engine ran, and why
    assert f"{engine.backend} {engine.precision}" in panel.status_label.text()
    assert engine.reason in panel.status_label.toolTip()


def test_display_options_redraw_without_predicting_again(qtbot, project):
    canvas = RecordingCanvas()
    panel = _panel(qtbot, project, canvas=canvas)
    panel.set_run(_run_dir(project, "fa-gusa-run"), 1)
    image_id = project.images[0].id
    with qtbot.waitSignal(panel.prediction_ready, timeout=TIMEOUT):
        panel.set_image(image_id)
    started = panel.workers_started
    attention = panel.prediction.attention
    panel.colormap_combo.setCurrentText("magma")
    panel.opacity_slider.setValue(80)
    np.testing.assert_array_equal(canvas.overlays["attention"], attention_rgba(attention, colormap="magma", opacity=0.8))
    tau = float(np.quantile(attention, 0.6))
    panel.threshold_slider.setValue(int(round(tau * 100)))
    panel.outline_check.setChecked(True)
    polygons = canvas.outlines["attention_threshold"]
    assert polygons and all(p.shape[1] == 2 for p in polygons)
    assert len(polygons) == len(contour_polygons(attention > panel.threshold))
    panel.roi_check.setChecked(True)
    roi = canvas.outlines["gt_roi"]
    assert roi and roi[0][:, 0].min() == pytest.approx(20.5)  # the painted rectangle's top row
    panel.roi_check.setChecked(False)
    assert canvas.outlines["gt_roi"] is None
    assert panel.workers_started == started


def test_standalone_panel_keeps_its_own_overlay_and_gradcam_is_named(qtbot, project):
    panel = _panel(qtbot, project)
    panel.set_run(_run_dir(project, "baseline-run"))
    assert panel.fold == 0 and panel.fold_combo.count() == 1
    with qtbot.waitSignal(panel.overlay_changed, timeout=TIMEOUT, check_params_cb=lambda rgba: rgba is not None):
        panel.set_image(project.images[1].id)
    assert panel.overlay.shape == (72, 96, 4)
    assert "Grad-CAM" in panel.kind_label.text()
    panel.outline_check.setChecked(True)
    panel.heatmap_check.setChecked(False)
    assert panel.overlay[..., 3].max() in (0, 255)  # outline only, rasterised into the layer


def test_second_visit_is_a_cache_hit(qtbot, project):
    panel = _panel(qtbot, project)
    panel.set_run(_run_dir(project, "fa-gusa-run"), 0)
    a, b = project.images[0].id, project.images[1].id
    with qtbot.waitSignal(panel.prediction_ready, timeout=TIMEOUT):
        panel.set_image(a)
    first = panel.prediction
    with qtbot.waitSignal(panel.prediction_ready, timeout=TIMEOUT):
        panel.set_image(b)
    qtbot.waitUntil(lambda: not panel.busy, timeout=TIMEOUT)  # the worker has delivered "finished"
    started = panel.workers_started
    assert panel.predictors.loads == 1  # one model loaded for both images
    with qtbot.waitSignal(panel.prediction_ready, timeout=1000) as blocker:
        panel.set_image(a)
    assert blocker.args == [a, first]
    assert panel.workers_started == started and not panel.busy  # shown at once, no worker


def test_predict_all_fills_the_image_list(qtbot, project):
    listing = RecordingList()
    panel = _panel(qtbot, project, image_list=listing)
    run = _run_dir(project, "baseline-run")
    panel.set_run(run)
    with qtbot.waitSignal(panel.predictions_filled, timeout=TIMEOUT) as blocker:
        panel.predict_all()
    results = blocker.args[0]
    assert set(results) == {r.id for r in project.images}
    assert listing.calls[-1] == results
    oracle = _oracle(project, project.images[2].id, run, 0)
    label, prob = results[project.images[2].id]
    assert label == oracle.label and prob == pytest.approx(float(oracle.probs.max()), abs=1e-5)
    disagree = sum(project.image(i).label != lab for i, (lab, _p) in results.items())
    assert panel.progress_label.text().startswith(f"{len(results)} predicted, {disagree} disagree")
    # Every image is now cached: showing one starts no worker.
    started = panel.workers_started
    with qtbot.waitSignal(panel.prediction_ready, timeout=1000):
        panel.set_image(project.images[1].id)
    assert panel.workers_started == started


def test_unreadable_image_reports_the_file(qtbot, project, tmp_path):
    from gusa_core.project import Project

    broken = Project.create(tmp_path / "p2")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    record = broken.add_image(bad, label="Benign")
    import shutil

    shutil.copytree(runs_dir(project.folder) / "baseline-run", runs_dir(broken.folder) / "baseline-run")
    panel = _panel(qtbot, broken)
    with qtbot.waitSignal(panel.prediction_failed, timeout=TIMEOUT) as blocker:
        panel.set_image(record.id)
    assert "bad.png" in blocker.args[1]
    assert "bad.png" in panel.status_label.text()


def test_install_adds_the_dock_and_follows_the_current_image(qtbot, project):
    from PySide6.QtCore import Signal
    from PySide6.QtGui import QAction
    from PySide6.QtWidgets import QDockWidget, QMainWindow

    from app.base.dialogs import Dialogs
    from app.base.runs_model import RunsModel
    from app.review import review_panel
    from app.shell.host import Host

    class Window(QMainWindow):
        """A minimal host: recording canvas and image list, no workspace."""

        current_image_changed = Signal(str)
        project_opened = Signal(object)
        slide_shown = Signal(str)

        def __init__(self):
            super().__init__()
            self.project = project
            self.canvas = RecordingCanvas()
            self.image_list = RecordingList()
            self.file_menu, self.model_menu, self.image_menu, self.view_menu = (
                self.menuBar().addMenu(t) for t in ("File", "Model", "Image", "View"))
            self.dialogs = Dialogs()
            self.runs = RunsModel(project, self)
            self.docks = {}

        def current_image_id(self):
            return None

        def current_image(self):
            return None

        def current_slide(self):
            return None

        def replace_mask(self, mask, *, how="union"):
            pass

        def select_image(self, image_id):
            self.current_image_changed.emit(image_id)

        def add_dock(self, widget, title, area):
            dock = QDockWidget(title, self)
            dock.setWidget(widget)
            self.addDockWidget(area, dock)
            self.docks[title] = dock
            return dock

        def show_dock(self, title):
            self.docks[title].show()
            return True

        def show_status(self, text, msecs=3000):
            pass

        def review_field(self, image, title, *, run_dir, fold=None):
            return False

    window = Window()
    qtbot.addWidget(window)
    assert isinstance(window, Host)
    panel = review_panel.install(window)
    panel.cache, panel.predictors, panel.device = PredictionCache(), PredictorCache(), "cpu"
    assert "Review" in [a.text() for a in window.model_menu.actions()]
    window.show()
    window.current_image_changed.emit(project.images[2].id)
    assert not panel.isVisible() and not panel.busy  # the dock starts hidden: nothing is predicted
    with qtbot.waitSignal(panel.prediction_ready, timeout=TIMEOUT) as blocker:
        window.findChild(QAction, "action_review").trigger()
    assert blocker.args[0] == project.images[2].id
    assert window.canvas.overlays["attention"].shape == (72, 96, 4)
    panel.parentWidget().hide()  # closing the dock removes the overlay from the canvas
    assert window.canvas.overlays["attention"] is None


def test_project_events_from_the_autosave_thread_reach_the_panel_in_the_gui_thread(qtbot, project, monkeypatch):
    """The core emits mask_changed on whatever thread saved the mask: the panel must only see it in the GUI thread."""
    import threading

    from app.review.review_panel import ReviewPanel

    seen = []
    monkeypatch.setattr(ReviewPanel, "_on_project_mask_changed", lambda self, image_id: seen.append(threading.current_thread()))
    panel = _panel(qtbot, project)  # held: a collected panel takes its bridge with it
    image_id = project.images[0].id
    worker = threading.Thread(target=lambda: project.events.mask_changed.emit(image_id))
    worker.start()
    worker.join()
    qtbot.waitUntil(lambda: len(seen) == 1, timeout=5000)
    assert seen[0] is threading.main_thread()
    assert panel.project is project
