"""Compare view: synchronised panels, titles from the predictions, PNG export (pytest-qt, offscreen)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPointF

from app_helpers import drag

from app.review.prediction_cache import PredictionCache, PredictorCache
from gusa_core.runs import runs_dir

SIZE = (64, 48)
CLASSES = ["Normal", "Benign", "InSitu", "Invasive"]
TIMEOUT = 120_000


def _save_random_run(folder: Path, variant: str, *, seed: int) -> Path:
    import torch

    from gusa_core.runs import write_untrained_run

    torch.set_num_threads(1)
    return write_untrained_run(folder, variant=variant, class_names=CLASSES, input_size=SIZE, seed=seed).folder


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    from PIL import Image

    from gusa_core.demo import generate_tissue
    from gusa_core.project import Project

    folder = tmp_path_factory.mktemp("compare") / "proj"
    project = Project.create(folder)
    (folder / "src").mkdir()
    rng = np.random.default_rng(1)
    for i, label in enumerate(["Benign", "Invasive", "InSitu"]):
        image, mask = generate_tissue(label, size=(120, 90), rng=rng)
        path = folder / "src" / f"c{i}.png"
        Image.fromarray(image).save(path)
        record = project.add_image(path, label=label)
        m = np.zeros((90, 120), np.uint8)
        m[30:60, 40:90] = 255
        project.save_mask(record.id, m)
    project.save()
    _save_random_run(runs_dir(folder) / "baseline-run", "baseline", seed=3)
    _save_random_run(runs_dir(folder) / "fa-gusa-run", "fa-gusa", seed=4)
    return project


@pytest.fixture(autouse=True)
def _tmp_settings(tmp_path):
    from PySide6.QtCore import QSettings

    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))


def _runs(project):
    return [runs_dir(project.folder) / "baseline-run", runs_dir(project.folder) / "fa-gusa-run"]


def _view(qtbot, project, image_id=None, runs=None, **kwargs):
    from app.review.compare_view import CompareView

    view = CompareView(project, image_id, runs if runs is not None else _runs(project), device="cpu",
                       prediction_cache=PredictionCache(), predictor_cache=PredictorCache(), **kwargs)
    qtbot.addWidget(view)
    return view


def _shown(qtbot, project, image_id=None, **kwargs):
    """A compare view, shown, with every panel's prediction in."""
    view = _view(qtbot, project, image_id, **kwargs)
    if view.busy:
        qtbot.waitUntil(lambda: not view.busy, timeout=TIMEOUT)
    view.show()
    qtbot.waitExposed(view)
    view.fit()
    return view


def test_panels_show_gt_and_titled_attention_maps(qtbot, project):
    from gusa_core.imageio import read_image
    from gusa_core.inference import Predictor

    image_id = project.images[1].id
    view = _shown(qtbot, project, image_id)
    assert len(view.panels) == 3
    assert view.panels[0].view.has_overlay()  # the ground-truth RoI
    assert "ground-truth RoI" in view.panels[0].content.title
    image = read_image(project.image_path(image_id))
    for panel, run in zip(view.panels[1:], _runs(project)):
        oracle = Predictor.from_run(run, device="cpu")
        expected = oracle.predict_image(image)
        assert panel.view.has_overlay()
        # two compiled bf16 models of the same weights may round differently; bf16 passed the agreement gate
        tol = 1e-5 if oracle.engine_info.precision == "fp32" else 2e-3
        np.testing.assert_allclose(panel.prediction.probs, expected.probs, atol=tol)
        assert run.name in panel.content.title
        assert f"{expected.label} p={expected.probs.max():.2f}" in panel.content.subtitle
    assert "Grad-CAM" in view.panels[1].content.subtitle and "ỹ" in view.panels[2].content.subtitle


def test_panels_zoom_and_pan_together(qtbot, project):
    from app.workspace.canvas_view import CanvasView

    view = _shown(qtbot, project, project.images[0].id)
    views = [p.view for p in view.panels]
    assert all(isinstance(v, CanvasView) for v in views)  # the workspace's canvas, not a view of its own
    views[1].zoom_by(4.0)
    drag(views[1], [(100, 100), (60, 70)])  # a drag pans
    zoom, offset = views[1].zoom(), views[1].offset()
    centre = views[1].widget_to_image(QPointF(views[1].width() / 2, views[1].height() / 2))
    assert zoom > 1 and offset.x() < 0
    for other in (views[0], views[2]):
        assert other.zoom() == pytest.approx(zoom) and other.offset() == offset
        c = other.widget_to_image(QPointF(other.width() / 2, other.height() / 2))
        assert (c.x(), c.y()) == pytest.approx((centre.x(), centre.y()), abs=1.0)
    # Panning the first panel moves the others along.
    views[0].pan_by(25, 0)
    assert [w.offset().x() for w in views] == [offset.x() + 25] * 3
    # A fourth panel joins the group with the same view.
    view.set_panel_count(4)
    assert len(view.panels) == 4
    views[0].zoom_by(0.5)
    assert view.panels[3].view.zoom() == pytest.approx(views[0].zoom()) and view.panels[3].view.offset() == views[0].offset()


def test_navigation_changes_every_panel(qtbot, project):
    view = _shown(qtbot, project, project.images[0].id)
    assert not view.prev_button.isEnabled()
    with qtbot.waitSignal(view.predictions_done, timeout=TIMEOUT) as blocker:
        view.next_image()
    assert blocker.args == [project.images[1].id] and view.image_combo.currentData() == project.images[1].id
    assert all(p.prediction is not None for p in view.panels[1:])
    view.previous_image()  # cached: immediate
    assert view.image_id == project.images[0].id and not view.busy


def test_export_png_has_the_documented_size(qtbot, project, tmp_path):
    from PIL import Image

    from app.review.compare_figure import COLORBAR_HEIGHT, MARGIN, PANEL_WIDTH, TITLE_HEIGHT, export_size

    view = _shown(qtbot, project, project.images[2].id)
    out = view.export_png(tmp_path / "fig6.png")
    assert out.is_file() and not list(tmp_path.glob(".*tmp"))
    # 120x90 image: panels 512 wide, 384 high.
    expected = (3 * 512 + 4 * MARGIN, MARGIN + TITLE_HEIGHT + 384 + COLORBAR_HEIGHT + MARGIN)
    assert PANEL_WIDTH == 512 and export_size(3, (120, 90)) == expected == view.export_size()
    with Image.open(out) as im:
        assert im.size == expected
        pixels = np.asarray(im.convert("RGB"))
    top = MARGIN + TITLE_HEIGHT
    gt = pixels[top: top + 384, MARGIN: MARGIN + 512]
    cam = pixels[top: top + 384, 2 * MARGIN + 512: 2 * MARGIN + 1024]
    assert np.abs(gt.astype(int) - cam.astype(int)).mean() > 5  # the attention map is drawn over the image
    # Two panels: a narrower figure.
    view.set_panel_count(2)
    with Image.open(view.export_png(tmp_path / "two.png")) as im:
        assert im.size == export_size(2, (120, 90)) == (2 * 512 + 3 * MARGIN, expected[1])


def test_install_adds_the_compare_action(qtbot, project):
    from PySide6.QtGui import QAction

    from app.review import compare_view
    from app.shell.main_window import MainWindow

    window = MainWindow(project, features=False)
    qtbot.addWidget(window)
    compare_view.install(window)
    assert window.findChild(QAction, "action_compare_models").text() == "Compare models…"


def test_opens_fitted_and_exports_only_panels_with_a_prediction(qtbot, project, tmp_path):
    from app.review.compare_figure import export_size

    view = _view(qtbot, project, project.images[0].id, n_panels=4)  # 3 runs' panels, 2 runs: one panel unset
    qtbot.waitUntil(lambda: not view.busy, timeout=TIMEOUT)
    view.resize(1200, 560)
    view.show()
    qtbot.waitExposed(view)
    viewport = view.panels[0].view.size()
    # fitted on opening (the user did not press Fit): the 120x90 image fills the panel, not 100 %
    fitted = min(viewport.width() / 120, viewport.height() / 90)
    qtbot.waitUntil(lambda: abs(view.panels[0].view.zoom() / fitted - 1) < 0.1, timeout=3000)
    assert view.panels[0].view.zoom() > 1.2, (view.panels[0].view.zoom(), fitted)
    unset = [p for p in view.panels[1:] if p.prediction is None]
    assert len(view.panels) == 4 and len(unset) == 1
    assert view.export_size() == export_size(3, (120, 90))
    from PIL import Image

    with Image.open(view.export_png(tmp_path / "three.png")) as im:
        assert im.size == export_size(3, (120, 90))
