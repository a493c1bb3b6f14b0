"""gusa_core.augment: the mask follows the image through every geometric transform."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from gusa_core.augment import AugmentParams, Augmenter


def _shape_image(h=96, w=128):
    """A dark background with a bright, sharp, asymmetric shape (an 'L' plus a disc)."""
    img = np.full((h, w, 3), 40, np.uint8)
    img[15:70, 20:35] = (230, 180, 210)
    img[55:70, 20:80] = (230, 180, 210)
    cv2.circle(img, (95, 30), 14, (230, 180, 210), -1)
    mask = np.where(img[..., 0] > 128, 255, 0).astype(np.uint8)
    return img, mask


def _iou(a, b):
    a, b = a > 0, b > 0
    return (a & b).sum() / max(1, (a | b).sum())


@pytest.mark.parametrize("seed", range(6))
def test_mask_stays_aligned(seed):
    img, mask = _shape_image()
    aug = Augmenter(flip=True, rotate=45, noise_std=0, intensity=0, seed=seed)
    out, out_mask = aug(img, mask)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert out_mask.shape == mask.shape and out_mask.dtype == np.uint8
    assert set(np.unique(out_mask)) <= {0, 255}  # nearest neighbour: still binary
    rethresholded = out[..., 0] > 128
    assert _iou(out_mask, rethresholded) > 0.95


def test_something_actually_moves():
    img, mask = _shape_image()
    params = AugmentParams(flip_h=True, flip_v=False, angle=30.0)
    out, out_mask = Augmenter().apply(img, mask, params)
    assert _iou(out_mask, mask) < 0.8
    assert _iou(out_mask, out[..., 0] > 128) > 0.95
    # A pure left-right mirror is exact.
    out, out_mask = Augmenter().apply(img, mask, AugmentParams(flip_h=True))
    np.testing.assert_array_equal(out, img[:, ::-1])
    np.testing.assert_array_equal(out_mask, mask[:, ::-1])


def test_same_seed_same_result_and_input_untouched():
    img, mask = _shape_image()
    img0, mask0 = img.copy(), mask.copy()
    a = Augmenter(seed=7)
    b = Augmenter(seed=7)
    for _ in range(3):
        ia, ma = a(img, mask)
        ib, mb = b(img, mask)
        np.testing.assert_array_equal(ia, ib)
        np.testing.assert_array_equal(ma, mb)
    np.testing.assert_array_equal(img, img0)
    np.testing.assert_array_equal(mask, mask0)
    ic, _ = Augmenter(seed=8)(img, mask)
    assert not np.array_equal(ic, Augmenter(seed=7)(img, mask)[0])


def test_noise_and_intensity_change_values_only():
    img, mask = _shape_image()
    aug = Augmenter(flip=False, rotate=False, noise_std=10, intensity=0.2, seed=0)
    out, out_mask = aug(img, mask)
    np.testing.assert_array_equal(out_mask, mask)
    assert out.dtype == np.uint8 and out.shape == img.shape
    assert 0 < np.abs(out.astype(int) - img).mean() < 60
    # Without any augmentation: an equal copy, not the same object.
    still, m2 = Augmenter(flip=False, rotate=False, noise_std=0, intensity=0)(img, mask)
    np.testing.assert_array_equal(still, img)
    assert still is not img and m2 is not mask


def test_mask_may_be_none_and_float_images():
    img, _ = _shape_image()
    out, m = Augmenter(seed=1)(img)
    assert m is None and out.shape == img.shape
    f = img.astype(np.float32) / 255
    out, _ = Augmenter(seed=1)(f)
    assert out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1


def test_mismatched_mask_rejected():
    img, mask = _shape_image()
    with pytest.raises(ValueError):
        Augmenter()(img, mask[:10])
