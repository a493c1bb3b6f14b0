"""RoI masks to and from GeoJSON, in the form QuPath reads and writes.

Coordinates are full-resolution pixel coordinates ``(x, y) = (col, row)`` on
pixel *edges*, as QuPath uses them: the square of pixel ``(row, col)`` spans
``[col, col + 1] x [row, row + 1]``, so a polygon's area is its pixel count.
Masks are traced along pixel edges (exactly: importing an exported mask gives
back the same pixels), holes become interior rings, outer rings run
counter-clockwise and holes clockwise (RFC 7946's right-hand rule, computed in
the (x, y) plane), and every ring is closed.

Import accepts what QuPath writes: a ``FeatureCollection``, a single
``Feature``, a bare geometry, or the plain JSON array of Features of
QuPath's "export as array". ``Polygon`` and ``MultiPolygon`` geometries are
filled (holes respected), ``GeometryCollection`` is searched, and point and
line geometries, which enclose nothing, are ignored.

Import is bounded in memory and time: files above :data:`MAX_FILE_BYTES`,
nesting deeper than :data:`MAX_DEPTH`, more than :data:`MAX_VERTICES`
vertices in all, or more than :data:`MAX_CROSSINGS` edge-row crossings
within the mask are refused with a message naming the file; rasterising
works on bounded chunks of edges, clipped to the mask's shape.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .atomic import atomic_write_text
from .errors import MaskError

__all__ = [
    "mask_to_geojson",
    "geojson_to_mask",
    "export_geojson",
    "import_geojson",
    "mask_polygons",
    "MAX_FILE_BYTES",
    "MAX_DEPTH",
    "MAX_VERTICES",
    "MAX_CROSSINGS",
]

#: Largest GeoJSON file read (bytes).
MAX_FILE_BYTES = 512 << 20
#: Deepest nesting of arrays and objects accepted (a MultiPolygon in a FeatureCollection needs 8).
MAX_DEPTH = 64
#: Most polygon vertices accepted in one import, all rings together.
MAX_VERTICES = 5_000_000
#: Most (edge, mask row) crossings rasterised in one import; bounds the time of the fill.
MAX_CROSSINGS = 200_000_000
_CHUNK_CROSSINGS = 4_000_000  # crossings rasterised at a time: bounds the fill's memory



# ------------------------------------------------------------------ tracing
def _signed_area(ring: np.ndarray) -> float:
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def _closed(ring: np.ndarray, *, ccw: bool) -> np.ndarray:
    if (_signed_area(ring) > 0) != ccw:
        ring = ring[::-1]
    return np.concatenate([ring, ring[:1]], axis=0)


def _edge_path(contour: np.ndarray) -> np.ndarray:
    """Turn a lattice contour into a polygon along pixel edges, without redundant vertices.

    OpenCV follows borders 8-connected, so at a concave corner it steps
    diagonally between two edge midpoints; the corner it skipped (the
    intermediate point with both lattice indices odd) is put back.
    """
    pts = contour.astype(np.int64)
    nxt = np.roll(pts, -1, axis=0)
    diag = (np.abs(nxt - pts) == 1).all(axis=1)
    if diag.any():
        # Of (x_next, y) and (x, y_next), the corner is the one with both indices odd.
        corner = np.where((nxt[:, 0] % 2 == 1)[:, None], np.stack([nxt[:, 0], pts[:, 1]], 1), np.stack([pts[:, 0], nxt[:, 1]], 1))
        out = np.empty((len(pts) + int(diag.sum()), 2), np.int64)
        idx = np.arange(len(pts)) + np.concatenate([[0], np.cumsum(diag)[:-1]])
        out[idx] = pts
        out[idx[diag] + 1] = corner[diag]
        pts = out
    # Keep only the vertices where the direction changes.
    d_in = pts - np.roll(pts, 1, axis=0)
    d_out = np.roll(pts, -1, axis=0) - pts
    turn = d_in[:, 0] * d_out[:, 1] - d_in[:, 1] * d_out[:, 0] != 0
    if turn.any():
        pts = pts[turn]
    return (pts.astype(np.float64) - 1.0) / 2.0


def mask_polygons(mask: np.ndarray) -> list[list[np.ndarray]]:
    """Trace a mask into polygons along pixel edges.

    Parameters
    ----------
    mask : ndarray of shape (H, W)
        Non-zero pixels are the RoI. RoI pixels touching at a corner belong to
        one region (8-connectivity); a background region is a hole when it
        does not reach the border through edge-sharing pixels (4-connectivity).

    Returns
    -------
    polygons : list of list of ndarray
        One entry per region: its outer ring then its holes, each an
        ``(N, 2)`` float array of ``(x, y)`` vertices, closed (first vertex
        repeated), outer rings counter-clockwise and holes clockwise. Regions
        inside a hole of another region are polygons of their own.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {mask.shape}")
    h, w = mask.shape
    # A lattice with pixel (r, c)'s centre at (2r + 2, 2c + 2) and its corners
    # at odd indices (lattice index k is edge coordinate (k - 1) / 2). Dilated,
    # it is the closed union of the RoI's pixel squares, whose borders OpenCV
    # traces through lattice points, i.e. along pixel edges.
    lattice = np.zeros((2 * h + 3, 2 * w + 3), np.uint8)
    lattice[2:-1:2, 2:-1:2] = mask > 0
    lattice = cv2.dilate(lattice, np.ones((3, 3), np.uint8))
    contours, hierarchy = cv2.findContours(lattice, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    if hierarchy is None:
        return []
    hierarchy = hierarchy[0]
    polygons = []
    for i, contour in enumerate(contours):
        if hierarchy[i][3] != -1:
            continue  # a hole: collected with its region
        rings = [_closed(_edge_path(contour[:, 0, :]), ccw=True)]
        child = hierarchy[i][2]
        while child != -1:
            rings.append(_closed(_edge_path(contours[child][:, 0, :]), ccw=False))
            child = hierarchy[child][0]
        polygons.append(rings)
    polygons.sort(key=lambda rings: (rings[0][:, 1].min(), rings[0][:, 0].min()))  # raster order
    return polygons


def _ring_coords(ring: np.ndarray, scale: float) -> list:
    """A ring as JSON-ready [[x, y], ...], integers where the coordinates are whole."""
    xy = ring * scale
    whole = np.rint(xy)
    if np.array_equal(whole, xy) and np.abs(whole).max(initial=0) < 2**53:
        return whole.astype(np.int64).tolist()
    return xy.tolist()


def mask_to_geojson(
    mask: np.ndarray,
    *,
    name: str | None = "RoI",
    color: tuple[int, int, int] = (255, 0, 0),
    downsample: float = 1.0,
    split: bool = False,
) -> dict:
    """Describe a mask as a QuPath-compatible GeoJSON FeatureCollection.

    Parameters
    ----------
    mask : ndarray of shape (H, W)
        Non-zero pixels are the RoI.
    name : str or None
        QuPath classification name of the annotation(s); None leaves them
        unclassified.
    color : tuple of int
        Classification colour (R, G, B).
    downsample : float
        Full-resolution pixels per mask pixel; coordinates are multiplied by
        it (a mask drawn on a 1/4-size image uses 4).
    split : bool
        One ``Polygon`` Feature per connected region instead of one Feature
        (a ``Polygon`` or a ``MultiPolygon``) for the whole mask.

    Returns
    -------
    geojson : dict
        ``{"type": "FeatureCollection", "features": [...]}``; no features for
        an empty mask. Each Feature has ``properties.objectType ==
        "annotation"`` and ``properties.classification = {"name", "color"}``.
    """
    polygons = mask_polygons(mask)
    scale = float(downsample)

    def coords(rings: list[np.ndarray]) -> list:
        return [_ring_coords(ring, scale) for ring in rings]

    properties: dict[str, Any] = {"objectType": "annotation"}
    if name is not None:
        properties["classification"] = {"name": str(name), "color": [int(v) for v in color]}

    def feature(geometry: dict) -> dict:
        return {"type": "Feature", "geometry": geometry, "properties": json.loads(json.dumps(properties))}

    if not polygons:
        features = []
    elif split:
        features = [feature({"type": "Polygon", "coordinates": coords(p)}) for p in polygons]
    elif len(polygons) == 1:
        features = [feature({"type": "Polygon", "coordinates": coords(polygons[0])})]
    else:
        features = [feature({"type": "MultiPolygon", "coordinates": [coords(p) for p in polygons]})]
    return {"type": "FeatureCollection", "features": features}


# ------------------------------------------------------------------ filling
class _Budget:
    """Counts vertices and crossings against the import's caps."""

    def __init__(self, vertices: int, crossings: int):
        self.vertices, self.crossings = int(vertices), int(crossings)

    def take_vertices(self, n: int) -> None:
        self.vertices -= int(n)
        if self.vertices < 0:
            raise ValueError(f"more than {MAX_VERTICES:,} polygon vertices (simplify the annotations before export)")

    def take_crossings(self, n: int) -> None:
        self.crossings -= int(n)
        if self.crossings < 0:
            raise ValueError(f"the polygons cross the mask's rows more than {MAX_CROSSINGS:,} times "
                             "(too many or too complex polygons; simplify them or use a smaller mask)")


def _ring_array(ring: Any, budget: _Budget | None = None) -> np.ndarray:
    if not isinstance(ring, list):
        raise ValueError(f"a polygon ring must be a list of positions, got {type(ring).__name__}")
    if budget is not None:
        budget.take_vertices(len(ring))
    try:
        pts = np.array([[float(p[0]), float(p[1])] for p in ring], dtype=np.float64)
    except (TypeError, ValueError, IndexError, KeyError, OverflowError):
        raise ValueError("a polygon ring holds a position that is not [x, y] numbers") from None
    if pts.size and not np.isfinite(pts).all():
        raise ValueError("a polygon ring holds a non-finite coordinate")
    return pts.reshape(-1, 2)


def _polygon_rings(geometry: Any, budget: _Budget | None = None, depth: int = 0) -> Iterator[list[np.ndarray]]:
    """Yield each polygon of a geometry as [outer, hole, ...] rings."""
    if depth > MAX_DEPTH:
        raise ValueError(f"geometries nested more than {MAX_DEPTH} deep")
    if not isinstance(geometry, dict):
        raise ValueError(f"a geometry must be an object, got {type(geometry).__name__}")
    kind = geometry.get("type")
    if kind == "Polygon":
        rings = geometry.get("coordinates")
        if not isinstance(rings, list):
            raise ValueError("Polygon coordinates must be a list of rings")
        if rings:
            yield [_ring_array(r, budget) for r in rings]
    elif kind == "MultiPolygon":
        polys = geometry.get("coordinates")
        if not isinstance(polys, list):
            raise ValueError("MultiPolygon coordinates must be a list of polygons")
        for rings in polys:
            if not isinstance(rings, list):
                raise ValueError("MultiPolygon coordinates must be a list of polygons")
            if rings:
                yield [_ring_array(r, budget) for r in rings]
    elif kind == "GeometryCollection":
        geometries = geometry.get("geometries") or []
        if not isinstance(geometries, list):
            raise ValueError("GeometryCollection 'geometries' must be a list")
        for g in geometries:
            yield from _polygon_rings(g, budget, depth + 1)
    elif kind in ("Point", "MultiPoint", "LineString", "MultiLineString"):
        return  # encloses no area
    else:
        raise ValueError(f"unknown geometry type {kind!r:.60}")


def _feature_name(feature: dict) -> str | None:
    props = feature.get("properties") or {}
    cls = props.get("classification")
    if isinstance(cls, dict):
        return cls.get("name")
    return cls if isinstance(cls, str) else None


def _geometries(obj: Any, names: set[str] | None, object_types: set[str] | None, depth: int = 0) -> Iterator[dict]:
    if depth > MAX_DEPTH:
        raise ValueError(f"features nested more than {MAX_DEPTH} deep")
    if isinstance(obj, list):  # QuPath's "export as array"
        for item in obj:
            yield from _geometries(item, names, object_types, depth + 1)
        return
    if not isinstance(obj, dict):
        raise ValueError(f"expected a GeoJSON object or array, got {type(obj).__name__}")
    kind = obj.get("type")
    if kind == "FeatureCollection":
        features = obj.get("features")
        if not isinstance(features, list):
            raise ValueError("FeatureCollection without a 'features' list")
        for f in features:
            yield from _geometries(f, names, object_types, depth + 1)
    elif kind == "Feature":
        props = obj.get("properties") or {}
        if not isinstance(props, dict):
            raise ValueError("Feature properties must be an object")
        if object_types is not None and props.get("objectType", "annotation") not in object_types:
            return
        if names is not None and _feature_name(obj) not in names:
            return
        if obj.get("geometry") is not None and not isinstance(obj["geometry"], dict):
            raise ValueError("Feature geometry must be an object")
        if obj.get("geometry") is not None:
            yield obj["geometry"]
    elif kind is None:
        raise ValueError("object without a GeoJSON 'type'")
    else:
        yield obj


def geojson_to_mask(
    obj: Any,
    shape: tuple[int, int],
    *,
    names: Iterable[str | None] | None = None,
    object_types: Iterable[str] | None = None,
    downsample: float = 1.0,
) -> np.ndarray:
    """Rasterise GeoJSON polygons into a mask.

    Parameters
    ----------
    obj : dict or list
        A FeatureCollection, a Feature, a bare geometry, or a list of Features.
    shape : tuple of int
        ``(H, W)`` of the mask.
    names : iterable of str, optional
        Keep only features classified with one of these names (None in the
        set keeps unclassified features). Default: every feature.
    object_types : iterable of str, optional
        Keep only features of these QuPath ``objectType`` values (e.g.
        ``("annotation",)`` to ignore detections). Default: every feature.
    downsample : float
        Full-resolution pixels per mask pixel; coordinates are divided by it.

    Returns
    -------
    mask : ndarray of shape (H, W), uint8
        255 where a pixel's centre lies inside a polygon (outside its holes).

    Raises
    ------
    ValueError
        When ``obj`` is not valid GeoJSON of these kinds, or exceeds the caps
        (:data:`MAX_DEPTH`, :data:`MAX_VERTICES`, :data:`MAX_CROSSINGS`).
    """
    h, w = int(shape[0]), int(shape[1])
    out = np.zeros((h, w), np.uint8)
    names_set = None if names is None else set(names)
    types_set = None if object_types is None else set(object_types)
    scale = 1.0 / float(downsample)
    budget = _Budget(MAX_VERTICES, MAX_CROSSINGS)
    for geometry in _geometries(obj, names_set, types_set):
        for rings in _polygon_rings(geometry, budget):
            rings = [r * scale for r in rings if len(r) >= 3]
            if rings:
                _fill_polygon(out, rings, budget)
    return out


def _fill_polygon(out: np.ndarray, rings: list[np.ndarray], budget: _Budget | None = None) -> None:
    """Set to 255 the pixels of ``out`` whose centre is inside the polygon.

    Even-odd rule over the outer ring and its holes: a pixel is inside when a
    ray from its centre ``(c + 0.5, r + 0.5)`` to the left crosses the rings
    an odd number of times. Exact for rings along pixel edges (no centre lies
    on an edge), unlike ``cv2.fillPoly``, which rounds vertices to pixels and
    paints the boundary. Crossings are computed for bounded chunks of edges,
    and only for the rows of the mask.
    """
    h, w = out.shape
    a = np.concatenate([r for r in rings], axis=0)
    b = np.concatenate([np.roll(r, -1, axis=0) for r in rings], axis=0)
    y0 = max(0, int(math.floor(max(a[:, 1].min(), -1.0))))
    y1 = min(h, int(math.ceil(min(a[:, 1].max(), h + 1.0))))
    x0 = max(0, int(math.floor(min(max(a[:, 0].min(), -1.0), w + 1.0))))
    if y1 <= y0 or x0 >= w:
        return
    bw = w - x0 + 1  # columns x0..w-1 plus one slot for crossings right of the mask
    ylo, yhi = np.minimum(a[:, 1], b[:, 1]), np.maximum(a[:, 1], b[:, 1])
    # Rows whose centre y + 0.5 lies in [ylo, yhi): half-open, so a vertex counts once.
    r_start = np.clip(np.ceil(ylo - 0.5), y0, y1).astype(np.int64)
    r_stop = np.clip(np.ceil(yhi - 0.5), y0, y1).astype(np.int64)
    n = np.maximum(r_stop - r_start, 0)
    total = int(n.sum())
    if total == 0:
        return
    if budget is not None:
        budget.take_crossings(total)
    parity = np.zeros((y1 - y0) * bw, np.uint8)  # crossings per (row, column) slot, modulo 2
    ends = np.cumsum(n)
    first = 0
    while first < len(a):  # chunks of whole edges holding about _CHUNK_CROSSINGS crossings
        last = max(first + 1, int(np.searchsorted(ends, ends[first] - n[first] + _CHUNK_CROSSINGS, side="right")))
        sel = slice(first, last)
        nn = n[sel]
        count = int(nn.sum())
        if count:
            edge = np.repeat(np.arange(first, last), nn)
            rows = r_start[edge] + (np.arange(count) - np.repeat(np.cumsum(nn) - nn, nn))
            ax, ay, bx, by = a[edge, 0], a[edge, 1], b[edge, 0], b[edge, 1]
            x = ax + (rows + 0.5 - ay) * (bx - ax) / (by - ay)
            # A crossing at x toggles every pixel whose centre is right of it: columns >= ceil(x - 0.5).
            edge_x = np.nan_to_num(np.ceil(x - 0.5), nan=float(w), posinf=float(w), neginf=float(x0))
            col = np.clip(edge_x, x0, w).astype(np.int64) - x0
            keys, counts = np.unique((rows - y0) * bw + col, return_counts=True)
            parity[keys] ^= (counts & 1).astype(np.uint8)
        first = last
    # Parity of the crossings left of each pixel (uint8 overflow keeps parity).
    inside = (np.cumsum(parity.reshape(y1 - y0, bw)[:, :-1], axis=1, dtype=np.uint8) & 1).astype(bool)
    out[y0:y1, x0:w][inside] = 255


# ------------------------------------------------------------------ files
def export_geojson(path: str | os.PathLike, mask: np.ndarray, **kwargs: Any) -> Path:
    """Write `mask_to_geojson` (same keyword arguments) to ``path`` atomically."""
    obj = mask_to_geojson(mask, **kwargs)
    return atomic_write_text(path, json.dumps(obj, separators=(",", ":")) + "\n")


def import_geojson(path: str | os.PathLike, shape: tuple[int, int], **kwargs: Any) -> np.ndarray:
    """Read a GeoJSON file (QuPath export) into a mask of ``shape`` (H, W).

    Keyword arguments are those of `geojson_to_mask`.

    Raises
    ------
    MaskError
        Naming the file when it is missing, not JSON, or not polygon GeoJSON.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise MaskError(path, f"the GeoJSON file is {size / 2**20:.0f} MiB, more than the {MAX_FILE_BYTES >> 20} MiB accepted")
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise MaskError(path, f"cannot read GeoJSON: {exc}") from exc
    if not text.strip():
        raise MaskError(path, "the GeoJSON file is empty")
    depth = _json_depth(text)
    if depth > MAX_DEPTH:
        raise MaskError(path, f"not usable GeoJSON: arrays and objects nested {depth} deep (at most {MAX_DEPTH})")
    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise MaskError(path, f"not valid JSON ({exc})") from None
    try:
        return geojson_to_mask(obj, shape, **kwargs)
    except (ValueError, RecursionError, MemoryError) as exc:
        raise MaskError(path, f"not usable GeoJSON: {exc}") from None


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def _json_depth(text: str) -> int:
    """Deepest nesting of arrays and objects in JSON text, found without recursion."""
    data = np.frombuffer(_STRING.sub('""', text).encode("utf-8", "replace"), np.uint8)
    step = (np.isin(data, (ord("["), ord("{"))).astype(np.int32) - np.isin(data, (ord("]"), ord("}"))).astype(np.int32))
    return int(np.cumsum(step).max(initial=0))
