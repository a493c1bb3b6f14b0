"""Model → Predict slide…: a sweep in a worker, the heatmap overlay on the slide viewer, a clicked field, cancel."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QAction
from slide_fixtures import TwoClassPainter, write_pyramid_tiff

from app.slides.heatmap_overlay import HEATMAP_LAYER
from gusa_core.project import Project
from gusa_core.project.slides import add_paths
from gusa_core.runs import runs_dir, write_untrained_run

W, H = 2048, 1536


@pytest.fixture
def slide_run_project(tmp_path):
    path = write_pyramid_tiff(tmp_path / "two.tif", W, H, painter=TwoClassPainter(W, H, margin=0.2), mpp=1.68,
                              levels=[1, 4], tile=256)
    project = Project.create(tmp_path / "proj")
    add_paths(project, [path])
    project.save()
    run = write_untrained_run(runs_dir(project.folder) / "rand", variant="fa-gusa", class_names=list(project.classes),
                              input_size=(64, 48), folds=1)
    return project, run.folder


FEATURES = ["app.training.runs_panel", "app.slides.slide_predict_panel"]


def _window(qtbot, project, features=FEATURES):
    from app.shell.main_window import MainWindow

    win = MainWindow(features=False)
    qtbot.addWidget(win)
    win.install_features(features)
    win.resize(1200, 800)
    win.show()
    qtbot.waitExposed(win)
    assert win.open_project(project.folder)
    return win


def _on_slide(qtbot, project, run_dir, features=FEATURES):
    """A window on the project's one slide with ``run_dir`` active; ``(window, slide panel)``."""
    win = _window(qtbot, project, features)
    win.runs.set_active_run(run_dir)
    [sid] = [r.id for r in project.images]
    with qtbot.waitSignal(win.slide_shown, timeout=20000):
        win.show_image(sid)
    return win, _panel(win)


def _panel(win):
    from app.slides.slide_predict_panel import SlidePredictPanel

    [panel] = win.findChildren(SlidePredictPanel)
    return panel


def test_predict_slide_overlays_heatmaps_and_reads_a_field(qtbot, slide_run_project, error_messages):
    project, run_dir = slide_run_project
    win, panel = _on_slide(qtbot, project, run_dir)
    view = win.canvas
    [action] = [a for a in win.findChildren(QAction) if a.objectName() == "action_predict_slide"]
    with qtbot.waitSignal(panel.progress.valueChanged, timeout=60000):
        action.trigger()
    qtbot.waitUntil(lambda: panel.result is not None and not panel.is_running(), timeout=120000)
    assert error_messages == []
    r = panel.result
    assert len(r.fields) > 0 and panel.progress.value() == len(r.fields)
    img = view.overlay(HEATMAP_LAYER)
    assert img is not None and (img.width(), img.height()) == (r.probs.shape[2], r.probs.shape[1])
    # the class map is opaque (at the chosen opacity) on fields and clear off them
    from app.workspace.canvas_image import qimage_view

    alpha = (qimage_view(img) >> 24).astype(int)
    assert alpha[r.valid].max() > 0 and alpha[~r.valid].max() == 0
    # attention, a class and a hidden class all redraw the overlay
    panel.mode_combo.setCurrentText("Attention")
    assert view.overlay(HEATMAP_LAYER) is not img
    panel.mode_combo.setCurrentText("Class map")
    shown = r.label_map[r.valid]
    top = int(np.bincount(shown).argmax())
    panel.class_list.item(top).setCheckState(Qt.CheckState.Unchecked)
    alpha = (qimage_view(view.overlay(HEATMAP_LAYER)) >> 24).astype(int)
    assert set(np.unique(alpha[(r.label_map == top) & r.valid])) <= {0, 255}  # hidden: at most the τ outline is left
    others = r.valid & (r.label_map != top)
    assert not others.any() or (alpha[others] == 128).any()
    panel.visible_check.setChecked(False)
    assert view.overlay(HEATMAP_LAYER) is None
    panel.visible_check.setChecked(True)
    # click a field with the pan tool: its probabilities are shown
    f = r.fields[len(r.fields) // 2]
    x, y, w, h = f.box
    view.set_tool("pan")
    pos = view.image_to_widget(QPointF(x + w / 2, y + h / 2)).toPoint()
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=pos)
    text = panel.field_label.text()
    assert f"Field at ({x}, {y})" in text and f"{r.class_names[0]} {f.probs[0]:.3f}" in text
    # the most probable fields of each class join the project as images with a suggested class
    from gusa_core.inference.slide_outputs import suggestion_fields

    panel.tau_spin.setValue(0.0)
    expected = suggestion_fields(r, tau=0.0)
    n = len(win.project.images)
    worker = panel.add_suggestions()
    assert worker is not None
    qtbot.waitUntil(lambda: len(win.project.images) == n + len(expected), timeout=60000)
    added = win.project.images[n:]
    assert [rec.suggested for rec in added] == [r.class_names[f.index] for f in expected]
    from gusa_core.imageio import image_size

    assert image_size(win.project.image_path(added[0].id)) == (2048, 1536)  # the BACH field, not the network input
    # outputs go where the user asks
    out = project.folder.parent / "out"
    assert panel.save_outputs(str(out))
    qtbot.waitUntil(lambda: (out / "two" / "summary.json").is_file(), timeout=20000)
    win.close()


def test_predict_slide_can_be_cancelled(qtbot, slide_run_project, error_messages):
    project, run_dir = slide_run_project
    win, panel = _on_slide(qtbot, project, run_dir)
    assert panel.start()
    with qtbot.waitSignal(panel.progress.valueChanged, timeout=60000):
        pass
    panel.cancel()
    qtbot.waitUntil(lambda: not panel.is_running(), timeout=60000)
    assert panel.result is None and win.canvas.overlay(HEATMAP_LAYER) is None
    assert panel.predict_button.isEnabled() and error_messages == []
    win.close()


def test_a_clicked_field_opens_in_review_with_its_prediction(qtbot, slide_run_project, error_messages):
    """Open in Review: the field read at the run's input size, predicted as the sweep predicted it."""
    import math

    from app.review.review_panel import ReviewPanel

    project, run_dir = slide_run_project
    win, panel = _on_slide(qtbot, project, run_dir,
                           ["app.training.runs_panel", "app.review.review_panel", "app.slides.slide_predict_panel"])
    [review] = win.findChildren(ReviewPanel)
    assert panel.start()
    qtbot.waitUntil(lambda: panel.result is not None and not panel.is_running(), timeout=120000)
    r = panel.result
    assert not panel.review_button.isEnabled()  # nothing clicked yet
    f = r.fields[len(r.fields) // 2]
    x, y, w, h = f.box
    view = win.canvas
    view.set_tool("pan")
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=view.image_to_widget(QPointF(x + w / 2, y + h / 2)).toPoint())
    assert panel.field is f and panel.review_button.isEnabled()
    with qtbot.waitSignal(review.prediction_ready, timeout=60000) as ready:
        qtbot.mouseClick(panel.review_button, Qt.MouseButton.LeftButton)
    title, prediction = ready.args
    assert title == f"two.tif, field at ({x}, {y})"
    assert review.isVisible() and review.field is not None and review.field.image.shape == (48, 64, 3)
    # the field's own record in the sweep is the same prediction
    np.testing.assert_allclose(prediction.probs, f.probs, atol=1e-5)
    assert review.bars.values() == pytest.approx(dict(zip(r.class_names, f.probs)), abs=1e-5)
    # the heatmap dock's probability at the field's centre is a blend of the fields over it, this one among them
    ds = r.downsample
    col, row = int((x + w / 2) // ds), int((y + h / 2) // ds)
    over = [g for g in r.fields
            if math.floor(g.box[0] / ds) <= col < math.ceil((g.box[0] + g.box[2]) / ds)
            and math.floor(g.box[1] / ds) <= row < math.ceil((g.box[1] + g.box[3]) / ds)]
    assert f in over
    for k in range(len(r.class_names)):
        ps = [g.probs[k] for g in over]
        assert min(ps) - 1e-5 <= r.probs[k, row, col] <= max(ps) + 1e-5
    # the attention map is drawn over the field in the panel, not over the canvas's image
    assert review.overlay is not None and review.field_view.isVisible() and not review.field_view.pixmap().isNull()
    assert not np.array_equal(review.field_rgb, review.field.image)
    # a project image leaves field mode
    review.set_image(None)
    assert review.field is None and not review.field_view.isVisible()
    assert error_messages == []
    win.close()
