"""scan_project, suggestions and the queue on a tiny demo project and a hand-made two-fold run."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gusa_core.assist import annotation_queue, mean_roi_map, scan_project, suggest_mask, suggestion  # noqa: E402
from gusa_core.calibration import apply_temperature  # noqa: E402
from gusa_core.imageio import read_image  # noqa: E402
from gusa_core.inference import Predictor  # noqa: E402

torch.set_num_threads(2)
SIZE = (64, 48)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from gusa_core.demo import write_demo_project

    return write_demo_project(tmp_path_factory.mktemp("p") / "demo", per_class=2, unlabelled=2, size=SIZE, seed=3)


@pytest.fixture(scope="module")
def run(demo, tmp_path_factory):
    from gusa_core.checkpoint import save_model
    from gusa_core.models import build_model

    folder = tmp_path_factory.mktemp("runs") / "run"
    classes = list(demo.classes)
    ids = [r.id for r in demo.labelled()]
    for k in range(2):
        torch.manual_seed(10 + k)
        model = build_model("fa-gusa", num_classes=len(classes))
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.1, 0.1)
                    m.running_var.uniform_(0.5, 1.5)
            model.roi_head.bias.fill_(0.3 * (k - 0.5))  # ỹ near 0.5, so suggestions are not all empty
        meta = {"variant": "fa-gusa", "class_names": classes, "input_size": list(SIZE), "reinhard": None,
                "fold": k, "folds": 2, "validation_ids": ids[k::2]}
        save_model(folder / f"fold-{k}", model, meta)
    (folder / "run.json").write_text(json.dumps({"variant": "fa-gusa", "class_names": classes, "input_size": list(SIZE), "folds": 2}))
    return folder


@pytest.fixture(scope="module")
def records(run, demo):
    return list(scan_project(run, demo, backend="torch", device="cpu"))


def test_scan_keeps_each_fold_output_and_their_mean_is_the_ensemble(run, demo, records):
    ids = demo.ids()
    assert [r["id"] for r in records] == ids
    assert [(r["done"], r["total"]) for r in records] == [(i + 1, len(ids)) for i in range(len(ids))]
    folds = [Predictor.from_run(run, fold=k, backend="torch", device="cpu") for k in range(2)]
    ensemble = Predictor.from_run(run, backend="torch", device="cpu")
    for r in records[:3]:
        image = read_image(demo.image_path(r["id"]))
        assert r["error"] is None and r["image_shape"] == image.shape[:2]
        assert r["fold_probs"].shape == (2, len(demo.classes)) and r["fold_roi"].shape == (2, 3, 4)
        for k, p in enumerate(folds):
            one = p.predict_image(image)
            np.testing.assert_allclose(r["fold_probs"][k], one.probs, atol=1e-6)
            np.testing.assert_allclose(r["fold_roi"][k], one.attention_lowres, atol=1e-6)
        ens = ensemble.predict_image(image)
        np.testing.assert_allclose(r["fold_probs"].mean(0), ens.probs, atol=1e-6)
        np.testing.assert_allclose(mean_roi_map(r), ens.attention, atol=1e-5)
        np.testing.assert_array_equal(suggestion(r, tau=0.5), suggest_mask(mean_roi_map(r), tau=0.5))


def test_temperature_scales_each_fold(run, demo, records):
    one = demo.ids()[:1]
    hot = list(scan_project(run, demo, ids=one, temperature=2.0, backend="torch", device="cpu"))[0]
    expected = apply_temperature(np.log(records[0]["fold_probs"]), 2.0)
    np.testing.assert_allclose(hot["fold_probs"], expected, atol=1e-6)


def test_queue_holds_unlabelled_and_leaves_out_masked_images_it_agrees_with(demo, records):
    queue = annotation_queue(records, demo)
    queued = {q.id: q for q in queue}
    for rec in demo.images:
        r = next(x for x in records if x["id"] == rec.id)
        predicted = demo.classes[int(np.argmax(r["fold_probs"].mean(0)))]
        if rec.label is None:
            assert queued[rec.id].reason == "unlabelled"
        elif predicted != rec.label:
            assert queued[rec.id].reason == "disagrees with label"
        elif rec.mask:
            assert rec.id not in queued
        else:
            assert queued[rec.id].reason == "no mask"
        assert queued.get(rec.id) is None or queued[rec.id].predicted == predicted
    by_score = annotation_queue(records, demo, spread=False)
    assert [q.score for q in by_score] == sorted((q.score for q in by_score), reverse=True)
    assert sorted(q.id for q in queue) == sorted(q.id for q in by_score)
    # the default takes turns: in every prefix, no predicted class runs more than one ahead of another still queued
    for k in range(1, len(queue) + 1):
        left = {q.predicted for q in queue[k:]}
        counts = [sum(q.predicted == c for q in queue[:k]) for c in left]
        taken = [sum(q.predicted == c for q in queue[:k]) for c in {q.predicted for q in queue[:k]}]
        assert not counts or max(taken) <= min(counts) + 1


def test_unreadable_image_is_reported_not_raised(run, demo, records, tmp_path):
    bad = demo.image_path(demo.ids()[0])
    saved = bad.read_bytes()
    try:
        bad.write_bytes(b"not an image")
        rec = list(scan_project(run, demo, ids=[demo.ids()[0]], backend="torch", device="cpu"))[0]
    finally:
        bad.write_bytes(saved)
    assert rec["error"] and rec["fold_probs"] is None
    assert annotation_queue([rec], demo) == []


class _PoolingNet:
    """A stand-in predictor whose ỹ is the 16x16 mean of the input's first channel (an exact stride-16 grid)."""

    def prepare(self, image):
        return image.shape[:2], [np.stack([image[..., 0].astype(np.float32)] * 3)]

    def predict_prepared(self, items):
        from types import SimpleNamespace

        x = items[0][1][0][0]
        low = x.reshape(x.shape[0] // 16, 16, x.shape[1] // 16, 16).mean(axis=(1, 3))
        return [SimpleNamespace(attention_lowres=low, probs=np.array([x.mean(), 1.0]))]


def test_stitched_roi_samples_at_stride_8_with_half_pixel_centres():
    from gusa_core.assist import stitched_roi

    h, w = 64, 96
    cols = np.tile(np.arange(w, dtype=np.float32), (h, 1))
    image = np.stack([cols, cols, cols], axis=-1)
    probs, raw = stitched_roi(_PoolingNet(), image, raw=True)
    assert raw.shape == (h // 8, w // 8) and probs[1] == 1.0
    np.testing.assert_allclose(raw[1::2, 1::2], _PoolingNet().predict_prepared([(0, [image[..., 0][None]])])[0].attention_lowres)
    np.testing.assert_allclose(raw[3, 2:-1], 8 * np.arange(2, w // 8 - 1) - 0.5)  # sample k sits at pixel 8k - 0.5
    _, fine = stitched_roi(_PoolingNet(), image)
    np.testing.assert_allclose(fine[3, 2:-2], 8 * np.arange(2, w // 8 - 2) + 3.5)  # the half-pixel centres of stride 8


def test_scan_with_stitch_keeps_the_classes_and_doubles_the_grid(run, demo, records):
    from gusa_core.assist import stitched_roi

    one = demo.ids()[:2]
    fine = list(scan_project(run, demo, ids=one, backend="torch", device="cpu", stitch=True))
    for r, plain in zip(fine, records[:2]):
        np.testing.assert_allclose(r["fold_probs"], plain["fold_probs"], atol=1e-6)
        assert r["fold_roi"].shape == (2, 6, 8) and mean_roi_map(r).shape == plain["image_shape"]
    fold0 = Predictor.from_run(run, fold=0, backend="torch", device="cpu", temperature=1.0)
    _, raw = stitched_roi(fold0, read_image(demo.image_path(one[0])), raw=True)
    np.testing.assert_allclose(raw[1::2, 1::2], records[0]["fold_roi"][0], atol=1e-6)
