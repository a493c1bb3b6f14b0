"""QuPath GeoJSON interchange: exact round trips, hand-written QuPath files, errors."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from gusa_core.errors import MaskError
from gusa_core.geojson import export_geojson, geojson_to_mask, import_geojson, mask_polygons, mask_to_geojson


def _area(ring) -> float:
    """Shoelace signed area of a closed [x, y] ring (positive = counter-clockwise in x/y)."""
    a = np.asarray(ring, float)
    return 0.5 * float(np.sum(a[:-1, 0] * a[1:, 1] - a[1:, 0] * a[:-1, 1]))


def _iou(a, b) -> float:
    a, b = a > 0, b > 0
    return (a & b).sum() / max(1, (a | b).sum())


def _donuts() -> np.ndarray:
    m = np.zeros((120, 160), np.uint8)
    cv2.circle(m, (50, 60), 40, 255, -1)
    cv2.circle(m, (50, 60), 15, 0, -1)  # a hole
    cv2.circle(m, (50, 60), 5, 255, -1)  # an island in the hole
    cv2.rectangle(m, (110, 10), (150, 50), 255, -1)
    m[20:30, 120:125] = 0  # a second hole
    m[100:110, 130:140] = 255  # a third component
    m[0:3, 0:3] = 255  # touching the border
    return m


def _features_area(gj) -> float:
    total = 0.0
    for f in gj["features"]:
        g = f["geometry"]
        polys = [g["coordinates"]] if g["type"] == "Polygon" else g["coordinates"]
        for rings in polys:
            total += sum(_area(r) for r in rings)
    return total


def test_round_trip_is_exact_with_holes_islands_and_components():
    m = _donuts()
    gj = mask_to_geojson(m, name="Tumor", color=(200, 0, 0))
    assert gj["type"] == "FeatureCollection" and len(gj["features"]) == 1
    f = gj["features"][0]
    assert f["type"] == "Feature" and f["geometry"]["type"] == "MultiPolygon"
    assert f["properties"] == {"objectType": "annotation", "classification": {"name": "Tumor", "color": [200, 0, 0]}}
    assert len(f["geometry"]["coordinates"]) == 5  # corner, square, disc, island, small square
    back = geojson_to_mask(gj, m.shape)
    np.testing.assert_array_equal(back, m)
    # Along pixel edges: the polygons' area is the pixel count (QuPath measures the same).
    assert _features_area(gj) == pytest.approx((m > 0).sum())


def test_rings_are_closed_outer_ccw_holes_cw_and_json_serialisable():
    gj = json.loads(json.dumps(mask_to_geojson(_donuts(), split=True)))
    assert len(gj["features"]) == 5
    n_holes = 0
    for f in gj["features"]:
        assert f["geometry"]["type"] == "Polygon"
        outer, *holes = f["geometry"]["coordinates"]
        for ring in [outer, *holes]:
            assert ring[0] == ring[-1] and len(ring) >= 5
        assert _area(outer) > 0
        assert all(_area(h) < 0 for h in holes)
        n_holes += len(holes)
    assert n_holes == 2


def test_pixel_edge_convention():
    m = np.zeros((10, 10), np.uint8)
    m[2:5, 3:7] = 255  # rows 2..4, cols 3..6
    (rings,) = mask_polygons(m)
    xs, ys = rings[0][:, 0], rings[0][:, 1]
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (3, 7, 2, 5)
    gj = mask_to_geojson(m, downsample=4)
    coords = np.array(gj["features"][0]["geometry"]["coordinates"][0])
    assert (coords[:, 0].min(), coords[:, 0].max()) == (12, 28)
    np.testing.assert_array_equal(geojson_to_mask(gj, m.shape, downsample=4), m)


def test_random_masks_round_trip_exactly():
    rng = np.random.default_rng(0)
    for _ in range(60):
        shape = tuple(int(v) for v in rng.integers(1, 40, size=2))
        m = ((rng.random(shape) < rng.random()) * 255).astype(np.uint8)
        gj = mask_to_geojson(m)
        np.testing.assert_array_equal(geojson_to_mask(gj, shape), m)
        assert _features_area(gj) == pytest.approx((m > 0).sum())


def test_real_tissue_mask_round_trip(he_tif, tmp_path):
    from gusa_core.imageio import read_image, resize_image

    image = resize_image(read_image(he_tif), (512, 384))
    sat = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)[:, :, 1]
    blobby = ((cv2.GaussianBlur(sat, (0, 0), 2) > 60) * 255).astype(np.uint8)
    assert 0.05 < (blobby > 0).mean() < 0.95
    path = export_geojson(tmp_path / "tissue.geojson", blobby, name="Tumor", downsample=4.0)
    back = import_geojson(path, blobby.shape, downsample=4.0)
    assert _iou(back, blobby) > 0.99
    np.testing.assert_array_equal(back, blobby)
    full = import_geojson(path, (1536, 2048))
    small = cv2.resize(full, (512, 384), interpolation=cv2.INTER_NEAREST)
    assert _iou(small, blobby) > 0.99


# QuPath's documented export: objectType and classification {name, color}.
_QUPATH_FC = {
    "type": "FeatureCollection",
    "features": [
        {
            "type": "Feature",
            "id": "0b4b1e8c-8c1e-4c5a-9a0e-6f1c0c1f0a11",
            "geometry": {
                "type": "Polygon",
                "coordinates": [
                    [[100, 100], [300, 100], [300, 300], [100, 300], [100, 100]],
                    [[150, 150], [150, 250], [250, 250], [250, 150], [150, 150]],
                ],
            },
            "properties": {"objectType": "annotation", "classification": {"name": "Tumor", "color": [200, 0, 0]}},
        },
        {
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [[[320.5, 20.5], [390.5, 20.5], [355.5, 80.5], [320.5, 20.5]]]},
            "properties": {"objectType": "annotation", "classification": {"name": "Stroma", "color": [150, 200, 150]}},
        },
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [10, 10]},
            "properties": {"objectType": "annotation"},
        },
    ],
}


def test_qupath_feature_collection_imports_expected_pixels(tmp_path):
    path = tmp_path / "qupath.geojson"
    path.write_text(json.dumps(_QUPATH_FC))
    m = import_geojson(path, (400, 400))
    assert m.dtype == np.uint8 and set(np.unique(m)) <= {0, 255}
    # (row, col) = (y, x)
    assert m[120, 120] == 255 and m[290, 200] == 255  # inside the square
    assert m[200, 200] == 0 and m[160, 160] == 0  # in the hole
    assert m[50, 50] == 0 and m[350, 350] == 0  # outside
    assert m[40, 355] == 255  # inside the triangle
    square = m[:, :310]
    assert abs(int((square > 0).sum()) - (200 * 200 - 100 * 100)) / 30000 < 0.02
    triangle = (m[:, 310:] > 0).sum()
    assert abs(triangle - 0.5 * 70 * 60) / (0.5 * 70 * 60) < 0.05
    only_tumor = import_geojson(path, (400, 400), names=["Tumor"])
    assert only_tumor[40, 355] == 0 and only_tumor[120, 120] == 255


def test_plain_array_single_feature_and_bare_geometry_forms():
    square_rings = _QUPATH_FC["features"][0]["geometry"]["coordinates"]
    expected = geojson_to_mask(_QUPATH_FC["features"][0], (400, 400))
    as_array = [_QUPATH_FC["features"][0]]  # QuPath's "export as array"
    np.testing.assert_array_equal(geojson_to_mask(json.loads(json.dumps(as_array)), (400, 400)), expected)
    np.testing.assert_array_equal(geojson_to_mask({"type": "Polygon", "coordinates": square_rings}, (400, 400)), expected)
    multi = {"type": "MultiPolygon", "coordinates": [square_rings, [[[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]]]]}
    mm = geojson_to_mask(multi, (400, 400))
    assert (mm[:10, :10] == 255).all() and mm[10, 10] == 0
    np.testing.assert_array_equal(mm[:, 50:], expected[:, 50:])
    coll = {"type": "GeometryCollection", "geometries": [{"type": "Polygon", "coordinates": square_rings}]}
    np.testing.assert_array_equal(geojson_to_mask(coll, (400, 400)), expected)


def test_filters_and_old_qupath_classification():
    feats = [
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [4, 0], [4, 4], [0, 4], [0, 0]]]},
         "properties": {"classification": {"name": "Tumor", "colorRGB": -3670016}, "isLocked": False}},
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[6, 6], [9, 6], [9, 9], [6, 9], [6, 6]]]},
         "properties": {"objectType": "detection"}},
    ]  # fmt: skip
    all_ = geojson_to_mask(feats, (10, 10))
    assert all_[1, 1] == 255 and all_[7, 7] == 255
    tumor = geojson_to_mask(feats, (10, 10), names={"Tumor"})
    assert tumor[1, 1] == 255 and tumor[7, 7] == 0
    ann = geojson_to_mask(feats, (10, 10), object_types=["annotation"])
    assert ann[1, 1] == 255 and ann[7, 7] == 0


def test_empty_mask_and_out_of_bounds_polygons():
    gj = mask_to_geojson(np.zeros((5, 5), np.uint8))
    assert gj == {"type": "FeatureCollection", "features": []}
    big = {"type": "Polygon", "coordinates": [[[-50, -50], [500, -50], [500, 500], [-50, 500], [-50, -50]]]}
    assert geojson_to_mask(big, (6, 7)).all()
    away = {"type": "Polygon", "coordinates": [[[100, 100], [200, 100], [200, 200], [100, 100]]]}
    assert not geojson_to_mask(away, (6, 7)).any()


@pytest.mark.parametrize(
    "content, words",
    [
        ("", "empty"),
        ("{not json", "not valid JSON"),
        ('{"type": "Feature", "geometry": {"type": "Hexagon", "coordinates": []}}', "Hexagon"),
        ('{"type": "Polygon", "coordinates": [[[0, 0], ["a", 1], [2, 2]]]}', "position"),
        ('{"features": []}', "type"),
        ("42", "expected"),
    ],
)
def test_bad_files_raise_mask_error_naming_the_file(tmp_path, content, words):
    path = tmp_path / "bad.geojson"
    path.write_text(content)
    with pytest.raises(MaskError) as info:
        import_geojson(path, (10, 10))
    assert str(path) in str(info.value) and words in str(info.value)


def test_missing_file_and_atomic_export(tmp_path):
    with pytest.raises(MaskError, match="missing.geojson"):
        import_geojson(tmp_path / "missing.geojson", (10, 10))
    m = _donuts()
    out = export_geojson(tmp_path / "sub" / "roi.geojson", m, name="RoI", color=(1, 2, 3))
    assert out.is_file() and [p.name for p in out.parent.iterdir()] == ["roi.geojson"]
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["features"][0]["properties"]["classification"] == {"name": "RoI", "color": [1, 2, 3]}
