"""Issue 16 in the core: calibration stored by training and applied by the predictor, mask provenance,
the suggested-mask training setting, and the ``gusa suggest`` / ``gusa rank`` verbs."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gusa_core.calibration import apply_temperature, calibration_summary  # noqa: E402
from gusa_core.imageio import read_image  # noqa: E402
from gusa_core.inference import Predictor  # noqa: E402
from gusa_core.runs import read_run_meta, stored_roi_tau, stored_temperature  # noqa: E402

torch.set_num_threads(2)
SIZE = (64, 48)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from gusa_core.demo import write_demo_project

    return write_demo_project(tmp_path_factory.mktemp("p") / "demo", per_class=2, unlabelled=2, size=SIZE, seed=5)


@pytest.fixture(scope="module")
def run(demo, tmp_path_factory):
    """A two-fold run with random weights and a hand-written calibration block."""
    from gusa_core.atomic import atomic_write_json
    from gusa_core.runs import run_json_path, write_untrained_run

    folder = tmp_path_factory.mktemp("runs") / "run"
    ids = [r.id for r in demo.labelled()]
    write_untrained_run(folder, variant="fa-gusa", class_names=list(demo.classes), input_size=SIZE, folds=2,
                        validation_ids=[ids[0::2], ids[1::2]])
    meta = read_run_meta(folder)
    meta["calibration"] = {"ensemble_temperature": 2.5, "fold_temperatures": [0.5, 3.0], "roi_tau": 0.35}
    atomic_write_json(run_json_path(folder), meta)
    return folder


def _images(demo, ids):
    return [read_image(demo.image_path(i)) for i in ids]


def test_stored_temperatures_are_read_per_ensemble_and_per_fold(run):
    assert stored_temperature(run) == 2.5
    assert stored_temperature(run, fold=1) == 3.0
    assert stored_temperature(run / "fold-0") == 0.5
    assert stored_roi_tau(run) == 0.35


def test_predictor_scales_the_ensemble_mean_never_the_members(run, demo):
    images = _images(demo, demo.ids()[:3])
    raw = Predictor.from_run(run, backend="torch", device="cpu", temperature=1.0).predict(images)
    cal = Predictor.from_run(run, backend="torch", device="cpu")
    assert cal.temperature == 2.5
    p_raw = np.array([p.probs for p in raw])
    expected = apply_temperature(np.log(p_raw), 2.5)  # the mean of raw softmax, then one T
    np.testing.assert_allclose([p.probs for p in cal.predict(images)], expected, atol=1e-9)
    # one fold: its own T
    f1 = Predictor.from_run(run, fold=1, backend="torch", device="cpu")
    f1_raw = Predictor.from_run(run, fold=1, backend="torch", device="cpu", temperature=1.0)
    assert f1.temperature == 3.0
    np.testing.assert_allclose(
        f1.predict_image(images[0]).probs, apply_temperature(np.log(f1_raw.predict_image(images[0]).probs[None]), 3.0)[0],
        atol=1e-9,
    )


def test_evaluation_reports_calibration_before_and_after(run, demo, tmp_path):
    from gusa_core.evaluation import evaluate_run, format_result
    from gusa_core.evaluation.report import write_html_report

    result = evaluate_run(run, demo, backend="torch", device="cpu")
    labelled = demo.labelled()
    names = list(demo.classes)
    y = np.array([names.index(r.label) for r in labelled])
    raw = Predictor.from_run(run, backend="torch", device="cpu", temperature=1.0).predict(_images(demo, [r.id for r in labelled]))
    p_raw = np.array([p.probs for p in raw])
    cal = result["calibration"]
    assert cal["temperature"] == 2.5 and cal["scaled"]
    before = calibration_summary(p_raw, y)
    after = calibration_summary(apply_temperature(np.log(p_raw), 2.5), y)
    assert cal["before"]["ece"] == pytest.approx(before["ece"], abs=1e-6)
    assert cal["before"]["brier"] == pytest.approx(before["brier"], abs=1e-6)
    assert cal["after"]["ece"] == pytest.approx(after["ece"], abs=1e-6)
    assert cal["after"]["brier"] == pytest.approx(after["brier"], abs=1e-6)
    assert "ECE" in format_result(result) and "Brier" in format_result(result)
    text = write_html_report(tmp_path / "r.html", result).read_text(encoding="utf-8")
    assert 'alt="reliability diagram"' in text and "Brier score" in text
    assert f"{after['ece']:.4f}" in text and f"{before['ece']:.4f}" in text
    # the paper's protocol: each fold scores with its own T
    val = evaluate_run(run, demo, validation=True, backend="torch", device="cpu")
    assert sorted(val["calibration"]["temperature"]) == [0.5, 3.0]


def test_mask_provenance_round_trips_and_old_manifests_read_as_painted(tmp_path):
    from gusa_core.demo import write_demo_project
    from gusa_core.project import Project

    project = write_demo_project(tmp_path / "p", per_class=1, unlabelled=2, size=SIZE, seed=0)
    masked = [r for r in project.images if r.mask]
    assert masked and all(r.mask_source == "painted" for r in masked)
    free = [r.id for r in project.images if not r.mask]
    h, w = project.image_shape(free[0])
    m = np.zeros((h, w), np.uint8)
    m[5:20, 5:30] = 255
    project.save_mask(free[0], m, source="accepted")
    assert project.image(free[0]).mask_source == "accepted"
    project.save_mask(free[0], m)  # a later save keeps the recorded provenance
    assert project.image(free[0]).mask_source == "accepted"
    project.set_mask_source(free[0], "edited")
    project.set_mask_source(free[1], "accepted")  # the app marks before its background save
    project.save_mask(free[1], m)
    project.save()
    again = Project.open(project.folder)
    assert again.image(free[0]).mask_source == "edited" and again.image(free[1]).mask_source == "accepted"
    project.save_mask(free[0], np.zeros_like(m))
    assert project.image(free[0]).mask_source is None
    with pytest.raises(ValueError):
        project.save_mask(free[1], m, source="guessed")
    # a manifest without the field (older version): masks read as painted
    data = json.loads(project.manifest_path.read_text(encoding="utf-8"))
    for rec in data["images"]:
        rec.pop("mask_source", None)
    project.manifest_path.write_text(json.dumps(data))
    old = Project.open(project.folder)
    assert {old.image(r.id).mask_source for r in old.images if r.mask} == {"painted"}


def test_training_excludes_or_weights_accepted_suggestions(demo, tmp_path):
    from gusa_core.data import ProjectDataset
    from gusa_core.demo import write_demo_project
    from gusa_core.losses import dice_loss

    project = write_demo_project(tmp_path / "p", per_class=1, unlabelled=0, size=SIZE, seed=2)
    ids = [r.id for r in project.images if r.mask]
    project.set_mask_source(ids[0], "accepted")
    kw = dict(input_size=SIZE)
    inc = ProjectDataset(project, ids, **kw)
    exc = ProjectDataset(project, ids, suggested_masks="exclude", **kw)
    wgt = ProjectDataset(project, ids, suggested_masks="weight", suggested_weight=0.25, **kw)
    assert inc[0][3] is True and exc[0][3] is False and exc[1][3] is True
    assert wgt[0][3] == 0.25 and wgt[1][3] == 1.0
    with pytest.raises(ValueError):
        ProjectDataset(project, ids, suggested_masks="maybe", **kw)
    # dice with float weights: Σ w_i (1 - D_i) / #masked; bool weights are the old mean
    torch.manual_seed(0)
    roi = torch.rand(3, 1, 3, 4)
    masks = (torch.rand(3, 1, 12, 16) > 0.5).float()
    per = torch.stack([dice_loss(roi[i:i + 1], masks[i:i + 1]) for i in range(3)])
    w = torch.tensor([0.25, 1.0, 0.0])
    assert float(dice_loss(roi, masks, w)) == pytest.approx(float((per * w).sum() / 2), rel=1e-6)
    assert float(dice_loss(roi, masks, w > 0)) == pytest.approx(float(per[:2].mean()), rel=1e-6)


def test_training_stores_calibration_and_roi_tau(tmp_path):
    from gusa_core.demo import write_demo_project
    from gusa_core.training import TrainConfig, Trainer
    from gusa_core.training.calibrate import TAU_GRID

    project = write_demo_project(tmp_path / "p", per_class=3, unlabelled=0, size=SIZE, seed=0)
    cfg = TrainConfig(folds=2, epochs=1, batch_size=4, input_size=SIZE, device="cpu", pretrained="none", seed=0, workers=0)
    logs = []

    class Log:
        def __getattr__(self, name):
            return (lambda m: logs.append(m)) if name == "on_log" else (lambda *a, **k: None)

    Trainer(project, project.runs_dir / "r", cfg, callbacks=Log()).run()
    cal = read_run_meta(project.runs_dir / "r")["calibration"]
    n_val = sum(len(s["val"]) for s in read_run_meta(project.runs_dir / "r")["splits"])
    assert cal["n"] == n_val == 12 and cal["source"] == ["best", "best"]
    assert cal["ensemble_temperature"] == 1.0 and any("< 20" in n for n in cal["notes"])  # too few to fit
    assert cal["fold_temperatures"] == [1.0, 1.0]
    assert cal["roi_tau"] in TAU_GRID and cal["n_masks"] > 0
    assert max(cal["roi_miou_by_tau"].values()) == cal["roi_miou_by_tau"][f"{cal['roi_tau']:.2f}"]
    assert cal["before"]["ece"] == pytest.approx(cal["after"]["ece"])
    assert any(m.startswith("suggestions: tau") for m in logs)


def test_cli_rank_and_suggest(run, demo, tmp_path, capsys):
    import shutil

    from gusa_core.assist import annotation_queue, scan_project, suggestion
    from gusa_core.cli.main import main
    from gusa_core.project import Project

    folder = tmp_path / "demo"
    shutil.copytree(demo.folder, folder)
    project = Project.open(folder)
    assert main(["rank", str(run), str(folder), "--csv", "--backend", "torch", "--device", "cpu"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    expected = annotation_queue(list(scan_project(run, project, backend="torch", device="cpu", temperature=2.5)), project)
    assert [r["id"] for r in rows] == [it.id for it in expected]
    assert [float(r["score"]) for r in rows] == pytest.approx([it.score for it in expected], abs=1e-5)
    assert [r["predicted"] for r in rows] == [it.predicted for it in expected]
    assert main(["rank", str(run), str(folder), "--csv", "--by-score", "--backend", "torch", "--device", "cpu"]) == 0
    scored = [float(r["score"]) for r in csv.DictReader(io.StringIO(capsys.readouterr().out))]
    assert scored == sorted(scored, reverse=True) and len(scored) == len(rows)
    assert main(["rank", str(run), str(folder), "--backend", "torch", "--device", "cpu"]) == 0
    assert expected[0].id in capsys.readouterr().out

    free = [r.id for r in project.images if not r.mask]
    assert main(["suggest", str(run), str(folder), "--accept-all", "--out", str(tmp_path / "s"),
                 "--backend", "torch", "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "too coarse" in err  # trained at 64x48
    after = Project.open(folder)
    by_id = {r["id"]: r for r in scan_project(run, after, ids=free, backend="torch", device="cpu", stitch=True)}
    for image_id in free:
        want = suggestion(by_id[image_id], tau=0.35)  # the run's stored roi_tau
        assert (tmp_path / "s" / f"{image_id}.png").is_file()
        if want.any():
            assert after.image(image_id).mask_source == "accepted"
            np.testing.assert_array_equal(after.load_mask(image_id), want)
        else:
            assert after.image(image_id).mask is None
    assert main(["suggest", str(run), str(folder), "--tau", "1.5"]) == 2
