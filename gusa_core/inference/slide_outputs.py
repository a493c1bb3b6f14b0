"""Writing a slide's heatmaps, fields and summary, and reading them back.

Per slide, a folder holds (names built here only)::

    <stem>/heatmap_<class>.png     per-class probability, colour-mapped, transparent off the
                                   classified tissue
    <stem>/heatmap_<class>.tif     the same probability as a pyramidal 8-bit TIFF (0 = no data,
                                   1..255 = probability 0..1, in R = G = B), its pixel size
                                   recorded, laid out as QuPath opens it (see _write_pyramid)
    <stem>/attention.png, attention.tif
    <stem>/fields.geojson          one QuPath detection per field, in level-0 coordinates, with its
                                   class and probabilities as measurements
    <stem>/fields.csv              one row per field
    <stem>/summary.json            written last: a slide with a summary is done
    <stem>/error.json              a slide that failed, with its reason (removed when it succeeds)

Nothing here imports torch.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import uuid
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from .. import DEFAULT_CLASS_COLORS
from ..atomic import atomic_write, atomic_write_bytes, atomic_write_json, atomic_write_text
from .outputs import format_prob

__all__ = [
    "SUMMARY_FILE",
    "ERROR_FILE",
    "COHORT_FILE",
    "heatmap_name",
    "colorize",
    "write_slide_outputs",
    "write_slide_error",
    "clear_slide_summary",
    "read_slide_summary",
    "read_slide_error",
    "fields_geojson",
    "read_fields_geojson",
    "cohort_csv_text",
    "suggestion_fields",
    "write_field_images",
]

SUMMARY_FILE = "summary.json"
ERROR_FILE = "error.json"
COHORT_FILE = "cohort.csv"

_COLORMAPS = {"viridis": cv2.COLORMAP_VIRIDIS, "jet": cv2.COLORMAP_JET, "magma": cv2.COLORMAP_MAGMA,
              "inferno": cv2.COLORMAP_INFERNO, "turbo": cv2.COLORMAP_TURBO}


def heatmap_name(class_name: str) -> str:
    """File stem of a class's heatmap (``heatmap_<class>`` with unsafe characters replaced)."""
    return "heatmap_" + re.sub(r"[^A-Za-z0-9_.-]+", "_", class_name)


def colorize(values: np.ndarray, valid: np.ndarray, *, colormap: str = "viridis", opacity: float = 1.0) -> np.ndarray:
    """A colour-mapped RGBA image of a map in [0, 1], transparent where not ``valid``.

    Parameters
    ----------
    values : ndarray of shape (H, W), float
    valid : ndarray of shape (H, W), bool
    colormap : {"viridis", "jet", "magma", "inferno", "turbo"}
    opacity : float
        Alpha of valid pixels, in [0, 1].

    Returns
    -------
    rgba : ndarray of shape (H, W, 4), uint8
    """
    if colormap not in _COLORMAPS:
        raise ValueError(f"unknown colormap {colormap!r}; use one of {', '.join(_COLORMAPS)}")
    v = np.clip(np.nan_to_num(np.asarray(values, np.float32)), 0.0, 1.0)
    bgr = cv2.applyColorMap(np.round(v * 255).astype(np.uint8), _COLORMAPS[colormap])
    out = np.empty(v.shape + (4,), np.uint8)
    out[..., :3] = bgr[..., ::-1]
    out[..., 3] = np.where(valid, round(255 * float(opacity)), 0).astype(np.uint8)
    return out


def _png_bytes(rgba: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    if not ok:
        raise OSError("PNG encoding failed")
    return buf.tobytes()


def _write_pyramid(path: Path, grey: np.ndarray, um_per_px: float | None) -> None:
    """A tiled pyramidal TIFF of ``grey`` laid out for QuPath, deflate-compressed.

    As QuPath reads it (``qupath-extension-openslide`` ``OpenslideServerBuilder``): QuPath
    gives a TIFF to OpenSlide before Bio-Formats only when it is 8-bit RGB, so the value is
    stored in all three samples (R = G = B). OpenSlide's generic-tiff driver takes the first
    page and every later *tiled* page marked reduced-resolution (NewSubfileType 1) as the
    pyramid (SubIFDs it does not see), so the levels halve down to 256 px as successive
    256 x 256-tiled pages. The pixel size is X/YResolution in pixels per centimetre
    (ResolutionUnit 3), which OpenSlide reports as ``openslide.mpp-x/y`` in µm and QuPath
    takes as the pixel size.
    """
    import tifffile

    levels = [grey]
    while max(levels[-1].shape) > 256:
        g = levels[-1]
        levels.append(cv2.resize(g, (max(1, g.shape[1] // 2), max(1, g.shape[0] // 2)), interpolation=cv2.INTER_NEAREST))

    def writer(tmp: str) -> None:
        with tifffile.TiffWriter(tmp) as tw:
            for k, lev in enumerate(levels):
                kw = dict(photometric="rgb", tile=(256, 256), compression="zlib", metadata=None)
                if um_per_px:
                    res = 1e4 / um_per_px  # pixels per cm of level 0; every level records its own
                    kw.update(resolution=(res * lev.shape[1] / grey.shape[1], res * lev.shape[0] / grey.shape[0]),
                              resolutionunit="CENTIMETER")
                if k > 0:
                    kw["subfiletype"] = 1
                tw.write(np.repeat(lev[..., None], 3, axis=2), **kw)

    atomic_write(path, writer, suffix=".tif")


def _as_grey(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    return np.where(valid, 1 + np.round(np.clip(values, 0, 1) * 254), 0).astype(np.uint8)


def fields_geojson(result) -> dict:
    """The fields of a :class:`~gusa_core.inference.slide.SlideResult` as QuPath detections.

    As QuPath's GeoJSON reader (``qupath-core`` ``QuPathTypeAdapters.PathObjectTypeAdapter``)
    takes them: each feature has a UUID ``id``, the field's rectangle as a ``Polygon``, and
    properties ``objectType: "detection"``, ``classification: {"name", "color": [r, g, b]}``
    (its most probable class) and ``measurements`` as an object of numbers (one per class
    probability, the tissue share and the mean attention; a missing value is the string
    ``"NaN"``, as QuPath writes it, so the file stays strict JSON).

    Coordinates are QuPath's image pixels: level-0 pixels minus ``result.origin`` (non-zero
    only for slides QuPath crops to their scanned bounds, see
    :attr:`~gusa_core.slides.reader.Slide.qupath_origin`). The collection records that origin
    under ``"gusa"``, a member QuPath ignores, so :func:`read_fields_geojson` returns level-0 boxes.
    """
    names = result.class_names
    ox, oy = (int(v) for v in getattr(result, "origin", (0, 0)))
    stem = Path(result.path).name
    features = []
    for f in result.fields:
        x, y, w, h = f.box
        x, y = x - ox, y - oy
        ring = [[x, y], [x + w, y], [x + w, y + h], [x, y + h], [x, y]]
        k = f.index
        color = DEFAULT_CLASS_COLORS.get(names[k]) if isinstance(DEFAULT_CLASS_COLORS, dict) else None
        rgb = _rgb(color, k)
        measurements = {f"prob {n}": _number(p) for n, p in zip(names, f.probs)}
        measurements["tissue"] = _number(f.tissue)
        measurements["attention"] = _number(f.attention)
        features.append({
            "type": "Feature",
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"gusa-field:{stem}:{','.join(str(int(v)) for v in f.box)}")),
            "geometry": {"type": "Polygon", "coordinates": [ring]},
            "properties": {"objectType": "detection", "classification": {"name": names[k], "color": rgb},
                           "measurements": measurements, "isLocked": False},
        })
    return {"type": "FeatureCollection", "gusa": {"origin": [ox, oy], "frame": "QuPath image pixels = level 0 - origin"},
            "features": features}


def _number(value) -> float | str:
    v = float(value)
    return v if math.isfinite(v) else "NaN"


def _rgb(color, k: int) -> list[int]:
    if isinstance(color, str) and color.startswith("#") and len(color) == 7:
        return [int(color[i : i + 2], 16) for i in (1, 3, 5)]
    if isinstance(color, (list, tuple)) and len(color) >= 3:
        return [int(v) for v in color[:3]]
    palette = [(0, 158, 115), (86, 180, 233), (230, 159, 0), (213, 94, 0), (204, 121, 167), (0, 114, 178)]
    return list(palette[k % len(palette)])


def read_fields_geojson(path) -> list[dict]:
    """The fields written by :func:`write_slide_outputs`: ``{"box", "label", "probs"}`` each, level-0 boxes."""
    obj = json.loads(Path(path).read_text(encoding="utf-8"))
    ox, oy = (float(v) for v in (obj.get("gusa") or {}).get("origin", (0, 0)))
    out = []
    for feat in obj.get("features", []):
        ring = np.asarray(feat["geometry"]["coordinates"][0], np.float64)
        x0, y0 = ring.min(axis=0)
        x1, y1 = ring.max(axis=0)
        props = feat.get("properties", {})
        meas = props.get("measurements", {})
        probs = {k[5:]: float(v) for k, v in meas.items() if k.startswith("prob ")}
        out.append({"box": (float(x0) + ox, float(y0) + oy, float(x1 - x0), float(y1 - y0)),
                    "label": (props.get("classification") or {}).get("name"), "probs": probs})
    return out


def _fields_csv(result) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["x", "y", "width", "height", "tissue", "predicted"] + [f"prob_{c}" for c in result.class_names] + ["attention"])
    for f in result.fields:
        w.writerow(list(f.box) + [format_prob(f.tissue), result.class_names[f.index]]
                   + [format_prob(p) for p in f.probs] + [format_prob(f.attention)])
    return buf.getvalue()


def write_slide_outputs(
    result, folder, *, colormap: str = "viridis", tiff: bool = True, sweep: dict | None = None, note: str | None = None
) -> dict:
    """Write a slide's heatmaps, fields and summary into ``folder``; the summary goes last.

    Parameters
    ----------
    result : gusa_core.inference.slide.SlideResult
    folder : path-like
        Created if needed.
    colormap : str
        Of the PNG heatmaps (see :func:`colorize`).
    tiff : bool
        Also write the pyramidal TIFFs.
    sweep : dict, optional
        The settings of the sweep (:func:`~gusa_core.inference.slide_cohort.sweep_settings`),
        stored as the summary's ``"settings"`` so a resumed cohort can tell whether they changed.
    note : str, optional
        Stored as the summary's ``"note"`` (e.g. why the slide was redone); the cohort table shows it.

    Returns
    -------
    summary : dict
        :meth:`SlideResult.summary` plus ``"outputs"``, the written files' names.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    mpp = result.mpp[0] if result.mpp else None
    um = None if mpp is None else mpp * result.downsample
    written = []
    maps = [(heatmap_name(c), result.probs[k]) for k, c in enumerate(result.class_names)]
    maps.append(("attention", result.attention))
    for stem, values in maps:
        cmap = "jet" if stem == "attention" else colormap
        atomic_write_bytes(folder / f"{stem}.png", _png_bytes(colorize(values, result.valid, colormap=cmap)))
        written.append(f"{stem}.png")
        if tiff:
            _write_pyramid(folder / f"{stem}.tif", _as_grey(values, result.valid), um)
            written.append(f"{stem}.tif")
    atomic_write_text(folder / "fields.geojson", json.dumps(fields_geojson(result), allow_nan=False))
    atomic_write_text(folder / "fields.csv", _fields_csv(result))
    written += ["fields.geojson", "fields.csv"]
    summary = result.summary()
    summary["outputs"] = written
    if sweep is not None:
        summary["settings"] = sweep
    if note:
        summary["note"] = note
    err = folder / ERROR_FILE
    if err.exists():
        err.unlink()
    atomic_write_json(folder / SUMMARY_FILE, summary)
    return summary


def clear_slide_summary(folder) -> None:
    """Forget that a slide is done (before it is redone), so a failed redo leaves no stale summary."""
    (Path(folder) / SUMMARY_FILE).unlink(missing_ok=True)


def write_slide_error(folder, path, reason: str) -> None:
    """Record that a slide failed (its reason), so the cohort table lists it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / ERROR_FILE, {"slide": Path(path).name, "path": str(path), "error": str(reason)})


def read_slide_summary(folder) -> dict | None:
    """The summary of a finished slide, or None (not done, or unreadable)."""
    try:
        return json.loads((Path(folder) / SUMMARY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_slide_error(folder) -> dict | None:
    """The error record of a failed slide, or None."""
    try:
        return json.loads((Path(folder) / ERROR_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def cohort_csv_text(rows: Sequence[dict], class_names: Sequence[str]) -> str:
    """The cohort table: one row per slide (summary or error), in the given order.

    Columns: slide, path, status, predicted, fields, tissue_mm2, ``area_mm2_<class>``,
    ``mean_prob_<class>``, field_mpp, field_source, error, note. ``status`` is a row's
    ``"status"`` when it has one (``"stale"``, ``"not done"``), else ``"failed"`` for an error
    record and ``"done"`` for a summary. Timings are left out so a re-run writes the same table.
    """
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["slide", "path", "status", "predicted", "fields", "tissue_mm2"]
               + [f"area_mm2_{c}" for c in class_names] + [f"mean_prob_{c}" for c in class_names]
               + ["field_mpp", "field_source", "error", "note"])
    for r in rows:
        if "fields" not in r:
            w.writerow([r.get("slide", ""), r.get("path", ""), r.get("status", "failed"), "", "", ""]
                       + [""] * (2 * len(class_names)) + ["", "", r.get("error", ""), r.get("note", "")])
            continue
        areas, means = r.get("area_mm2", {}), r.get("mean_probs", {})
        w.writerow([r["slide"], r["path"], r.get("status", "done"), r.get("predicted", ""), r.get("fields", 0),
                    f"{r.get('tissue_mm2', 0.0):.4f}"]
                   + [f"{areas.get(c, 0.0):.4f}" for c in class_names] + [format_prob(means.get(c)) for c in class_names]
                   + [f"{r.get('field_mpp', 0):g}", r.get("field_source", ""), r.get("error", ""), r.get("note", "")])
    return buf.getvalue()


def suggestion_fields(result, *, tau: float = 0.5, per_class: int = 5) -> list:
    """The fields worth a look: per class, the ``per_class`` most probable fields predicted as it with ``p >= tau``."""
    out = []
    for k in range(len(result.class_names)):
        mine = [f for f in result.fields if f.index == k and f.probs[k] >= tau]
        out += sorted(mine, key=lambda f: -float(f.probs[k]))[:per_class]
    return out


def write_field_images(result, fields, folder) -> list[tuple[Path, str]]:
    """Write fields as images at the run's field size (e.g. BACH's 2048x1536), read from the slide.

    Parameters
    ----------
    result : SlideResult
    fields : iterable of FieldResult
    folder : path-like
        Created if needed; files are ``<slide stem>_x<X>_y<Y>.png`` (level-0 corner).

    Returns
    -------
    list of (Path, str)
        Each file and its predicted class.
    """
    from ..slides import open_slide

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(result.path).stem)
    out = []
    with open_slide(result.path) as slide:
        for f in fields:
            x, y, _, _ = f.box
            image = slide.read_field(f.box, tuple(result.settings.size))
            ok, buf = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            if not ok:
                raise OSError("PNG encoding failed")
            path = atomic_write_bytes(folder / f"{stem}_x{x}_y{y}.png", buf.tobytes())
            out.append((Path(path), result.class_names[f.index]))
    return out
