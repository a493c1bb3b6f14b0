"""Rejected suggestions are remembered in the project, per image and per suggester (the run's weights)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gusa_core.assist import scan_project, suggester_key, suggestion  # noqa: E402
from gusa_core.errors import ProjectError  # noqa: E402
from gusa_core.project import Project  # noqa: E402
from gusa_core.project.manifest import MANIFEST_NAME, MAX_REJECTIONS  # noqa: E402
from gusa_core.runs import write_untrained_run  # noqa: E402

torch.set_num_threads(2)
SIZE = (64, 48)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from gusa_core.demo import write_demo_project

    return write_demo_project(tmp_path_factory.mktemp("p") / "demo", per_class=1, unlabelled=2, size=SIZE, seed=5)


@pytest.fixture()
def project(demo, tmp_path):
    shutil.copytree(demo.folder, tmp_path / "demo")
    return Project.open(tmp_path / "demo")


@pytest.fixture(scope="module")
def runs(demo, tmp_path_factory):
    """Two runs with different weights."""
    root = tmp_path_factory.mktemp("runs")
    kw = dict(variant="fa-gusa", class_names=list(demo.classes), input_size=SIZE, folds=2)
    return write_untrained_run(root / "a", seed=1, **kw).folder, write_untrained_run(root / "b", seed=7, **kw).folder


def _manifest(project) -> dict:
    return json.loads((project.folder / MANIFEST_NAME).read_text(encoding="utf-8"))


def test_a_rejection_is_saved_and_survives_reopening(project):
    image_id = project.images[0].id
    seen = []
    project.events.suggestion_rejected.connect(lambda i, k: seen.append((i, k)))
    assert not project.is_suggestion_rejected(image_id, "run@1")
    assert "rejected_suggestions" not in _manifest(project)["images"][0]  # absent while empty
    project.reject_suggestion(image_id, "run@1")
    project.reject_suggestion(image_id, "run@1")  # no change, no event
    assert seen == [(image_id, "run@1")]
    assert _manifest(project)["images"][0]["rejected_suggestions"] == ["run@1"]
    again = Project.open(project.folder)
    assert again.is_suggestion_rejected(image_id, "run@1")
    assert not again.is_suggestion_rejected(image_id, "run@2") and not again.is_suggestion_rejected(image_id, None)
    assert not again.is_suggestion_rejected(again.images[1].id, "run@1")


def test_only_the_newest_rejections_are_kept_and_bad_keys_refused(project):
    image_id = project.images[0].id
    for k in range(MAX_REJECTIONS + 3):
        project.reject_suggestion(image_id, f"run@{k}", save_manifest=False)
    assert project.dirty
    project.save()
    kept = Project.open(project.folder).image(image_id).rejected_suggestions
    assert kept == [f"run@{k}" for k in range(3, MAX_REJECTIONS + 3)]
    with pytest.raises(ValueError):
        project.reject_suggestion(image_id, "")


def test_a_malformed_rejection_list_names_the_manifest(project):
    data = _manifest(project)
    data["images"][0]["rejected_suggestions"] = "run@1"
    (project.folder / MANIFEST_NAME).write_text(json.dumps(data), encoding="utf-8")
    (project.folder / (MANIFEST_NAME + ".bak")).unlink(missing_ok=True)
    with pytest.raises(ProjectError, match="rejected_suggestions"):
        Project.open(project.folder)


def test_suggester_key_follows_the_weights(runs, tmp_path):
    a, b = runs
    key = suggester_key(a)
    assert key.startswith("a@") and len(key.split("@")[1]) == 16
    assert suggester_key(a) == key and suggester_key(b) != key
    assert suggester_key(a / "fold-0") != key  # one fold alone is another suggester
    copy = tmp_path / "a"
    shutil.copytree(a, copy)
    assert suggester_key(copy) == key  # same name and weights: the same suggester
    other = write_untrained_run(tmp_path / "x" / "a", variant="fa-gusa", class_names=["x", "y"], input_size=SIZE,
                                folds=2, seed=99).folder
    assert suggester_key(other) != key  # retrained under the same name: may suggest again


def test_scan_marks_rejected_images_and_suggestion_skips_them(project, runs):
    a, b = runs
    target, other = [r.id for r in project.images if r.mask is None][:2]
    project.reject_suggestion(target, suggester_key(a))
    recs = {r["id"]: r for r in scan_project(a, project, ids=[target, other], backend="torch", device="cpu")}
    assert recs[target]["rejected"] and not recs[other]["rejected"]
    assert recs[target]["suggester"] == suggester_key(a)
    assert suggestion(recs[target], tau=0.0) is None
    assert suggestion(recs[other], tau=0.0).all()  # ỹ > 0 everywhere: the whole image
    rec_b = next(scan_project(b, project, ids=[target], backend="torch", device="cpu"))
    assert not rec_b["rejected"] and suggestion(rec_b, tau=0.0).all()  # another run suggests again


def test_cli_suggest_skips_rejected_images(project, runs, capsys):
    from gusa_core.cli.main import main

    a, _ = runs
    free = [r.id for r in project.images if r.mask is None]
    project.reject_suggestion(free[0], suggester_key(a))
    assert main(["suggest", str(a), str(project.folder), "--tau", "0.01", "--accept-all", "--no-stitch",
                 "--backend", "torch", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "1 image(s) skipped" in out and free[0] not in out
    after = Project.open(project.folder)
    assert after.image(free[0]).mask is None
    for image_id in free[1:]:
        assert after.image(image_id).mask_source == "accepted"
        assert (after.load_mask(image_id) > 0).all()
    assert after.is_suggestion_rejected(free[0], suggester_key(a))  # saving the masks kept the rejection
    np.testing.assert_array_equal(after.image(free[0]).rejected_suggestions, [suggester_key(a)])
