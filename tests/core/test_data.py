"""Network inputs: pre-processing, the project dataset, seeded sampling and fold splits."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from gusa_core.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ProjectDataset,
    SeededSampler,
    preprocess,
    resize_mask,
    to_tensor,
)
from gusa_core.errors import GusaError
from gusa_core.training.splits import make_folds

SIZE = (64, 48)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    from gusa_core.demo import write_demo_project

    return write_demo_project(tmp_path_factory.mktemp("data") / "demo", seed=1, per_class=3, unlabelled=1, size=(128, 96))


def test_to_tensor_applies_imagenet_mean_and_std():
    image = np.zeros((4, 6, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 0, 128, 255
    x = to_tensor(image)
    assert x.shape == (3, 4, 6) and x.dtype == torch.float32
    for c, v in enumerate((0, 128, 255)):
        expected = (v / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
        assert torch.allclose(x[c], torch.full((4, 6), expected), atol=1e-5)


def test_preprocess_resizes_with_area_then_normalises_colour():
    import cv2

    from gusa_core.stain import ReinhardNormalizer

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
    before = image.copy()
    x = preprocess(image, SIZE, None)
    assert x.shape == (3, 48, 64)
    np.testing.assert_array_equal(image, before)  # input untouched
    small = cv2.resize(image, SIZE, interpolation=cv2.INTER_AREA)
    assert torch.allclose(x, to_tensor(small), atol=1e-5)
    norm = ReinhardNormalizer.default()
    y = preprocess(image, SIZE, norm)
    # Reinhard after down-sampling, its floats used without rounding to uint8: within half a grey level
    half_level = 0.5 / 255 / min(IMAGENET_STD) + 1e-5
    assert torch.allclose(y, to_tensor(norm.transform(small)), atol=half_level)
    assert not torch.equal(y, to_tensor(norm.transform(small)))  # not rounded


def test_resize_mask_is_area_majority():
    mask = np.zeros((8, 8), np.uint8)
    mask[:, :5] = 255  # columns 0-4 RoI
    out = resize_mask(mask, (4, 4))  # each output pixel covers 2 columns
    assert out.dtype == bool
    np.testing.assert_array_equal(out[0], [True, True, False, False])  # cols 4-5: half -> not > 0.5


def test_project_dataset_items(project):
    labelled = [r for r in project.images if r.label is not None]
    ids = [r.id for r in labelled]
    ds = ProjectDataset(project, ids, input_size=SIZE, normalizer=None)
    assert len(ds) == len(ids)
    for i, rec in enumerate(labelled):
        x, label, mask, has_mask = ds[i]
        assert x.shape == (3, 48, 64) and x.dtype == torch.float32
        assert label == project.classes.index(rec.label)
        assert mask.shape == (1, 48, 64) and mask.dtype == torch.float32
        assert set(torch.unique(mask).tolist()) <= {0.0, 1.0}
        assert has_mask == (rec.mask is not None)
        if rec.mask is None:
            assert mask.sum() == 0
        else:
            expected = resize_mask(project.load_mask(rec.id), SIZE)
            np.testing.assert_array_equal(mask[0].numpy() > 0, expected)
            assert mask.sum() > 0
    # the image matches an independent resize of the file
    from gusa_core.imageio import read_image, resize_image

    x0 = ds[0][0]
    assert torch.allclose(x0, to_tensor(resize_image(read_image(project.image_path(ids[0])), SIZE)), atol=1e-5)


def test_dataset_never_decodes_full_images_twice(project, monkeypatch):
    import gusa_core.imageio as imageio_mod
    from gusa_core.imageio import DownsampleCache

    ids = [r.id for r in project.images if r.label is not None][:4]
    calls = []
    real = imageio_mod.read_image

    def counting(path):
        calls.append(path)
        return real(path)

    monkeypatch.setattr(imageio_mod, "read_image", counting)
    ds = ProjectDataset(project, ids, input_size=(32, 32), normalizer=None, cache=DownsampleCache(project.cache_dir))
    for _ in range(3):  # three "epochs"
        for i in range(len(ds)):
            ds[i]
    assert len(calls) == len(ids)
    # a fresh dataset (new process, new epoch) reads the small copies from cache/, not the images
    ds2 = ProjectDataset(project, ids, input_size=(32, 32), normalizer=None, cache=DownsampleCache(project.cache_dir))
    for i in range(len(ds2)):
        ds2[i]
    assert len(calls) == len(ids)


def test_augmentation_is_a_function_of_the_sample_seed(project):
    from gusa_core.augment import Augmenter

    ids = [r.id for r in project.images if r.mask is not None][:2]
    ds = ProjectDataset(project, ids, input_size=SIZE, normalizer=None, augmenter=Augmenter())
    a, b = ds[(0, 123)], ds[(0, 123)]
    assert torch.equal(a[0], b[0]) and torch.equal(a[2], b[2])
    c = ds[(0, 124)]
    assert not torch.equal(a[0], c[0])
    plain = ProjectDataset(project, ids, input_size=SIZE, normalizer=None)[0]
    assert a[2].sum() > 0 and plain[2].sum() > 0


def test_loader_workers_do_not_change_the_data(project):
    from torch.utils.data import DataLoader

    from gusa_core.augment import Augmenter

    ids = [r.id for r in project.images if r.label is not None]
    ds = ProjectDataset(project, ids, input_size=SIZE, normalizer=None, augmenter=Augmenter())

    def batches(workers):
        sampler = SeededSampler(len(ds), seed=3)
        sampler.set_epoch(2)
        loader = DataLoader(ds, batch_size=4, sampler=sampler, num_workers=workers)
        return [b for b in loader]

    for (x0, y0, m0, h0), (x1, y1, m1, h1) in zip(batches(0), batches(1)):
        assert torch.equal(x0, x1) and torch.equal(y0, y1) and torch.equal(m0, m1) and torch.equal(h0, h1)


def test_seeded_sampler_order_and_ranks():
    s = SeededSampler(10, seed=5)
    s.set_epoch(0)
    e0 = list(s)
    assert sorted(i for i, _ in e0) == list(range(10))
    assert list(s) == e0  # repeatable
    s.set_epoch(1)
    assert list(s) != e0
    parts = []
    for rank in range(2):
        r = SeededSampler(10, seed=5, rank=rank, world_size=2)
        r.set_epoch(0)
        parts.append([i for i, _ in r])
    assert len(parts[0]) == len(parts[1]) == 5
    assert sorted(parts[0] + parts[1]) == list(range(10))


def test_stratified_k_fold():
    labels = [c for c in range(4) for _ in range(8)]
    splits, messages = make_folds(labels, folds=4, seed=0)
    assert messages == [] and len(splits) == 4
    seen = []
    for tr, va in splits:
        assert set(tr).isdisjoint(va) and len(tr) + len(va) == 32
        assert Counter(labels[i] for i in va) == {0: 2, 1: 2, 2: 2, 3: 2}  # 25 % of every class
        seen += list(va)
    assert sorted(seen) == list(range(32))
    again, _ = make_folds(labels, folds=4, seed=0)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(splits, again))


def test_single_split_and_fallbacks():
    labels = [c for c in range(4) for _ in range(8)]
    (tr, va), = make_folds(labels, folds=1, val_fraction=0.25, seed=0)[0]
    assert len(va) == 8 and Counter(labels[i] for i in va) == {0: 2, 1: 2, 2: 2, 3: 2}
    thin = [0, 0, 0, 0, 1, 1, 2, 2, 2, 2]
    splits, messages = make_folds(thin, folds=4, seed=0)
    assert len(splits) == 4 and any("fewer images than folds" in m for m in messages)
    splits, messages = make_folds([0, 1, 2], folds=2, seed=0)
    assert len(splits) == 2 and any("not stratified" in m for m in messages)
    with pytest.raises(GusaError, match="at least 4 labelled images"):
        make_folds([0, 1, 0], folds=4)
    with pytest.raises(GusaError, match="at least 2"):
        make_folds([0], folds=1)


def test_dataset_pickles_for_spawned_workers(project):
    import pickle

    from gusa_core.augment import Augmenter
    from gusa_core.stain import ReinhardNormalizer

    ids = [r.id for r in project.images if r.mask is not None][:2]
    ds = ProjectDataset(project, ids, input_size=SIZE, normalizer=ReinhardNormalizer.default(), augmenter=Augmenter())
    clone = pickle.loads(pickle.dumps(ds))
    a, b = ds[(1, 9)], clone[(1, 9)]
    assert all(torch.equal(u, v) for u, v in zip(a[:1] + a[2:3], b[:1] + b[2:3])) and a[1] == b[1]


def test_wrong_size_mask_is_refused_naming_the_file(project, tmp_path):
    import cv2

    from gusa_core.errors import MaskError

    rec = next(r for r in project.images if r.mask is not None)
    ds = ProjectDataset(project, [rec.id], input_size=SIZE, normalizer=None)
    path = ds.mask_paths[0]
    original = path.read_bytes()
    try:
        cv2.imwrite(str(path), np.zeros((10, 10), np.uint8))
        with pytest.raises(MaskError) as info:
            ProjectDataset(project, [rec.id], input_size=SIZE, normalizer=None)[0]
        assert info.value.path == str(path)
    finally:
        path.write_bytes(original)
