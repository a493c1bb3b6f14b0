"""gusa_core.evaluation and gusa_core.report on a tiny demo project and a hand-made run."""

from __future__ import annotations

import base64
import io
import json
from html.parser import HTMLParser

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sklearn.metrics import accuracy_score, roc_auc_score  # noqa: E402

from gusa_core.evaluation import evaluate_run, format_result  # noqa: E402
from gusa_core.inference import Predictor  # noqa: E402
from gusa_core.evaluation.report import format_number, write_html_report  # noqa: E402

torch.set_num_threads(2)
SIZE = (64, 48)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from gusa_core.demo import write_demo_project

    return write_demo_project(tmp_path_factory.mktemp("p") / "demo", per_class=2, unlabelled=1, size=SIZE, seed=1)


@pytest.fixture(scope="module")
def run(demo, tmp_path_factory):
    """A two-fold fa-gusa run with random weights; fold k validates every other labelled image."""
    from gusa_core.runs import write_untrained_run

    folder = tmp_path_factory.mktemp("runs") / "run"
    ids = [r.id for r in demo.labelled()]
    write_untrained_run(folder, variant="fa-gusa", class_names=list(demo.classes), input_size=SIZE, folds=2,
                        validation_ids=[ids[0::2], ids[1::2]])
    return folder


def test_ensemble_evaluation_matches_independent_metrics(demo, run):
    from gusa_core.imageio import read_image

    calls = []
    result = evaluate_run(run, demo.folder, backend="torch", progress=lambda d, t: calls.append((d, t)))
    labelled = demo.labelled()
    assert result["n_images"] == len(labelled) == len(result["predictions"])
    assert calls[-1] == (len(labelled), len(labelled))
    assert result["protocol"] == "ensemble" and result["n_models"] == 2
    # oracle: the predictor's own outputs and scikit-learn
    predictor = Predictor.from_run(run, backend="torch")
    preds = predictor.predict([read_image(demo.image_path(r.id)) for r in labelled])
    names = list(demo.classes)
    y = [names.index(r.label) for r in labelled]
    probs = np.array([p.probs for p in preds])
    assert result["accuracy"] == pytest.approx(accuracy_score(y, probs.argmax(1)))
    assert result["auc_macro"] == pytest.approx(roc_auc_score(y, probs, multi_class="ovr"))
    assert result["misclassified"] == [r.id for r, p in zip(labelled, preds) if p.label != r.label]
    # mean IoU over the images that have masks (eq. 9), at image resolution
    ious = []
    for r, p in zip(labelled, preds):
        if r.mask:
            m = demo.load_mask(r.id) > 0
            a = p.attention > 0.5
            union = np.logical_or(m, a).sum()
            ious.append(1.0 if union == 0 else np.logical_and(m, a).sum() / union)
    assert ious and result["miou"] == pytest.approx(np.mean(ious), abs=1e-6)
    row = result["predictions"][0]
    assert set(row) == {"id", "path", "label", "predicted", "probs", "iou", "temperature"}
    assert sum(row["probs"].values()) == pytest.approx(1.0)
    json.dumps(result)
    text = format_result(result)
    assert format_number(result["accuracy"]) in text and "confusion" in text


def test_validation_protocol_scores_each_image_with_its_own_fold(demo, run):
    from gusa_core.imageio import read_image

    result = evaluate_run(run, demo, validation=True, backend="torch")
    assert result["protocol"] == "validation"
    ids = [r.id for r in demo.labelled()]
    assert sorted(p["id"] for p in result["predictions"]) == sorted(ids)
    first_val = json.loads((run / "fold-0" / "model.json").read_text(encoding="utf-8"))["validation_ids"]
    fold0 = Predictor.from_run(run, fold=0, backend="torch")
    expected = fold0.predict([read_image(demo.image_path(i)) for i in first_val])
    by_id = {p["id"]: p for p in result["predictions"]}
    for image_id, e in zip(first_val, expected):
        np.testing.assert_allclose([by_id[image_id]["probs"][c] for c in e.class_names], e.probs, atol=1e-6)


def test_unreadable_image_is_listed_not_fatal(run, tmp_path):
    import shutil

    from gusa_core.demo import write_demo_project

    project = write_demo_project(tmp_path / "p", per_class=1, unlabelled=0, size=SIZE)
    victim = project.labelled()[0]
    project.image_path(victim.id).write_bytes(b"\x89PNG\r\n\x1a\n broken")
    result = evaluate_run(run, project.folder, backend="torch")
    assert [e["id"] for e in result["errors"]] == [victim.id]
    assert result["n_images"] == len(project.labelled()) - 1
    shutil.rmtree(tmp_path / "p")


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.imgs, self.cells, self._in_td = [], [], False

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.imgs.append(dict(attrs)["src"])
        self._in_td = tag == "td"

    def handle_endtag(self, tag):
        self._in_td = False

    def handle_data(self, data):
        if self._in_td:
            self.cells.append(data.strip())


def test_html_report_is_self_contained_and_shows_the_numbers(demo, run, tmp_path):
    from PIL import Image

    result = evaluate_run(run, demo, backend="torch")
    path = write_html_report(tmp_path / "r.html", result, title="t", run_info={"run": str(run)})
    text = path.read_text(encoding="utf-8")
    parser = _Collector()
    parser.feed(text)
    parser.close()
    figures = [s for s in parser.imgs if s.startswith("data:image/png;base64,")]
    assert len(figures) >= 2 and len(figures) == len(parser.imgs)  # nothing links outside the file
    for src in figures:
        data = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        Image.open(io.BytesIO(data)).verify()
    assert format_number(result["accuracy"]) in parser.cells
    assert format_number(result["auc_macro"]) in parser.cells
    assert format_number(result["miou"]) in parser.cells
    for name, auc in result["auc_per_class"].items():
        assert name in parser.cells and format_number(auc) in parser.cells
    for row in result["confusion"]:
        for v in row:
            assert format_number(v, 2) in parser.cells
    for image_id in result["misclassified"]:
        assert image_id in parser.cells
    assert "http://" not in text and "https://" not in text


def test_report_draws_each_class_in_the_projects_colour():
    import io

    from PIL import Image

    from gusa_core.evaluation.report import roc_figure_png

    curve = {"fpr": [0.0, 0.1, 1.0], "tpr": [0.0, 0.9, 1.0]}
    result = {"class_names": ["A", "B"], "roc": {"A": curve, "B": {"fpr": [0.0, 0.5, 1.0], "tpr": [0.0, 0.6, 1.0]}},
              "auc_per_class": {"A": 0.9, "B": 0.6}, "auc_macro": 0.75}

    def share(png, rgb):
        px = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
        return (np.abs(px - np.array(rgb)).sum(axis=2) < 30).mean()

    coloured = roc_figure_png(result, class_colors={"A": (230, 20, 200), "B": (20, 200, 30)})
    plain = roc_figure_png(result)
    assert share(coloured, (230, 20, 200)) > 0.001 and share(coloured, (20, 200, 30)) > 0.001
    assert share(plain, (230, 20, 200)) == 0 and share(plain, (20, 200, 30)) == 0
