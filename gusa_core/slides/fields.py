"""Training fields from painted slide regions: where a field lies, its class and its RoI mask.

A *field* is a rectangle of a slide with the footprint of the model's input at a chosen pixel
size; by default the BACH microscopy field, 2048 x 1536 pixels at 0.42 µm/px (860 x 645 µm),
which the network sees resized to its input size. Fields are laid on a grid over the slide's
label mask (:mod:`gusa_core.slides.annotations`); a field whose most painted class covers at
least ``min_cover`` of it becomes a sample of that class, and its RoI mask is where that class
is painted inside the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = [
    "BACH_FIELD_SIZE",
    "BACH_FIELD_MPP",
    "Field",
    "FieldSample",
    "field_footprint",
    "sample_fields",
    "field_roi",
    "parse_field_id",
]

#: ``(width, height)`` of a BACH microscopy image, in its pixels.
BACH_FIELD_SIZE = (2048, 1536)
#: Microns per pixel of a BACH microscopy image.
BACH_FIELD_MPP = 0.42

_SEP = "@"


@dataclass(frozen=True)
class Field:
    """One field of a slide.

    Attributes
    ----------
    slide_id : str
        The project id of the slide.
    box : (float, float, float, float)
        ``(x, y, width, height)`` in level-0 pixels.
    label : int
        Class index (0-based) of the field.
    cover : float
        Share of the field painted with that class.
    """

    slide_id: str
    box: tuple[float, float, float, float]
    label: int
    cover: float

    @property
    def id(self) -> str:
        """``"<slide_id>@<x>,<y>,<w>,<h>"``: a sample id that names its slide and its level-0 box."""
        x, y, w, h = self.box
        return f"{self.slide_id}{_SEP}{x:g},{y:g},{w:g},{h:g}"


@dataclass(frozen=True)
class FieldSample:
    """Everything a dataset needs to read one field (plain values: it pickles into loader workers).

    Attributes
    ----------
    slide_path : str
    regions_path : str
        The slide's label mask.
    label_shape : (int, int)
        ``(H, W)`` of the label mask.
    downsample : float
        Level-0 pixels per label pixel.
    box : (float, float, float, float)
        The field in level-0 pixels.
    label : int
        Class index (0-based).
    """

    slide_path: str
    regions_path: str
    label_shape: tuple[int, int]
    downsample: float
    box: tuple[float, float, float, float]
    label: int


def parse_field_id(sample_id: str) -> tuple[str, tuple[float, float, float, float]] | None:
    """``(slide_id, box)`` of a field id made by :attr:`Field.id`, or None for a plain image id."""
    head, sep, tail = sample_id.rpartition(_SEP)
    if not sep:
        return None
    try:
        box = tuple(float(v) for v in tail.split(","))
    except ValueError:
        return None
    return (head, box) if len(box) == 4 else None


def field_footprint(
    mpp: tuple[float, float] | None,
    *,
    field_size: tuple[int, int] = BACH_FIELD_SIZE,
    field_mpp: float = BACH_FIELD_MPP,
) -> tuple[float, float]:
    """Level-0 ``(width, height)`` of a field of ``field_size`` pixels at ``field_mpp`` µm/px.

    An uncalibrated slide (``mpp`` None) is taken to be scanned at ``field_mpp``.
    """
    if not mpp:
        return float(field_size[0]), float(field_size[1])
    return field_size[0] * field_mpp / mpp[0], field_size[1] * field_mpp / mpp[1]


def sample_fields(
    slide_id: str,
    labels: np.ndarray,
    downsample: float,
    footprint: tuple[float, float],
    *,
    classes: int,
    stride: float = 0.5,
    min_cover: float = 0.5,
    max_per_class: int | None = None,
) -> list[Field]:
    """Lay fields on a grid over a slide's painted regions.

    Parameters
    ----------
    slide_id : str
    labels : ndarray of shape (H, W), uint8
        The slide's label mask (0 unpainted, ``k`` class ``k - 1``).
    downsample : float
        Level-0 pixels per label pixel.
    footprint : (float, float)
        Level-0 ``(width, height)`` of a field (:func:`field_footprint`).
    classes : int
        Number of classes of the project.
    stride : float
        Grid step as a share of the field (0.5: fields overlap by half).
    min_cover : float
        Least share of the field its class must cover.
    max_per_class : int, optional
        Keep at most this many fields of each class, evenly spread over the grid order.

    Returns
    -------
    fields : list of Field
        Row-major grid order; the grid starts at the slide's top-left corner and fields stay
        inside the slide.
    """
    h, w = labels.shape
    fw, fh = footprint[0] / downsample, footprint[1] / downsample  # in label pixels
    if fw > w or fh > h:
        return []
    # per-class summed-area tables: the count of a class in any rectangle in O(1)
    tables = [cv2.integral((labels == k + 1).astype(np.uint8), sdepth=cv2.CV_32S) for k in range(classes)]
    present = [k for k in range(classes) if tables[k][-1, -1] > 0]
    if not present:
        return []
    sx, sy = max(1.0, fw * stride), max(1.0, fh * stride)
    nx, ny = int(math.floor((w - fw) / sx + 1e-9)) + 1, int(math.floor((h - fh) / sy + 1e-9)) + 1
    x0 = np.arange(nx) * sx
    y0 = np.arange(ny) * sy
    c0, r0 = np.rint(x0).astype(int), np.rint(y0).astype(int)
    c1, r1 = np.minimum(w, np.rint(x0 + fw).astype(int)), np.minimum(h, np.rint(y0 + fh).astype(int))
    area = (r1 - r0)[:, None] * (c1 - c0)[None, :]
    counts = np.zeros((classes, ny, nx), np.int64)
    for k in present:
        t = tables[k]
        counts[k] = t[r1][:, c1] - t[r0][:, c1] - t[r1][:, c0] + t[r0][:, c0]
    best = counts.argmax(axis=0)
    cover = counts.max(axis=0) / np.maximum(area, 1)
    keep = cover >= min_cover
    out: list[Field] = []
    for r, c in zip(*np.nonzero(keep)):
        box = (float(x0[c] * downsample), float(y0[r] * downsample), float(footprint[0]), float(footprint[1]))
        out.append(Field(slide_id, tuple(round(v, 3) for v in box), int(best[r, c]), float(cover[r, c])))
    if max_per_class is not None:
        thinned = []
        for k in range(classes):
            of_k = [f for f in out if f.label == k]
            if len(of_k) > max_per_class:
                pick = np.linspace(0, len(of_k) - 1, max_per_class).round().astype(int)
                of_k = [of_k[i] for i in pick]
            thinned.extend(of_k)
        order = {f.id: i for i, f in enumerate(out)}
        out = sorted(thinned, key=lambda f: order[f.id])
    return out


def field_roi(labels: np.ndarray, downsample: float, box: tuple[float, float, float, float], label: int, out_size: tuple[int, int]) -> np.ndarray:
    """The RoI mask of a field: where class ``label`` is painted inside it, at ``out_size``.

    Parameters
    ----------
    labels : ndarray of shape (H, W), uint8
    downsample : float
        Level-0 pixels per label pixel.
    box : (float, float, float, float)
        The field in level-0 pixels.
    label : int
        Class index (0-based).
    out_size : (int, int)
        ``(width, height)`` of the result.

    Returns
    -------
    roi : ndarray of shape (out_size[1], out_size[0]), bool
        Each output pixel takes the label pixel under its centre (nearest neighbour).
    """
    ow, oh = (int(v) for v in out_size)
    x, y, w, h = (float(v) / downsample for v in box)
    sx, sy = ow / w, oh / h  # output pixels per label pixel
    m = np.array([[sx, 0.0, -x * sx], [0.0, sy, -y * sy]], np.float64)
    region = (labels == label + 1).astype(np.uint8)
    out = cv2.warpAffine(region, m, (ow, oh), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out.astype(bool)
