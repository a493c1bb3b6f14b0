"""The end-of-run calibration fits T on out-of-fold predictions of the best models, or of the last-epoch ones."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gusa_core.calibration import fit_temperature  # noqa: E402
from gusa_core.imageio import read_image  # noqa: E402
from gusa_core.inference import Predictor  # noqa: E402
from gusa_core.runs import fold_dir, last_model_dir, write_untrained_run  # noqa: E402
from gusa_core.training.calibrate import calibrate_run  # noqa: E402

torch.set_num_threads(2)
SIZE = (64, 48)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A demo project and a two-fold run whose folds each hold a best model and a different last-epoch model."""
    from gusa_core.demo import write_demo_project

    root = tmp_path_factory.mktemp("c")
    project = write_demo_project(root / "demo", per_class=2, unlabelled=0, size=SIZE, seed=1)
    names = list(project.classes)
    ids = [r.id for r in project.labelled()]
    splits = [([i for i in ids if i not in ids[k::2]], ids[k::2]) for k in range(2)]
    kw = dict(variant="fa-gusa", class_names=names, input_size=SIZE, folds=2)
    run = write_untrained_run(root / "run", seed=1, **kw).folder
    other = write_untrained_run(root / "other", seed=11, **kw).folder
    for k in range(2):
        shutil.copytree(fold_dir(other, k), last_model_dir(fold_dir(run, k)))
    return project, run, splits, names


def _oof(project, folders, splits, names):
    z, y = [], []
    for folder, (_, val) in zip(folders, splits):
        p = Predictor.from_run(folder, backend="torch", device="cpu", temperature=1.0)
        for image_id in val:
            probs = p.predict_image(read_image(project.image_path(image_id))).probs
            z.append(np.log(np.clip(probs, 1e-12, None)))
            y.append(names.index(project.image(image_id).label))
    return np.array(z), np.array(y)


@pytest.fixture(autouse=True)
def few_samples(monkeypatch):
    monkeypatch.setattr("gusa_core.training.calibrate.MIN_SAMPLES", 4)  # fit T on the tiny project's 8 images


def test_temperature_from_the_best_or_the_last_epoch_models_and_roi_tau_from_the_best(setup):
    project, run, splits, names = setup
    last = calibrate_run(run, project, splits, names, device="cpu", source="last")
    best = calibrate_run(run, project, splits, names, device="cpu")
    assert last["source"] == ["last", "last"] and best["source"] == ["best", "best"]
    assert last["n"] == best["n"] == 8
    z, y = _oof(project, [last_model_dir(fold_dir(run, k)) for k in range(2)], splits, names)
    zb, yb = _oof(project, [fold_dir(run, k) for k in range(2)], splits, names)
    assert last["ensemble_temperature"] == pytest.approx(fit_temperature(z, y), rel=1e-5)
    assert best["ensemble_temperature"] == pytest.approx(fit_temperature(zb, yb), rel=1e-5)
    assert last["ensemble_temperature"] != pytest.approx(best["ensemble_temperature"], rel=1e-3)  # other models
    # the suggestion threshold is the best models' in both cases: they are the ones that suggest
    assert last["roi_tau"] == best["roi_tau"] and last["roi_miou_by_tau"] == pytest.approx(best["roi_miou_by_tau"])
    with pytest.raises(ValueError, match="source"):
        calibrate_run(run, project, splits, names, device="cpu", source="first")


def test_a_fold_without_a_last_model_falls_back_to_its_best(setup, tmp_path):
    project, run, splits, names = setup
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    shutil.rmtree(last_model_dir(fold_dir(copy, 1)))
    cal = calibrate_run(copy, project, splits, names, device="cpu", source="last")
    assert cal["source"] == ["last", "best"] and any("best model" in n for n in cal["notes"])
