"""The Training panel trains on a project of two painted slides; its folds are split by slide."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

from app.base import errors as app_errors
from app.base.workers import wait_all
from gusa_core.project import Project
from gusa_core.project.slides import add_paths, save_regions, slide_info
from gusa_core.slides.fields import parse_field_id

from slide_fixtures import TwoClassPainter, write_pyramid_tiff

W, H = 4000, 3000


@pytest.fixture
def shown_errors():
    captured: list[tuple[str, str]] = []
    app_errors.set_error_sink(lambda parent, title, text, details: captured.append((title, text)))
    yield captured
    app_errors.set_error_sink(None)
    assert wait_all(120000), "a worker thread did not end"


@pytest.fixture
def slides_only_project(tmp_path):
    """Two 4000x3000 slides at 1 µm/px, Benign painted on the left half, Invasive on the right; no patch image."""
    project = Project.create(tmp_path / "proj")
    for name in ("left", "right"):
        path = write_pyramid_tiff(tmp_path / f"{name}.tif", W, H, painter=TwoClassPainter(W, H), levels=[1, 4], mpp=1.0)
        rec = add_paths(project, [path])[0]
        labels = np.zeros(slide_info(project, rec.id).label_shape, np.uint8)
        h, w = labels.shape
        labels[h // 10 : -h // 10, w // 10 : w // 2] = 2
        labels[h // 10 : -h // 10, w // 2 : -w // 10] = 4
        save_regions(project, rec.id, labels)
    project.save()
    return project


def test_panel_trains_on_slide_fields_with_folds_split_by_slide(qtbot, slides_only_project, shown_errors):
    from app.training.training_panel import TrainingPanel

    panel = TrainingPanel(slides_only_project)
    qtbot.addWidget(panel)
    panel.set_variant("fa-gusa")
    panel.set_input_size(64, 48)
    panel.set_pretrained("none")
    panel.epochs_spin.setValue(1)
    panel.folds_spin.setValue(2)
    panel.batch_spin.setValue(8)
    panel.field_mpp_spin.setValue(0.84)  # about 10x: 2048x1536 px at 0.84 µm/px is 1720x1290 slide pixels
    assert panel.config_kwargs()["field_mpp"] == 0.84
    panel.run_name_edit.setText("slides")
    panel.run_name_edit.textEdited.emit("slides")
    assert panel._labelled_count() > 4  # noqa: SLF001 - fields count as labelled samples
    with qtbot.waitSignal(panel.training_started, timeout=10000):
        qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    with qtbot.waitSignal(panel.training_finished, timeout=300000) as sig:
        pass
    summary = sig.args[0]
    assert summary["status"] == "finished", (summary, shown_errors, panel.log_view.toPlainText())
    assert shown_errors == []
    assert "from the painted regions of 2 of 2 slide(s)" in panel.log_view.toPlainText()
    meta = json.loads((Path(slides_only_project.folder) / "runs" / "slides" / "run.json").read_text(encoding="utf-8"))
    assert meta["config"]["field_mpp"] == 0.84
    for split in meta["splits"]:
        train = {parse_field_id(i)[0] for i in split["train"]}
        val = {parse_field_id(i)[0] for i in split["val"]}
        assert len(train) == len(val) == 1 and not train & val  # one slide trains, the other validates
