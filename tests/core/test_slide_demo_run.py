"""A run trained on the demo project, swept over a slide drawn half Normal, half Invasive.

The slide is tiled with demo fields (:func:`gusa_core.demo.generate_field`) at a pixel size where
each one is exactly the BACH field footprint that ``predict-slide`` reads for a run trained on
patch images, so every field the sweep reads looks like a demo image at the run's magnification.
The run is real: ``fa-gusa`` from random weights on the whole four-class demo project (30 training
images), 64x48 input, lr 1e-3, ``EPOCHS`` epochs; about 20 CPU-seconds of training.

Seeds 0, 1, 2 (measured when this was written, step schedule / cosine schedule): away from the
midline and the glass, 100/100 %, 93/98 %, 100/100 % of the left half is Normal and 100 % of the
right half Invasive; mean P(Normal) left minus right 0.85/0.82, 0.56/0.64, 0.96/0.94; mean
P(Invasive) right minus left 0.91/0.90, 0.82/0.92, 0.99/0.97. Without precise BatchNorm
(``TrainConfig.precise_bn``) such a run called half the invasive fields normal.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from slide_fixtures import DemoHalvesPainter, write_pyramid_tiff

from gusa_core.demo import demo_mpp, write_demo_project
from gusa_core.inference import Predictor
from gusa_core.inference.slide import SlideOptions, predict_slide

LEFT, RIGHT = "Normal", "Invasive"
DEMO_SIZE = (256, 192)  # one demo image = one BACH field (860 x 645 µm) at 3.36 µm/px
MPP = demo_mpp(DEMO_SIZE)
CELL = DEMO_SIZE  # level-0 footprint of a field on the slide
MARGIN = (CELL[0] // 2, CELL[1] // 2)  # glass around the tissue
W, H = 4 * CELL[0] + 2 * MARGIN[0], 3 * CELL[1] + 2 * MARGIN[1]  # 2 x 3 fields of each class
SEED = 0
EPOCHS = 8


def train_demo_run(root, *, seed: int = SEED, epochs: int = EPOCHS, **overrides):
    """Write the demo project under ``root`` and train ``fa-gusa`` on it from random weights; the run folder.

    One torch thread: the same weights whatever the machine's cores (and on a shared machine no
    slower than two), fp32: the same arithmetic whatever the CPU's bf16 support.
    """
    import torch

    from gusa_core.training import TrainConfig, Trainer

    project = write_demo_project(root / "demo", seed=seed, per_class=10, unlabelled=0, size=DEMO_SIZE)
    settings = dict(variant="fa-gusa", folds=1, val_fraction=0.25, epochs=epochs, batch_size=5, input_size=(64, 48),
                    lr=1e-3, pretrained="none", seed=seed, workers=0, device="cpu", precision="fp32")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        Trainer(project, root / "run", TrainConfig(**{**settings, **overrides})).run()
    finally:
        torch.set_num_threads(threads)
    return root / "run"


def draw_halves_slide(folder, *, seed: int = SEED):
    """The slide: ``LEFT`` fields on the left half, ``RIGHT`` fields on the right; ``(path, painter)``."""
    painter = DemoHalvesPainter(W, H, (LEFT, RIGHT), mpp=MPP, margin=MARGIN, seed=seed + 1)
    path = write_pyramid_tiff(folder / "halves.tif", W, H, painter=painter, mpp=MPP, levels=[1, 4], tile=256)
    return path, painter


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """The run folder of ``fa-gusa`` trained from random weights on the demo project (shared, read-only)."""
    return train_demo_run(tmp_path_factory.mktemp("demo_run"))


@pytest.fixture(scope="session")
def halves_slide(tmp_path_factory):
    return draw_halves_slide(tmp_path_factory.mktemp("halves"))


@pytest.fixture(scope="session")
def halves_result(demo_run, halves_slide):
    run_dir = demo_run
    predictor = Predictor.from_run(run_dir, device="cpu", backend="torch")
    return predict_slide(predictor, halves_slide[0], options=SlideOptions(batch_size=8))


def _halves(r, *, inset: float):
    """Valid heatmap pixels of the left and right halves, ``inset`` level-0 pixels clear of the midline and the glass."""
    hh, hw = r.tissue.shape
    xs = (np.arange(hw) + 0.5) * r.downsample
    ys = (np.arange(hh) + 0.5) * r.downsample
    rows = (ys >= MARGIN[1] + inset) & (ys < H - MARGIN[1] - inset)
    left = (xs >= MARGIN[0] + inset) & (xs < W / 2 - inset)
    right = (xs >= W / 2 + inset) & (xs < W - MARGIN[0] - inset)
    return r.valid & rows[:, None] & left[None, :], r.valid & rows[:, None] & right[None, :]


def test_fields_are_read_at_the_demo_scale(halves_result):
    r = halves_result
    assert r.settings.source == "default"  # trained on patch images: the BACH field is assumed
    assert r.footprint == pytest.approx(CELL)  # ... which is one demo image at the slide's pixel size
    assert r.mpp == pytest.approx((MPP, MPP))


def test_class_map_halves_follow_the_drawn_classes(halves_result):
    r = halves_result
    a, b = r.class_names.index(LEFT), r.class_names.index(RIGHT)
    labels = r.label_map
    # half a field clear of the midline and the glass: every field under a pixel shows one class
    left, right = _halves(r, inset=CELL[0] / 2)
    assert left.sum() > 20 and right.sum() > 20
    assert np.mean(labels[left] == a) >= 0.9
    assert np.mean(labels[right] == b) >= 0.9
    # the whole of each half: mostly as drawn, though fields half on glass are unlike any demo image
    left, right = _halves(r, inset=0.0)
    assert np.mean(labels[left] == a) >= 0.6
    assert np.mean(labels[right] == b) >= 0.6


def test_probability_maps_differ_as_drawn(halves_result):
    r = halves_result
    a, b = r.class_names.index(LEFT), r.class_names.index(RIGHT)
    left, right = _halves(r, inset=CELL[0] / 2)
    pa, pb = r.probs[a], r.probs[b]
    assert pa[left].mean() - pa[right].mean() > 0.4
    assert pb[right].mean() - pb[left].mean() > 0.4
    # on average over each half its own class is the most probable of the four
    assert np.argmax(r.probs[:, left].mean(axis=1)) == a
    assert np.argmax(r.probs[:, right].mean(axis=1)) == b
    # the per-field answers agree: fields wholly inside one half are that half's class
    inside = [f for f in r.fields if f.tissue > 0.9 and (f.box[0] + f.box[2] <= W / 2 or f.box[0] >= W / 2)]
    expected = [a if f.box[0] + f.box[2] <= W / 2 else b for f in inside]
    assert len(inside) >= 12
    assert np.mean([f.index == e for f, e in zip(inside, expected)]) >= 0.9


def test_predict_slide_command_reports_both_halves(demo_run, halves_slide, tmp_path):
    from gusa_core.cli.main import main

    run_dir = demo_run
    out = tmp_path / "out"
    assert main(["predict-slide", str(run_dir), str(halves_slide[0]), "--out", str(out), "--no-tiff",
                 "--backend", "torch", "--device", "cpu"]) == 0
    summary = json.loads((out / "halves" / "summary.json").read_text(encoding="utf-8"))
    areas = summary["area_mm2"]
    tissue = sum(areas.values())
    drawn = (W - 2 * MARGIN[0]) * (H - 2 * MARGIN[1]) * (MPP / 1000) ** 2
    assert tissue == pytest.approx(drawn, rel=0.1)
    assert areas[LEFT] >= 0.3 * tissue and areas[RIGHT] >= 0.3 * tissue
    assert areas[LEFT] + areas[RIGHT] >= 0.7 * tissue  # the rest: edge fields half on glass
    for name in ("heatmap_Normal.png", "heatmap_Invasive.png", "attention.png", "fields.geojson"):
        assert (out / "halves" / name).is_file()


def test_a_demo_image_is_one_bach_field():
    from gusa_core.demo import generate_field, generate_tissue
    from gusa_core.slides.fields import field_footprint

    assert demo_mpp((512, 384)) == pytest.approx(1.68)
    image, mask = generate_field("InSitu", mpp=MPP, rng=3)
    assert image.shape == (DEMO_SIZE[1], DEMO_SIZE[0], 3) and mask.shape == image.shape[:2]
    np.testing.assert_array_equal(image, generate_tissue("InSitu", size=DEMO_SIZE, rng=3)[0])
    assert field_footprint((MPP, MPP)) == pytest.approx(DEMO_SIZE)  # predict-slide's field on this slide
    with pytest.raises(ValueError):
        generate_field("InSitu", mpp=0.0)
