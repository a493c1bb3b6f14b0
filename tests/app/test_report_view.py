"""The evaluation report in the app: numbers equal scikit-learn's, HTML export holds the figures."""

from __future__ import annotations

import base64
import re

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, roc_auc_score

from app.report.report_view import ReportView


@pytest.mark.parametrize("validation", [True, False])
def test_report_numbers_equal_sklearn(qtbot, tiny_run, tmp_path, validation):
    from gusa_core.project import Project

    project_folder, run_dir = tiny_run
    view = ReportView(Project.open(project_folder))
    qtbot.addWidget(view)
    view.set_run(run_dir, None)
    (view.scope_validation if validation else view.scope_all).setChecked(True)
    with qtbot.waitSignal(view.evaluation_finished, timeout=180_000) as blocker:
        assert view.start()
    result = blocker.args[0]
    names = result["class_names"]
    preds = result["predictions"]
    y = np.array([names.index(p["label"]) for p in preds])
    probs = np.array([[p["probs"][c] for c in names] for p in preds])
    assert result["accuracy"] == pytest.approx(accuracy_score(y, probs.argmax(1)))
    present = sorted(set(y))
    if len(present) == len(names):
        assert result["auc_macro"] == pytest.approx(roc_auc_score(y, probs, multi_class="ovr", average="macro"))
    # the widgets show the same numbers
    assert f"{result['accuracy']:.4f}" in view.summary.text()
    for i, c in enumerate(names):
        assert view.confusion_table.item(i, i).text() == f"{result['confusion'][i][i]:.2f}"
    assert view.misclassified.count() == len(result["misclassified"])

    html = view.export_html(tmp_path / "report.html").read_text(encoding="utf-8")
    uris = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(uris) >= 2
    assert all(base64.b64decode(u)[:8] == b"\x89PNG\r\n\x1a\n" for u in uris)
    assert view.export_json(tmp_path / "m.json").is_file()


def test_clicking_a_misclassified_image_activates_it(qtbot, tiny_run):
    from gusa_core.project import Project

    project_folder, _ = tiny_run
    view = ReportView(Project.open(project_folder))
    qtbot.addWidget(view)
    view.show_result({
        "class_names": ["Normal", "Benign", "InSitu", "Invasive"], "accuracy": 0.5, "auc_macro": 0.6,
        "auc_per_class": {"Normal": 0.5, "Benign": 0.6, "InSitu": 0.7, "Invasive": 0.6},
        "confusion": np.eye(4).tolist(), "miou": None, "n_images": 2, "roc": {},
        "predictions": [{"id": "x1", "label": "Normal", "predicted": "Benign", "probs": {"Normal": 0.2, "Benign": 0.8}}],
        "misclassified": ["x1"],
    })
    with qtbot.waitSignal(view.image_activated, timeout=5000) as blocker:
        view.misclassified.itemClicked.emit(view.misclassified.item(0))
    assert blocker.args == ["x1"]
