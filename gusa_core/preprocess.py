"""Network inputs as numpy arrays: the pre-processing of :mod:`gusa_core.data` without torch.

Prediction from a cached export (:mod:`gusa_core.engines`) runs with no torch
installed, so the steps every input goes through live here and
:mod:`gusa_core.data` wraps them in tensors for training::

    shrink (area, in halvings) -> Reinhard (optional) -> / 255 -> ImageNet mean / std

The order keeps the work per image small: Reinhard runs on the network's
input size (512x384), not on the 2048x1536 image; its float output goes
straight into the last two steps, which are one pass (OpenCV's
``blobFromImageWithParams``: interleaved in, planar float32 out); and the
work arrays are kept per thread, not allocated per image. A folder of BACH
images spends about 4 ms of one core per image here (10 ms with one area
resize, numpy's normalisation and fresh arrays).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from .imageio import shrink_image
from .scratch import work_array

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "to_array", "preprocess_array"]

#: ImageNet channel means and standard deviations (RGB, for inputs in [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_MEAN = np.asarray(IMAGENET_MEAN, dtype=np.float32) * 255.0
_INV_STD = 1.0 / (np.asarray(IMAGENET_STD, dtype=np.float32) * 255.0)


def _blob_params(scale: float):
    make = getattr(getattr(cv2, "dnn", None), "Image2BlobParams", None)
    if make is None or not hasattr(cv2.dnn, "blobFromImageWithParams"):
        return None
    params = make()
    params.scalefactor = tuple(float(v / scale) for v in _INV_STD)
    params.mean = tuple(float(v * scale) for v in _MEAN)
    params.ddepth = cv2.CV_32F
    params.swapRB = False
    return params


# None with an OpenCV older than 4.8: numpy does the same in three passes
_BLOB = _blob_params(1.0)  # uint8 in [0, 255]
_BLOB01 = _blob_params(1.0 / 255.0)  # float32 in [0, 1] (Reinhard's output)


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
    if _BLOB is not None and image.dtype == np.uint8:
        src = image if image.flags.c_contiguous else np.ascontiguousarray(image)
        return cv2.dnn.blobFromImageWithParams(src, _BLOB)[0]
    x = image.transpose(2, 0, 1).astype(np.float32)  # planar copy first, then in place: fewer passes
    x -= _MEAN[:, None, None]
    x *= _INV_STD[:, None, None]
    return x


def preprocess_array(image: np.ndarray, input_size: Sequence[int], normalizer=None) -> np.ndarray:
    """Pre-process one image for the network (what :func:`gusa_core.data.preprocess` returns, as numpy).

    Parameters
    ----------
    image : ndarray of shape (H, W, 3), uint8
        RGB, any size. Not modified (a read-only memory map is fine).
    input_size : (int, int)
        Network input ``(width, height)``, e.g. ``(512, 384)``.
    normalizer : ReinhardNormalizer or None
        Applied after down-sampling; ``None`` skips colour normalisation.

    Returns
    -------
    ndarray of shape (3, height, width), float32
    """
    small = shrink_image(image, (int(input_size[0]), int(input_size[1])))
    if normalizer is None:
        return to_array(small)
    # Reinhard straight to floats (no rounding to uint8 and back), into a
    # buffer this thread reuses: within half a grey level of
    # ``to_array(normalizer.transform(small))``, in about two thirds of its time.
    rgb = normalizer.transform_float(small, out=work_array("network-rgb", small.shape))
    if _BLOB01 is not None:
        return cv2.dnn.blobFromImageWithParams(rgb, _BLOB01)[0]
    x = rgb.transpose(2, 0, 1) * np.float32(255.0)
    x -= _MEAN[:, None, None]
    x *= _INV_STD[:, None, None]
    return x
