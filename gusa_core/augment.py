"""Training-time augmentation of an image and its RoI mask.

The paper's augmentation (GUSA.md): horizontal and vertical mirroring, random
rotation, additive random noise and a random intensity change. The mask
follows every geometric transform exactly: flips and rotation are folded into
one affine matrix that warps the image (bilinear) and the mask (nearest
neighbour) alike, so they stay aligned pixel for pixel.

BACH images are 4:3, so rotation is by an arbitrary angle about the centre,
keeping the size, with the borders filled by reflection (tissue, not black
corners); the two mirrorings together also give 180-degree turns.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["Augmenter", "AugmentParams"]


@dataclass(frozen=True)
class AugmentParams:
    """One draw of the random parameters (for inspection and tests)."""

    flip_h: bool = False
    flip_v: bool = False
    angle: float = 0.0  # degrees, counter-clockwise
    contrast: float = 1.0  # multiplies the values
    brightness: float = 0.0  # added, in grey levels of 0..255
    noise_std: float = 0.0  # Gaussian noise, grey levels of 0..255


class Augmenter:
    """Random mirroring, rotation, noise and intensity change.

    Parameters
    ----------
    flip : bool
        Mirror left-right and top-bottom, each with probability 1/2.
    rotate : bool or float
        Rotate by an angle drawn uniformly from ``[-a, a]`` degrees, where
        ``a`` is the number given, or 30 for ``True``; ``False`` or 0: none.
    noise_std : float
        Largest standard deviation (grey levels of 0..255) of the additive
        Gaussian noise; each call draws one uniformly from ``[0, noise_std]``.
    intensity : float
        Largest relative intensity change: contrast is multiplied by a factor
        in ``[1 - intensity, 1 + intensity]`` and ``intensity * 255`` grey
        levels at most are added or subtracted. 0 turns it off.
    seed : int or numpy.random.Generator, optional
        Seeds the random stream; equal seeds give equal results.

    Examples
    --------
    >>> aug = Augmenter(seed=0)                     # doctest: +SKIP
    >>> image2, mask2 = aug(image, mask)            # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        flip: bool = True,
        rotate: bool | float = True,
        noise_std: float = 4.0,
        intensity: float = 0.1,
        seed: int | np.random.Generator | None = None,
    ):
        self.flip = bool(flip)
        if rotate is True:
            self.max_angle = 30.0
        elif rotate is False or rotate is None:
            self.max_angle = 0.0
        else:
            self.max_angle = abs(float(rotate))
        self.noise_std = max(0.0, float(noise_std))
        self.intensity = max(0.0, float(intensity))
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

    def sample(self, rng: np.random.Generator | None = None) -> AugmentParams:
        """Draw one set of random parameters."""
        rng = self.rng if rng is None else rng
        flips = rng.random(2) < 0.5 if self.flip else (False, False)
        angle = float(rng.uniform(-self.max_angle, self.max_angle)) if self.max_angle > 0 else 0.0
        if self.intensity > 0:
            contrast = float(1.0 + rng.uniform(-self.intensity, self.intensity))
            brightness = float(rng.uniform(-self.intensity, self.intensity) * 255.0)
        else:
            contrast, brightness = 1.0, 0.0
        noise = float(rng.uniform(0.0, self.noise_std)) if self.noise_std > 0 else 0.0
        return AugmentParams(bool(flips[0]), bool(flips[1]), angle, contrast, brightness, noise)

    def __call__(
        self,
        image: np.ndarray,
        mask: np.ndarray | None = None,
        *,
        rng: np.random.Generator | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Augment an image and its mask with one random draw.

        Parameters
        ----------
        image : ndarray of shape (H, W, 3) or (H, W)
            uint8, or float in [0, 1]. Not modified.
        mask : ndarray of shape (H, W), optional
            Follows the geometric transforms only. Not modified.
        rng : numpy.random.Generator, optional
            Draw from this stream instead of the augmenter's own (one per
            data-loader worker, for example).

        Returns
        -------
        image : ndarray, same shape and dtype as the input
        mask : ndarray or None, same shape and dtype as the input mask
        """
        rng = self.rng if rng is None else rng
        params = self.sample(rng)
        return self.apply(image, mask, params, rng=rng)

    def apply(
        self,
        image: np.ndarray,
        mask: np.ndarray | None,
        params: AugmentParams,
        *,
        rng: np.random.Generator | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Apply given parameters (the noise itself is drawn from ``rng``)."""
        image = np.asarray(image)
        if mask is not None:
            mask = np.asarray(mask)
            if mask.shape[:2] != image.shape[:2]:
                raise ValueError(f"mask shape {mask.shape} does not match image shape {image.shape}")
        out_img = _geometric(image, params, cv2.INTER_LINEAR)
        out_mask = None if mask is None else _geometric(mask, params, cv2.INTER_NEAREST)
        out_img = _photometric(out_img, params, self.rng if rng is None else rng)
        if out_img is image:
            out_img = image.copy()
        if mask is not None and out_mask is mask:
            out_mask = mask.copy()
        return out_img, out_mask


def _affine(params: AugmentParams, shape: tuple[int, ...]) -> np.ndarray:
    """3x3 matrix (x, y) -> (x', y'): mirror, then rotate about the centre."""
    h, w = shape[:2]
    flip = np.eye(3)
    if params.flip_h:
        flip[0, 0], flip[0, 2] = -1.0, w - 1.0
    if params.flip_v:
        flip[1, 1], flip[1, 2] = -1.0, h - 1.0
    rot = np.eye(3)
    rot[:2] = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), params.angle, 1.0)
    return rot @ flip


def _geometric(arr: np.ndarray, params: AugmentParams, interpolation: int) -> np.ndarray:
    if params.angle == 0.0:
        out = arr
        if params.flip_h:
            out = out[:, ::-1]
        if params.flip_v:
            out = out[::-1]
        return np.ascontiguousarray(out) if out is not arr else arr
    h, w = arr.shape[:2]
    matrix = _affine(params, arr.shape)[:2]
    src = arr if arr.flags.c_contiguous else np.ascontiguousarray(arr)
    if src.dtype == np.bool_:
        src = src.view(np.uint8)
    out = cv2.warpAffine(src, matrix, (w, h), flags=interpolation, borderMode=cv2.BORDER_REFLECT_101)
    if arr.ndim == 3 and out.ndim == 2:
        out = out[:, :, None]
    return out.view(np.bool_) if arr.dtype == np.bool_ else out


def _photometric(image: np.ndarray, params: AugmentParams, rng: np.random.Generator) -> np.ndarray:
    if params.contrast == 1.0 and params.brightness == 0.0 and params.noise_std == 0.0:
        return image
    is_float = image.dtype.kind == "f"
    unit = 1.0 / 255.0 if is_float else 1.0  # floats are in [0, 1]
    top = 1.0 if is_float else 255.0
    work = image.astype(np.float32)
    if params.contrast != 1.0 or params.brightness != 0.0:
        # Contrast about the image's mean, so a contrast change alone keeps the brightness.
        centre = np.float32(work.mean())
        work -= centre
        work *= np.float32(params.contrast)
        work += centre + np.float32(params.brightness * unit)
    if params.noise_std > 0:
        noise = rng.standard_normal(work.shape, dtype=np.float32)
        noise *= np.float32(params.noise_std * unit)
        work += noise
    np.clip(work, 0.0, top, out=work)
    if is_float:
        return work.astype(image.dtype)
    work += np.float32(0.5)
    return work.astype(image.dtype)
