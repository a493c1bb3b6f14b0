"""Reinhard colour normalisation (Reinhard et al., 2001), as used by GuSA.

Each image is converted to the CIE L*a*b* colour space, and every channel is
shifted and scaled so that its mean and standard deviation match those of a
reference image: ``out = (lab - mean_src) / std_src * std_ref + mean_ref``.

LAB convention: CIE L*a*b* with the D65 white point and the sRGB transfer
curve, L* in [0, 100] and a*, b* around 0 -- the same numbers as
``skimage.color.rgb2lab``. The conversion is OpenCV's float32 ``cvtColor``
(fast, and within 0.5 LAB units of the exact formula). torchstain stores L*
scaled by 2.55 and a*, b* shifted by 128 (OpenCV's 8-bit layout); Reinhard's
per-channel standardisation is invariant to such affine rescaling, so both
give the same images (see ``tests/core/test_stain.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .scratch import work_array

__all__ = ["ReinhardNormalizer", "rgb_to_lab", "lab_to_rgb", "DEFAULT_REFERENCE_PATH"]

#: The reference shipped with gusa_core (statistics of a real H&E image).
DEFAULT_REFERENCE_PATH = Path(__file__).resolve().parent / "assets" / "reinhard_reference.json"

_EPS = 1e-6



def _as_float_rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB image of shape (H, W, 3), got {image.shape}")
    if image.dtype == np.uint8:
        out = image.astype(np.float32)
        out *= np.float32(1.0 / 255.0)
        return out
    if image.dtype.kind == "f":
        return np.ascontiguousarray(image, dtype=np.float32)
    raise ValueError(f"expected uint8 or float RGB in [0, 1], got {image.dtype}")


def rgb_to_lab(image: np.ndarray) -> np.ndarray:
    """Convert RGB to CIE L*a*b* (D65).

    Parameters
    ----------
    image : ndarray of shape (H, W, 3)
        uint8 RGB, or float RGB in [0, 1]. Not modified.

    Returns
    -------
    lab : ndarray of shape (H, W, 3), float32
        L* in [0, 100]; a*, b* roughly in [-128, 127].
    """
    return cv2.cvtColor(_as_float_rgb(image), cv2.COLOR_RGB2Lab)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """Convert CIE L*a*b* (D65) to RGB.

    Parameters
    ----------
    lab : ndarray of shape (H, W, 3)
        As returned by :func:`rgb_to_lab`. Not modified.

    Returns
    -------
    image : ndarray of shape (H, W, 3), float32
        RGB clipped to [0, 1].
    """
    lab = np.ascontiguousarray(lab, dtype=np.float32)
    rgb = cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)
    return np.clip(rgb, 0.0, 1.0, out=rgb)


def _lab_stats(lab: np.ndarray, *, ignore_background: bool, background_l: float) -> tuple[np.ndarray, np.ndarray]:
    if ignore_background:
        tissue = (lab[:, :, 0] < background_l).astype(np.uint8)
        if int(tissue.sum()) >= 16:
            mean, std = cv2.meanStdDev(lab, mask=tissue)
            return mean.ravel(), std.ravel()
    mean, std = cv2.meanStdDev(lab)
    return mean.ravel(), std.ravel()


class ReinhardNormalizer:
    """Match an image's LAB mean and standard deviation to a reference.

    Parameters
    ----------
    mean, std : sequence of 3 floats, optional
        Reference statistics per L*, a*, b* channel; set by :meth:`fit`.
    ignore_background : bool
        Compute statistics (of the reference and of each image) only over
        pixels darker than ``background_l``, so white glass does not count.
        Off by default, as in torchstain and Reinhard's paper.
    background_l : float
        L* above which a pixel is background when ``ignore_background``.

    Examples
    --------
    >>> norm = ReinhardNormalizer().fit(reference_image)      # doctest: +SKIP
    >>> out = norm.transform(image)                           # doctest: +SKIP
    """

    def __init__(
        self,
        mean=None,
        std=None,
        *,
        ignore_background: bool = False,
        background_l: float = 90.0,
    ):
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float64).reshape(3)
        self.std = None if std is None else np.asarray(std, dtype=np.float64).reshape(3)
        self.ignore_background = bool(ignore_background)
        self.background_l = float(background_l)
        self.source: str = ""

    @property
    def fitted(self) -> bool:
        """True once reference statistics are known."""
        return self.mean is not None and self.std is not None

    def fit(self, image: np.ndarray) -> "ReinhardNormalizer":
        """Take the reference statistics from ``image``.

        Parameters
        ----------
        image : ndarray of shape (H, W, 3), uint8
            The reference image. Not modified.

        Returns
        -------
        self : ReinhardNormalizer
        """
        mean, std = self.stats(image)
        self.mean, self.std = mean, std
        return self

    def stats(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """LAB mean and standard deviation per channel of ``image`` (float64, shape (3,))."""
        lab = rgb_to_lab(image)
        return _lab_stats(lab, ignore_background=self.ignore_background, background_l=self.background_l)

    def transform(self, image: np.ndarray) -> np.ndarray:
        """Normalise ``image`` to the reference's colour statistics.

        Parameters
        ----------
        image : ndarray of shape (H, W, 3), uint8
            Not modified.

        Returns
        -------
        normalised : ndarray of shape (H, W, 3), uint8
        """
        rgb = self.transform_float(image)
        rgb *= np.float32(255.0)
        rgb += np.float32(0.5)
        np.clip(rgb, 0.0, 255.0, out=rgb)
        return rgb.astype(np.uint8)

    def transform_float(self, image: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
        """:meth:`transform` without the rounding to uint8: float32 RGB in [0, 1].

        The network input needs floats anyway (:func:`gusa_core.preprocess.preprocess_array`),
        so rounding to uint8 in between only adds work; the two differ by at
        most half a grey level.

        Parameters
        ----------
        image : ndarray of shape (H, W, 3), uint8
            Not modified.
        out : ndarray of shape (H, W, 3), float32, optional
            Written and returned (reuse it across images of one size).

        Returns
        -------
        ndarray of shape (H, W, 3), float32
        """
        if not self.fitted:
            raise RuntimeError("ReinhardNormalizer has no reference: call fit() or use default()")
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an RGB image of shape (H, W, 3), got {image.shape}")
        if out is None:
            out = np.empty(image.shape, dtype=np.float32)
        elif out.shape != image.shape or out.dtype != np.float32:
            raise ValueError(f"out must be float32 of shape {image.shape}, got {out.dtype} {out.shape}")
        rgb, lab = work_array("reinhard-rgb", image.shape), work_array("reinhard-lab", image.shape)
        if image.dtype == np.uint8:
            np.multiply(image, np.float32(1.0 / 255.0), out=rgb)
        else:
            rgb[...] = _as_float_rgb(image)
        lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab, dst=lab)
        mean, std = _lab_stats(lab, ignore_background=self.ignore_background, background_l=self.background_l)
        scale = self.std / np.maximum(std, _EPS)
        shift = self.mean - mean * scale
        # One pass over the pixels: lab' = lab * scale + shift, per channel.
        matrix = np.concatenate([np.diag(scale), shift[:, None]], axis=1).astype(np.float32)
        lab2 = cv2.transform(lab, matrix, dst=rgb)
        res = cv2.cvtColor(lab2, cv2.COLOR_Lab2RGB, dst=out)
        if res is not out:  # OpenCV wrote elsewhere (it never should for a matching array)
            out[...] = res
        return np.clip(out, 0.0, 1.0, out=out)

    __call__ = transform

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description (stored in ``model.json`` beside the weights)."""
        if not self.fitted:
            raise RuntimeError("ReinhardNormalizer has no reference to save")
        d = {
            "method": "reinhard",
            "lab": "CIE L*a*b* D65 (L in [0, 100])",
            "mean": [float(v) for v in self.mean],
            "std": [float(v) for v in self.std],
            "ignore_background": self.ignore_background,
            "background_l": self.background_l,
        }
        if self.source:
            d["source"] = self.source
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ReinhardNormalizer":
        """Rebuild a normaliser from :meth:`to_dict`'s output.

        Raises
        ------
        ValueError
            The dictionary is not a Reinhard reference.
        """
        if not isinstance(d, dict) or d.get("method", "reinhard") != "reinhard":
            raise ValueError(f"not a Reinhard reference: {d!r:.200}")
        try:
            mean = np.asarray(d["mean"], dtype=np.float64).reshape(3)
            std = np.asarray(d["std"], dtype=np.float64).reshape(3)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"Reinhard reference needs 3 'mean' and 3 'std' values: {exc}") from None
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std > 0)):
            raise ValueError("Reinhard reference must have finite means and positive standard deviations")
        norm = cls(
            mean,
            std,
            ignore_background=bool(d.get("ignore_background", False)),
            background_l=float(d.get("background_l", 90.0)),
        )
        norm.source = str(d.get("source", ""))
        return norm

    @classmethod
    def default(cls) -> "ReinhardNormalizer":
        """The reference shipped in ``gusa_core/assets/reinhard_reference.json``."""
        with open(DEFAULT_REFERENCE_PATH, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))

    def __repr__(self) -> str:
        if not self.fitted:
            return "ReinhardNormalizer(unfitted)"
        m = ", ".join(f"{v:.2f}" for v in self.mean)
        s = ", ".join(f"{v:.2f}" for v in self.std)
        return f"ReinhardNormalizer(mean=[{m}], std=[{s}])"
