"""Slides in a project: records of kind ``"slide"``, their class regions on disk, GeoJSON, fields.

A slide is an image record whose manifest entry has ``"kind": "slide"`` and a ``"slide"`` object::

    {"kind": "slide",
     "slide": {"dimensions": [40000, 30000], "mpp": [0.25, 0.25], "objective_power": 40.0,
               "downsample": 16, "regions": "masks/<id>.regions.png"}}

``regions`` is the label mask (0 unpainted, ``k`` class ``k - 1``) at the working ``downsample``
(:func:`gusa_core.slides.annotations.working_downsample`), or null before anything is painted.
Flat images keep ``"kind": "image"`` (the default when the key is absent). This module is the
only one that builds the regions path; the project owns the manifest.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_text
from ..errors import GusaError, MaskError
from ..slides import is_slide_path, open_slide
from ..slides.annotations import geojson_to_labels, label_shape, labels_to_geojson, read_labels, working_downsample, write_labels
from ..slides.fields import BACH_FIELD_MPP, BACH_FIELD_SIZE, Field, FieldSample, field_footprint, parse_field_id, sample_fields

__all__ = [
    "SlideInfo",
    "is_slide",
    "slide_ids",
    "add_slide",
    "mark_slide",
    "add_paths",
    "slide_info",
    "load_regions",
    "save_regions",
    "export_regions_geojson",
    "import_regions_geojson",
    "project_fields",
    "field_samples",
]

_KIND = "kind"
_SLIDE = "slide"


@dataclass(frozen=True)
class SlideInfo:
    """What the manifest records about a slide.

    Attributes
    ----------
    dimensions : (int, int)
        Level-0 ``(width, height)``.
    mpp : (float, float) or None
    objective_power : float or None
    downsample : int
        Level-0 pixels per label-mask pixel.
    regions : str or None
        The label mask, relative to the project folder.
    """

    dimensions: tuple[int, int]
    mpp: tuple[float, float] | None
    objective_power: float | None
    downsample: int
    regions: str | None

    @property
    def label_shape(self) -> tuple[int, int]:
        """``(H, W)`` of the label mask."""
        return label_shape(self.dimensions, self.downsample)


def is_slide(rec) -> bool:
    """Whether an :class:`~gusa_core.project.ImageRecord` is a slide."""
    return rec.extra.get(_KIND) == _SLIDE


def slide_ids(project) -> list[str]:
    """Ids of the project's slides, in project order."""
    return [r.id for r in project.images if is_slide(r)]


def mark_slide(project, rec) -> bool:
    """Make ``rec`` a slide record when its file is a whole-slide image; returns whether it is one.

    Reads the slide's headers (size, pixel size, objective) into the record; no pixels are decoded.
    Raises :class:`ImageReadError` naming the file when it has a slide's name but cannot be read.
    """
    if is_slide(rec):
        return True
    path = project.image_path(rec.id)
    if not is_slide_path(path):
        return False
    with open_slide(path) as slide:
        dims, mpp, power, origin = tuple(slide.dimensions), slide.mpp, slide.objective_power, slide.qupath_origin
    rec.extra[_KIND] = _SLIDE
    rec.extra[_SLIDE] = {
        "dimensions": [int(v) for v in dims],
        "qupath_origin": [int(v) for v in origin],
        "mpp": None if mpp is None else [float(v) for v in mpp],
        "objective_power": power,
        "downsample": working_downsample(dims, mpp),
        "regions": None,
    }
    project._touch()  # noqa: SLF001 - the record changed after it was added
    return True


def add_slide(project, path: str | os.PathLike, *, copy: bool = False):
    """Add a whole-slide image as a record of kind ``"slide"`` (headers read, no pixels decoded).

    Returns the record (an existing one unchanged). Raises :class:`ImageReadError` naming the file
    when it is not a readable slide. With ``copy`` a MIRAX ``.mrxs`` is copied with its data
    folder (renamed with it when the id differs from the file's name).
    """
    path = Path(path)
    with open_slide(path):
        pass  # unreadable: fail before the project changes
    # A MIRAX slide is the .mrxs and the folder of the same name beside it: a copy takes both.
    data = path.with_suffix("") if copy and path.suffix.lower() == ".mrxs" else None
    rec = project._add_record(path, label=None, copy=copy, companion=data)  # noqa: SLF001
    mark_slide(project, rec)
    return rec


def add_paths(project, paths: Iterable[str | os.PathLike], *, copy: bool = False) -> list:
    """Add files, slides (:func:`is_slide_path`) as slides and the rest as images."""
    return [add_slide(project, p, copy=copy) if is_slide_path(p) else project.add_image(p, copy=copy) for p in paths]


def slide_info(project, slide_id: str) -> SlideInfo:
    """The manifest's description of a slide (raises ValueError for a flat image)."""
    rec = project.image(slide_id)
    if not is_slide(rec):
        raise ValueError(f"{slide_id!r} is an image, not a slide")
    d = rec.extra[_SLIDE]
    mpp = d.get("mpp")
    return SlideInfo(
        dimensions=(int(d["dimensions"][0]), int(d["dimensions"][1])),
        mpp=None if not mpp else (float(mpp[0]), float(mpp[1])),
        objective_power=d.get("objective_power"),
        downsample=int(d["downsample"]),
        regions=d.get("regions"),
    )


def _regions_file(project, slide_id: str) -> Path:
    """``masks/<id>.regions.png``, checked to lie inside the project (ProjectError)."""
    return project._inside(project.masks_dir / f"{slide_id}.regions.png", f"the regions of slide {slide_id!r}")  # noqa: SLF001


def load_regions(project, slide_id: str) -> np.ndarray:
    """The slide's label mask (zeros when nothing is painted yet).

    Raises
    ------
    MaskError
        The file is missing, unreadable, of the wrong size or holds an unknown class.
    """
    info = slide_info(project, slide_id)
    if info.regions is None:
        return np.zeros(info.label_shape, np.uint8)
    path = project._inside(info.regions, f"the regions of slide {slide_id!r}")  # noqa: SLF001
    return read_labels(path, info.label_shape, classes=len(project.classes))


def save_regions(project, slide_id: str, labels: np.ndarray, *, save_manifest: bool = True) -> Path | None:
    """Write the slide's label mask atomically (an empty one removes the file); emits ``mask_changed``.

    Returns the file, or None when nothing is painted. Like
    :meth:`~gusa_core.project.Project.save_mask`: refused for a read-only
    project, another live writer or a newer manifest; an emptied mask is
    dropped from the manifest before its file is deleted.
    """
    info = slide_info(project, slide_id)
    labels = np.asarray(labels)
    target = _regions_file(project, slide_id)
    if labels.shape != info.label_shape:
        raise MaskError(target, f"label mask is {labels.shape[1]}x{labels.shape[0]}, the slide needs "
                                f"{info.label_shape[1]}x{info.label_shape[0]}")
    empty = not labels.any()
    project._check_disk_write()  # noqa: SLF001 - read-only, another writer, newer manifest
    if not empty:
        write_labels(target, np.ascontiguousarray(labels, np.uint8))
    rec = project.image(slide_id)
    previous = rec.extra[_SLIDE].get("regions")
    new_ref = None if empty else f"{project.masks_dir.name}/{target.name}"
    if previous != new_ref:
        rec.extra[_SLIDE]["regions"] = new_ref
        project._touch()  # noqa: SLF001 - the project owns the manifest; this module owns the field
    if save_manifest and project.dirty:
        try:
            project.save()
        except BaseException:
            if empty:
                rec.extra[_SLIDE]["regions"] = previous  # the file stays: the manifest on disk names it
            raise
    if empty:
        target.unlink(missing_ok=True)
    project.events.mask_changed.emit(slide_id)
    return None if empty else target


def _qupath_origin(project, slide_id: str) -> tuple[int, int]:
    """Level-0 corner of QuPath's image of the slide (non-zero for slides QuPath crops, e.g. Leica SCN)."""
    stored = project.image(slide_id).extra.get(_SLIDE, {}).get("qupath_origin")
    if stored is not None:
        return int(stored[0]), int(stored[1])
    with open_slide(project.image_path(slide_id)) as slide:  # a record written before the origin was kept
        return slide.qupath_origin


def export_regions_geojson(project, slide_id: str, path: str | os.PathLike, labels: np.ndarray | None = None) -> Path:
    """Write the slide's regions as QuPath GeoJSON in QuPath's pixels (level 0 less its crop corner; one feature per class)."""
    info = slide_info(project, slide_id)
    labels = load_regions(project, slide_id) if labels is None else labels
    fc = labels_to_geojson(labels, downsample=info.downsample, class_names=project.classes, colors=project.class_colors,
                           origin=_qupath_origin(project, slide_id))
    return atomic_write_text(path, json.dumps(fc))


def import_regions_geojson(project, slide_id: str, path: str | os.PathLike) -> tuple[np.ndarray, list[str]]:
    """Read QuPath GeoJSON (QuPath's pixels: level 0 less its crop corner) as a label mask for the slide (not saved here).

    Returns ``(labels, skipped)`` (class names in the file that the project lacks). Raises
    :class:`MaskError` naming the file when it is not GeoJSON.
    """
    path = Path(path)
    info = slide_info(project, slide_id)
    origin = _qupath_origin(project, slide_id)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
        return geojson_to_labels(obj, info.label_shape, downsample=info.downsample, class_names=project.classes,
                                 origin=origin)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
        raise MaskError(path, f"not a readable GeoJSON annotation file ({exc})") from exc


def project_fields(
    project,
    *,
    field_size: tuple[int, int] = BACH_FIELD_SIZE,
    field_mpp: float = BACH_FIELD_MPP,
    stride: float = 0.5,
    min_cover: float = 0.5,
    max_per_class: int | None = None,
) -> list[Field]:
    """Training fields of every slide with painted regions (:func:`gusa_core.slides.fields.sample_fields`)."""
    out: list[Field] = []
    for slide_id in slide_ids(project):
        info = slide_info(project, slide_id)
        if info.regions is None:
            continue
        labels = load_regions(project, slide_id)
        footprint = field_footprint(info.mpp, field_size=field_size, field_mpp=field_mpp)
        out.extend(sample_fields(slide_id, labels, info.downsample, footprint, classes=len(project.classes),
                                 stride=stride, min_cover=min_cover, max_per_class=max_per_class))
    return out



def field_samples(project, ids: Iterable[str], fields: Iterable[Field]) -> dict[str, FieldSample]:
    """What a dataset needs to read each field id among ``ids`` (plain image ids are left out).

    Raises
    ------
    GusaError
        A field id is not among ``fields`` (its slide's regions changed since the split was made).
    """
    by_id = {f.id: f for f in fields}
    out: dict[str, FieldSample] = {}
    for sample_id in ids:
        parsed = parse_field_id(sample_id)
        if parsed is None or sample_id in project:
            continue
        f = by_id.get(sample_id)
        if f is None:
            raise GusaError(f"field {sample_id} is no longer painted: the regions of slide {parsed[0]} changed "
                            "since this run was split; start a new run")
        info = slide_info(project, f.slide_id)
        out[sample_id] = FieldSample(
            slide_path=str(project.image_path(f.slide_id)),
            regions_path=str(project.folder / info.regions),
            label_shape=info.label_shape,
            downsample=float(info.downsample),
            box=f.box,
            label=f.label,
        )
    return out
