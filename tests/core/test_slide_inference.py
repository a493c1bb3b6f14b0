"""Slide inference: heatmaps over generated slides, tissue-only fields, outputs in level-0 coordinates."""

from __future__ import annotations

import json

import numpy as np
import pytest
from slide_fixtures import TwoClassPainter, write_pyramid_tiff

from gusa_core.geojson import geojson_to_mask
from gusa_core.inference.slide import FieldSettings, SlideOptions, field_settings, predict_slide
from gusa_core.inference.slide_outputs import read_fields_geojson, write_slide_outputs

# A BACH field (2048 x 1536 px at 0.42 µm/px) is 512 x 384 level-0 pixels at 1.68 µm/px.
MPP = 1.68
W, H = 2048, 1536


class ColourModel:
    """A deterministic stand-in network whose class follows the colour: red-ish is A, blue-ish is B.

    Its answer is known exactly, so these tests check the sweep itself (field layout, blending,
    areas, outputs) to the pixel; ``test_slide_demo_run.py`` checks a run trained on the demo.
    """

    def __new__(cls):
        import torch
        from torch import nn

        from gusa_core.models import ModelOutput

        class _Net(nn.Module):
            variant = "fa-gusa"
            has_roi = True

            def forward(self, x):
                diff = x[:, 0:1] - x[:, 2:3] + 0.35  # > 0 on the pink half, < 0 on the purple one
                score = diff.mean(dim=(1, 2, 3))
                logits = torch.stack([8 * score, -8 * score], dim=1)
                roi = torch.sigmoid(4 * torch.nn.functional.avg_pool2d(diff, 16))
                return ModelOutput(logits, roi)

        return _Net()


@pytest.fixture(scope="module")
def colour_predictor():
    from gusa_core.inference import Predictor

    meta = {"class_names": ["A", "B"], "input_size": [64, 48], "variant": "fa-gusa"}
    return Predictor([(ColourModel(), meta)], device="cpu", backend="torch")


@pytest.fixture(scope="module")
def two_class_slide(tmp_path_factory):
    painter = TwoClassPainter(W, H, margin=0.2)
    path = write_pyramid_tiff(tmp_path_factory.mktemp("two") / "two.tif", W, H, painter=painter, mpp=MPP,
                              levels=[1, 4], tile=256)
    return path, painter


@pytest.fixture(scope="module")
def two_class_result(colour_predictor, two_class_slide):
    path, _ = two_class_slide
    return predict_slide(colour_predictor, path, options=SlideOptions(batch_size=4))


def test_heatmap_halves_follow_the_drawn_classes(two_class_result, two_class_slide):
    r = two_class_result
    _, painter = two_class_slide
    assert r.settings == FieldSettings() and r.settings.source == "default"
    assert r.footprint == pytest.approx((512.0, 384.0))
    probs_a = r.probs[0]
    hh, hw = probs_a.shape
    cols = (np.arange(hw) + 0.5) * r.downsample
    ok = r.coverage & r.tissue
    # away from the midline by more than half a field: each half shows its own class
    left = ok & (cols < W / 2 - 256)[None, :]
    right = ok & (cols > W / 2 + 256)[None, :]
    assert left.sum() > 50 and right.sum() > 50
    assert probs_a[left].min() > 0.9
    assert probs_a[right].max() < 0.1
    np.testing.assert_allclose(r.probs.sum(axis=0)[r.coverage], 1.0, atol=1e-5)
    s = r.summary()
    a, b = s["area_mm2"]["A"], s["area_mm2"]["B"]
    tissue_mm2 = (W * 0.6) * (H * 0.6) * (MPP / 1000) ** 2  # margin 0.2 on each side
    assert a + b == pytest.approx(tissue_mm2, rel=0.15)
    assert a == pytest.approx(b, rel=0.25)
    assert s["fields"] == len(r.fields) and s["field_source"] == "default"
    # every field's class is the painted class under its centre, unless it straddles the midline
    for f in r.fields:
        x, y, w, h = f.box
        if x + w <= W / 2 or x >= W / 2:
            assert f.index == int(painter.label(x + w / 2, y + h / 2))


def test_fields_outside_tissue_are_skipped(two_class_result, two_class_slide):
    r = two_class_result
    _, painter = two_class_slide
    kept = {f.box for f in r.fields}
    ys, xs = np.mgrid[0:384:8, 0:512:8] + 4.0
    for y in range(0, H - 384 + 1, 192):
        for x in range(0, W - 512 + 1, 256):
            painted = painter.inside(xs + x, ys + y).mean()  # independent of the thumbnail
            if painted < 0.15:
                assert (x, y, 512, 384) not in kept
            elif painted > 0.35:
                assert (x, y, 512, 384) in kept
    assert all(f.tissue >= 0.25 for f in r.fields)
    assert not r.coverage[0, 0] and not r.coverage[-1, -1]  # the corners are glass
    # the tissue mask sits where the tissue was painted, pixel for pixel at the heatmap's scale
    hh, hw = r.tissue.shape
    ys, xs = (np.arange(hh) + 0.5) * r.downsample, (np.arange(hw) + 0.5) * r.downsample
    truth = painter.inside(xs[None, :], ys[:, None])
    assert (r.tissue == truth).mean() > 0.99


class _Recording:
    """A predictor that logs when batches are queued and when they are collected."""

    def __init__(self, inner):
        self._inner, self.log = inner, []

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def submit_prepared(self, prepared, **kw):
        k = sum(1 for e in self.log if e[0] == "submit")
        self.log.append(("submit", k))
        wait = self._inner.submit_prepared(prepared, **kw)

        def collect():
            self.log.append(("collect", k))
            return wait()

        return collect


def test_next_batch_is_queued_before_the_last_is_blended(colour_predictor, two_class_slide, two_class_result):
    from gusa_core.inference.slide import iter_predict_slide

    path, _ = two_class_slide
    rec = _Recording(colour_predictor)
    result = predict_slide(rec, path, options=SlideOptions(batch_size=4))
    n = len(rec.log) // 2
    assert n >= 3
    # batch k + 1 is on the engine before batch k is collected, and every batch is collected once, in order
    expected = [("submit", 0)] + [e for k in range(n - 1) for e in (("submit", k + 1), ("collect", k))] + [("collect", n - 1)]
    assert rec.log == expected
    np.testing.assert_array_equal(result.probs, two_class_result.probs)  # the same heatmaps as before
    np.testing.assert_array_equal(result.attention, two_class_result.attention)

    stopper = _Recording(colour_predictor)
    records = iter_predict_slide(stopper, path, options=SlideOptions(batch_size=4),
                                 should_stop=lambda: any(e[0] == "collect" for e in stopper.log))
    stages = [r["stage"] for r in records]
    assert stages[-1] == "stopped" and "done" not in stages
    submitted = {k for e, k in stopper.log if e == "submit"}
    assert submitted == {k for e, k in stopper.log if e == "collect"}  # the batch in flight was waited for


def test_geojson_reimports_in_level0_coordinates(two_class_result, tmp_path):
    r = two_class_result
    summary = write_slide_outputs(r, tmp_path / "two")
    assert (tmp_path / "two" / "summary.json").is_file()
    for name in ("heatmap_A.png", "heatmap_B.png", "attention.png", "heatmap_A.tif", "attention.tif"):
        assert name in summary["outputs"] and (tmp_path / "two" / name).is_file()
    back = read_fields_geojson(tmp_path / "two" / "fields.geojson")
    assert [b["box"] for b in back] == [tuple(float(v) for v in f.box) for f in r.fields]
    assert [b["label"] for b in back] == [r.class_names[f.index] for f in r.fields]
    for b, f in zip(back, r.fields):
        assert b["probs"]["A"] == pytest.approx(f.probs[0])
    # the shared GeoJSON reader rasterises the detections where the fields are (level 0 / 16)
    obj = json.loads((tmp_path / "two" / "fields.geojson").read_text(encoding="utf-8"))
    assert obj["features"][0]["properties"]["objectType"] == "detection"
    mask = geojson_to_mask(obj, (H // 16, W // 16), downsample=16) > 0
    expected = np.zeros_like(mask)
    for x, y, w, h in (f.box for f in r.fields):
        expected[y // 16 : (y + h) // 16, x // 16 : (x + w) // 16] = True
    assert (mask == expected).mean() > 0.99


def test_heatmap_tiff_is_a_readable_pyramid(two_class_result, tmp_path):
    from gusa_core.slides import open_slide

    write_slide_outputs(two_class_result, tmp_path / "t")
    with open_slide(tmp_path / "t" / "heatmap_A.tif") as s:
        assert s.dimensions == (two_class_result.probs.shape[2], two_class_result.probs.shape[1])
        assert s.mpp == pytest.approx((MPP * two_class_result.downsample,) * 2, rel=1e-3)
        grey = s.read_region(0, (0, 0, *s.dimensions))[..., 0].astype(float)
    r = two_class_result
    expected = np.where(r.coverage & r.tissue, 1 + np.round(r.probs[0] * 254), 0)
    assert np.abs(grey - expected).max() <= 1


def test_field_settings_come_from_a_slide_trained_run():
    patch_meta = {"training": {"field_mpp": 0.5, "field_size": [1024, 768]}, "train_ids": ["img1"], "validation_ids": []}
    slide_meta = dict(patch_meta, train_ids=["s1@0,0,2048,1536"])
    assert field_settings([patch_meta]).source == "default"
    got = field_settings([slide_meta])
    assert (got.size, got.mpp, got.source) == ((1024, 768), 0.5, "run")
    assert "BACH" in FieldSettings().describe()
