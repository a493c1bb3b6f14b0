"""Training from slides: fields of painted regions beside patch images, folds split by slide, ``gusa train``."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from gusa_core.cli.main import main
from gusa_core.data import ProjectDataset
from gusa_core.project import Project
from gusa_core.project.slides import add_paths, field_samples, project_fields, save_regions, slide_info
from gusa_core.slides import open_slide
from gusa_core.slides.fields import field_roi, parse_field_id
from gusa_core.training.splits import make_folds

from slide_fixtures import TwoClassPainter, write_pyramid_tiff

W, H = 8000, 6000


@pytest.fixture(scope="module")
def slide_project(tmp_path_factory):
    """Two painted slides (Benign left, Invasive right) and four labelled patch images."""
    root = tmp_path_factory.mktemp("slide-train")
    project = Project.create(root / "proj")
    for name in ("s1", "s2"):
        path = write_pyramid_tiff(root / f"{name}.tif", W, H, painter=TwoClassPainter(W, H), levels=[1, 4, 16], mpp=0.5)
        rec = add_paths(project, [path])[0]
        info = slide_info(project, rec.id)
        labels = np.zeros(info.label_shape, np.uint8)
        h, w = labels.shape
        labels[h // 10 : -h // 10, w // 10 : w // 2 - 2] = 2
        labels[h // 10 : -h // 10, w // 2 + 2 : -w // 10] = 4
        save_regions(project, rec.id, labels)
    rng = np.random.default_rng(0)
    for i, label in enumerate(["Benign", "Invasive", "Benign", "Invasive"]):
        img = rng.integers(0, 255, (96, 128, 3), np.uint8)
        cv2.imwrite(str(root / f"patch{i}.png"), img)
        rec = project.add_image(root / f"patch{i}.png")
        project.set_label(rec.id, label)
    project.save()
    return project


def test_group_folds_never_split_a_group():
    rng = np.random.default_rng(1)
    groups = [f"g{i}" for i in rng.integers(0, 6, 80)] + [f"img{i}" for i in range(10)]
    labels = rng.integers(0, 3, len(groups)).tolist()
    for folds in (2, 3, 1):
        splits, messages = make_folds(labels, folds=folds, groups=groups, seed=3)
        assert any("split by slide" in m for m in messages)
        for tr, va in splits:
            assert len(va) and len(tr) and not set(tr) & set(va)
            assert not {groups[i] for i in tr} & {groups[i] for i in va}
        if folds > 1:
            assert sorted(np.concatenate([va for _, va in splits]).tolist()) == list(range(len(groups)))
    with pytest.raises(Exception, match="at least 2 slides"):
        make_folds([0, 1, 0], folds=2, groups=["a", "a", "a"])


def test_field_dataset_reads_the_slide_and_its_region(slide_project):
    fields = project_fields(slide_project, max_per_class=2)
    assert len(fields) == 8 and {f.label for f in fields} == {1, 3}
    ids = [f.id for f in fields] + ["patch0"]
    samples = field_samples(slide_project, ids, fields)
    assert set(samples) == {f.id for f in fields}
    ds = ProjectDataset(slide_project, ids, input_size=(64, 48), fields=samples)
    assert ds.labels == [f.label for f in fields] + [1]
    for i, f in enumerate(fields):
        with open_slide(slide_project.image_path(f.slide_id)) as slide:
            np.testing.assert_array_equal(ds.image(i), slide.read_field(f.box, (64, 48)))
        info = slide_info(slide_project, f.slide_id)
        labels = cv2.imread(str(slide_project.folder / info.regions), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(ds.mask(i), field_roi(labels, info.downsample, f.box, f.label, (64, 48)))
        x, label, mask, has_mask = ds[i]
        assert tuple(x.shape) == (3, 48, 64) and label == f.label and has_mask and mask.mean() >= 0.5 - 1e-6


def test_gusa_train_on_slides_and_patches_splits_by_slide(slide_project, tmp_path, capsys):
    run = tmp_path / "run"
    rc = main(["train", str(slide_project.folder), "--out", str(run), "--epochs", "1", "--input-size", "64x48",
               "--folds", "2", "--pretrained", "none", "--batch-size", "8", "--device", "cpu", "--fields-per-class", "3",
               "--no-augment"])
    assert rc == 0
    err = capsys.readouterr().err
    assert "field(s) of 2048x1536 px at 0.42 µm/px from the painted regions of 2 of 2 slide(s)" in err
    meta = json.loads((run / "run.json").read_text(encoding="utf-8"))
    assert meta["status"] == "finished" and len(meta["splits"]) == 2
    for split in meta["splits"]:
        def slides(ids):
            return {parse_field_id(i)[0] for i in ids if parse_field_id(i) is not None}

        assert slides(split["train"]) and slides(split["val"])
        assert not slides(split["train"]) & slides(split["val"])  # no slide on both sides
        assert any(i.startswith("patch") for i in split["train"] + split["val"])
    for k in range(2):
        assert (run / f"fold-{k}" / "model.safetensors").is_file()
