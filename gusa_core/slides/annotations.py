"""Class regions painted on a slide: a label mask at a working resolution, its file and its GeoJSON.

A slide is far too large to annotate at level 0 (a 40,000 x 30,000 slide is 1.2 gigapixels), and
a pathologist outlines regions, not cells. The regions are a ``(H, W) uint8`` **label mask** at a
*working downsample* ``d`` (one mask pixel covers ``d x d`` level-0 pixels): 0 is unpainted and
``k`` (1..C) is class ``k - 1`` of the project. It is edited with
:class:`gusa_core.annotation.MaskEditor` (one undo step per stroke), written as an 8-bit PNG, and
exchanged with QuPath as GeoJSON whose coordinates are level-0 pixels.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from ..atomic import atomic_write_bytes
from ..errors import MaskError
from ..geojson import _feature_name, geojson_to_mask, mask_to_geojson  # one reader of QuPath files

__all__ = [
    "WORKING_MAX_SIDE",
    "WORKING_TARGET_MPP",
    "working_downsample",
    "label_shape",
    "read_labels",
    "write_labels",
    "labels_to_geojson",
    "geojson_to_labels",
]

#: Longest side of a label mask (pixels): 8192 x 6144 is 48 MB as uint8.
WORKING_MAX_SIDE = 8192
#: Microns per label-mask pixel aimed at: fine enough to outline a duct (~50 µm) within a few pixels.
WORKING_TARGET_MPP = 4.0


def working_downsample(
    dimensions: tuple[int, int],
    mpp: tuple[float, float] | None,
    *,
    max_side: int = WORKING_MAX_SIDE,
    target_mpp: float = WORKING_TARGET_MPP,
) -> int:
    """The working downsample of a slide's label mask: a power of two.

    The largest power of two whose pixel is not coarser than ``target_mpp`` (1 for an uncalibrated
    slide), doubled while the mask's longer side would exceed ``max_side``.

    Parameters
    ----------
    dimensions : (int, int)
        Level-0 ``(width, height)``.
    mpp : (float, float) or None
        Microns per level-0 pixel.
    max_side : int
    target_mpp : float

    Returns
    -------
    downsample : int
        E.g. 16 for a 40,000 x 30,000 slide at 0.25 µm/px (a 2500 x 1875 mask at 4 µm/px).
    """
    ds = 1
    if mpp:
        ds = 2 ** max(0, math.floor(math.log2(target_mpp / max(mpp)) + 1e-9))
    while math.ceil(max(dimensions) / ds) > max_side:
        ds *= 2
    return int(ds)


def label_shape(dimensions: tuple[int, int], downsample: float) -> tuple[int, int]:
    """``(H, W)`` of the label mask of a slide of level-0 ``(width, height)`` at ``downsample``."""
    w, h = dimensions
    return (max(1, math.ceil(h / downsample)), max(1, math.ceil(w / downsample)))


def write_labels(path: str | os.PathLike, labels: np.ndarray) -> Path:
    """Write a label mask as an 8-bit single-channel PNG, atomically.

    Parameters
    ----------
    path : path-like
    labels : ndarray of shape (H, W), uint8
        0 unpainted, ``k`` class ``k - 1``. Not modified.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.dtype != np.uint8:
        raise ValueError(f"a label mask is (H, W) uint8, got {labels.dtype} {labels.shape}")
    ok, buf = cv2.imencode(".png", labels, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise MaskError(path, "PNG encoding failed")
    return atomic_write_bytes(path, buf.tobytes())


def read_labels(path: str | os.PathLike, shape: tuple[int, int], *, classes: int | None = None) -> np.ndarray:
    """Read a label mask written by :func:`write_labels`.

    Parameters
    ----------
    path : path-like
    shape : (int, int)
        ``(H, W)`` the mask must have (:func:`label_shape` of its slide).
    classes : int, optional
        Number of classes; larger values raise.

    Returns
    -------
    labels : ndarray of shape (H, W), uint8

    Raises
    ------
    MaskError
        Missing, unreadable, of another size, or holding a value past ``classes``.
    """
    path = Path(path)
    if not path.is_file():
        raise MaskError(path, "file does not exist")
    arr = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise MaskError(path, "not a readable PNG label mask")
    if arr.ndim != 2 or arr.dtype != np.uint8:
        raise MaskError(path, f"a label mask is one 8-bit channel, this has shape {arr.shape} and type {arr.dtype}")
    if arr.shape != tuple(shape):
        raise MaskError(path, f"label mask is {arr.shape[1]}x{arr.shape[0]}, the slide needs {shape[1]}x{shape[0]}")
    if classes is not None and arr.size and int(arr.max()) > classes:
        raise MaskError(path, f"holds class value {int(arr.max())} but the project has {classes} classes")
    return arr


def labels_to_geojson(
    labels: np.ndarray,
    *,
    downsample: float,
    class_names: Sequence[str],
    colors: dict[str, tuple[int, int, int]] | None = None,
    origin: tuple[float, float] = (0, 0),
) -> dict:
    """Describe a label mask as a QuPath FeatureCollection in level-0 coordinates.

    Parameters
    ----------
    labels : ndarray of shape (H, W), uint8
        0 unpainted, ``k`` class ``class_names[k - 1]``.
    downsample : float
        Level-0 pixels per label pixel (coordinates are multiplied by it).
    class_names : sequence of str
    colors : dict, optional
        Class colours ``{name: (r, g, b)}``.
    origin : (float, float)
        Subtracted from every vertex: pass :attr:`Slide.qupath_origin
        <gusa_core.slides.reader.Slide.qupath_origin>` to write in QuPath's image pixels for a
        slide QuPath crops to its scanned bounds (a Leica SCN); ``(0, 0)`` elsewhere.

    Returns
    -------
    geojson : dict
        One annotation Feature (a ``Polygon`` or ``MultiPolygon``) per painted class, classified
        with the class name; vertices on pixel corners, so a label pixel ``(r, c)`` becomes the
        level-0 square ``[c*d, (c+1)*d) x [r*d, (r+1)*d)``.
    """
    colors = colors or {}
    features = []
    present = np.flatnonzero(np.bincount(labels.ravel(), minlength=len(class_names) + 1)[1:]) + 1
    for k in present.tolist():
        if k > len(class_names):
            raise ValueError(f"label value {k} has no class (the project has {len(class_names)})")
        name = class_names[k - 1]
        fc = mask_to_geojson(labels == k, name=name, color=colors.get(name, (255, 0, 0)), downsample=downsample)
        features.extend(fc["features"])
    out = {"type": "FeatureCollection", "features": features}
    return _shifted(out, -float(origin[0]), -float(origin[1])) if tuple(origin) != (0, 0) else out


def geojson_to_labels(
    obj, shape: tuple[int, int], *, downsample: float, class_names: Sequence[str], origin: tuple[float, float] = (0, 0)
) -> tuple[np.ndarray, list[str]]:
    """Rasterise a level-0 GeoJSON annotation set into a label mask.

    Parameters
    ----------
    obj : dict or list
        FeatureCollection (e.g. exported by QuPath), Feature or list of Features.
    shape : (int, int)
        ``(H, W)`` of the label mask.
    downsample : float
        Level-0 pixels per label pixel.
    class_names : sequence of str
        Features classified with one of these names (case-insensitive) are painted with it;
        later classes win where regions overlap.
    origin : (float, float)
        Added to every vertex (the file is in QuPath's pixels of a cropped slide; see
        :func:`labels_to_geojson`).

    Returns
    -------
    labels : ndarray of shape (H, W), uint8
    skipped : list of str
        Classification names found in the file that are not project classes (their regions are
        not imported; ``"(unclassified)"`` for features without one).
    """
    if tuple(origin) != (0, 0):
        obj = _shifted({"type": "FeatureCollection", "features": _features(obj)}, float(origin[0]), float(origin[1]))
    lower = {n.lower(): i for i, n in enumerate(class_names)}
    found: dict[int, set[str | None]] = {}
    skipped: set[str] = set()
    for feature in _features(obj):
        name = _feature_name(feature)
        i = lower.get(name.lower()) if name else None
        if i is None:
            skipped.add(name or "(unclassified)")
        else:
            found.setdefault(i, set()).add(name)
    out = np.zeros(tuple(shape), np.uint8)
    for i in sorted(found):
        mask = geojson_to_mask(obj, shape, names=found[i], downsample=downsample)
        out[mask > 0] = i + 1
    return out, sorted(skipped)


def _features(obj) -> list[dict]:
    if isinstance(obj, list):
        return [f for f in obj if isinstance(f, dict) and f.get("type") == "Feature"]
    if isinstance(obj, dict) and obj.get("type") == "FeatureCollection":
        return [f for f in obj.get("features") or [] if isinstance(f, dict)]
    if isinstance(obj, dict) and obj.get("type") == "Feature":
        return [obj]
    raise ValueError("GeoJSON must be a FeatureCollection, a Feature or a list of Features")


def _shifted(fc: dict, dx: float, dy: float) -> dict:
    """A copy of a FeatureCollection with every vertex moved by ``(dx, dy)``."""

    def move(c):
        if c and isinstance(c[0], (int, float)):
            return [c[0] + dx, c[1] + dy, *c[2:]]
        return [move(v) for v in c]

    features = []
    for f in fc.get("features") or []:
        geom = f.get("geometry") or {}
        if "coordinates" in geom:
            geom = {**geom, "coordinates": move(geom["coordinates"])}
        features.append({**f, "geometry": geom})
    return {**fc, "features": features}
