"""gusa_core.demo: synthetic H&E images and the demo project."""

from __future__ import annotations

import numpy as np
import pytest

from gusa_core import DEFAULT_CLASSES
from gusa_core.demo import generate_tissue, write_demo_project
from gusa_core.imageio import read_image
from gusa_core.stain import rgb_to_lab

SMALL = (128, 96)


@pytest.mark.parametrize("label", DEFAULT_CLASSES)
def test_generate_tissue_shapes_and_colours(label):
    image, mask = generate_tissue(label, size=(256, 192), rng=np.random.default_rng(0))
    assert image.shape == (192, 256, 3) and image.dtype == np.uint8
    assert mask.shape == (192, 256) and mask.dtype == np.uint8
    assert set(np.unique(mask)) <= {0, 255} and mask.any()
    # H&E palette: pink-purple (a* > 0, b* < 0 on average), neither black nor white.
    lab = rgb_to_lab(image).reshape(-1, 3).mean(0)
    assert 35 < lab[0] < 85 and lab[1] > 10 and lab[2] < 0


def test_classes_differ_where_a_pathologist_looks():
    """Invasive and in situ carry more (and darker) haematoxylin than normal tissue."""
    rng = np.random.default_rng(1)

    def nuclear_fraction(label):
        fr = []
        for _ in range(3):
            img, _ = generate_tissue(label, size=(256, 192), rng=rng)
            lab = rgb_to_lab(img)
            fr.append(((lab[..., 0] < 45) & (lab[..., 2] < -10)).mean())  # dark blue-purple pixels
        return np.mean(fr)

    normal, invasive = nuclear_fraction("Normal"), nuclear_fraction("Invasive")
    assert invasive > 2 * normal


def test_generate_tissue_is_seeded():
    a = generate_tissue("InSitu", size=SMALL, rng=np.random.default_rng(5))
    b = generate_tissue("InSitu", size=SMALL, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    with pytest.raises(ValueError):
        generate_tissue("Cancer", size=SMALL, rng=np.random.default_rng(0))


def test_write_demo_project(tmp_path):
    from gusa_core.project import Project

    project = write_demo_project(tmp_path / "demo", seed=3, per_class=5, unlabelled=3, size=(128, 96))
    reopened = Project.open(tmp_path / "demo")
    assert list(reopened.classes) == list(DEFAULT_CLASSES)
    assert len(reopened.images) == len(project.images) == 4 * 5 + 3
    labels = [r.label for r in reopened.images]
    for c in DEFAULT_CLASSES:
        assert labels.count(c) == 5
    assert labels.count(None) == 3
    masked = [r for r in reopened.images if r.mask is not None]
    assert 0 < len(masked) < 20  # some labelled images have masks, not all
    assert all(r.label is not None for r in masked)
    for r in masked:
        mask = reopened.load_mask(r.id)
        assert mask.shape == (96, 128) and mask.any()
    for r in reopened.images:
        path = reopened.image_path(r.id)
        assert path.parent == (tmp_path / "demo" / "images").resolve() or path.parent.name == "images"
        assert read_image(path).shape == (96, 128, 3)


def test_write_demo_project_is_deterministic(tmp_path):
    from gusa_core.project import Project

    write_demo_project(tmp_path / "a", seed=9, per_class=2, unlabelled=1, size=(96, 72))
    write_demo_project(tmp_path / "b", seed=9, per_class=2, unlabelled=1, size=(96, 72))
    pa, pb = Project.open(tmp_path / "a"), Project.open(tmp_path / "b")
    assert [(r.id, r.label, r.mask) for r in pa.images] == [(r.id, r.label, r.mask) for r in pb.images]
    for ra, rb in zip(pa.images, pb.images):
        np.testing.assert_array_equal(read_image(pa.image_path(ra.id)), read_image(pb.image_path(rb.id)))
        if ra.mask:
            np.testing.assert_array_equal(pa.load_mask(ra.id), pb.load_mask(rb.id))


def test_write_demo_project_with_uneven_classes(tmp_path):
    from gusa_core.project import Project

    counts = {"Normal": 4, "Benign": 2, "Invasive": 1}
    write_demo_project(tmp_path / "uneven", seed=2, per_class=counts, unlabelled=0, size=(96, 72), masked_fraction=1.0)
    project = Project.open(tmp_path / "uneven")
    labels = [r.label for r in project.images]
    assert {c: labels.count(c) for c in DEFAULT_CLASSES} == {"Normal": 4, "Benign": 2, "InSitu": 0, "Invasive": 1}
    assert all(r.mask is not None for r in project.images if r.label != "Normal")  # every drawn class has masks
    with pytest.raises(ValueError, match="unknown demo classes"):
        write_demo_project(tmp_path / "bad", per_class={"Tumour": 2})


def test_a_small_focus_keeps_the_lesion_in_part_of_a_normal_field():
    whole, whole_mask = generate_tissue("Invasive", size=(256, 192), rng=4)
    image, mask = generate_tissue("Invasive", size=(256, 192), rng=4, focus=0.15)
    assert image.shape == whole.shape and image.dtype == np.uint8
    share = (mask > 0).mean()
    assert 0.02 < share <= 0.2 < (whole_mask > 0).mean()  # the RoI shrinks to the focus
    np.testing.assert_array_equal(generate_tissue("Invasive", size=(256, 192), rng=4, focus=0.15)[0], image)
    normal, _ = generate_tissue("Normal", size=(256, 192), rng=4, focus=0.15)  # Normal has no lesion to keep
    np.testing.assert_array_equal(normal, generate_tissue("Normal", size=(256, 192), rng=4)[0])
    with pytest.raises(ValueError, match="focus"):
        generate_tissue("Benign", size=(64, 48), focus=1.5)


def test_write_demo_project_small_focus_changes_only_lesion_images(tmp_path):
    from gusa_core.project import Project

    write_demo_project(tmp_path / "a", seed=5, per_class=2, unlabelled=0, size=(96, 72))
    write_demo_project(tmp_path / "b", seed=5, per_class=2, unlabelled=0, size=(96, 72), small_focus=1.0)
    pa, pb = Project.open(tmp_path / "a"), Project.open(tmp_path / "b")
    for ra, rb in zip(pa.images, pb.images):
        same = np.array_equal(read_image(pa.image_path(ra.id)), read_image(pb.image_path(rb.id)))
        assert same == (ra.label == "Normal"), ra.id
