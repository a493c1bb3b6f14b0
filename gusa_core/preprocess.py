"""Network inputs as numpy arrays: the pre-processing of :mod:`gusa_core.data` without torch.

Prediction from a cached export (:mod:`gusa_core.engines`) runs with no torch
installed, so the steps every input goes through live here and
:mod:`gusa_core.data` wraps them in tensors for training::

    resize (area) -> Reinhard (optional) -> / 255 -> ImageNet mean / std
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .imageio import resize_image

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "to_array", "preprocess_array"]

#: ImageNet channel means and standard deviations (RGB, for inputs in [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_MEAN = np.asarray(IMAGENET_MEAN, dtype=np.float32) * 255.0
_INV_STD = 1.0 / (np.asarray(IMAGENET_STD, dtype=np.float32) * 255.0)


def to_array(image: np.ndarray) -> np.ndarray:
    """Turn an RGB image into a normalised network input.

    Parameters
    ----------
    image : ndarray of shape (H, W, 3), uint8
        Not modified.

    Returns
    -------
    ndarray of shape (3, H, W), float32
        ``(image / 255 - mean) / std`` with the ImageNet mean and std.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {image.shape}")
    x = image.transpose(2, 0, 1).astype(np.float32)  # planar copy first, then in place: fewer passes
    x -= _MEAN[:, None, None]
    x *= _INV_STD[:, None, None]
    return x


def preprocess_array(image: np.ndarray, input_size: Sequence[int], normalizer=None) -> np.ndarray:
    """Pre-process one image for the network (what :func:`gusa_core.data.preprocess` returns, as numpy).

    Parameters
    ----------
    image : ndarray of shape (H, W, 3), uint8
        RGB, any size. Not modified.
    input_size : (int, int)
        Network input ``(width, height)``, e.g. ``(512, 384)``.
    normalizer : ReinhardNormalizer or None
        Applied after down-sampling; ``None`` skips colour normalisation.

    Returns
    -------
    ndarray of shape (3, height, width), float32
    """
    small = resize_image(image, (int(input_size[0]), int(input_size[1])))
    if normalizer is not None:
        small = normalizer.transform(small)
    return to_array(small)
