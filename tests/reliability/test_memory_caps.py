"""Bounded memory: images are refused from their header before decoding; GeoJSON has depth, vertex and
crossing caps and rasterises in bounded chunks. Messages name the file; nothing outside the test's folder changes."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest
from _snapshot import outside_snapshot  # noqa: F401 - a fixture

from gusa_core import geojson
from gusa_core.errors import GusaError, ImageReadError, MaskError
from gusa_core.imageio import DEFAULT_MAX_IMAGE_BYTES, image_size, max_image_bytes, read_image, read_mask

pytestmark = pytest.mark.usefixtures("outside_snapshot")


def _peak_mib(fn, *args, **kwargs):
    """Run ``fn`` and return (its exception or result, peak traced allocation in MiB)."""
    tracemalloc.start()
    try:
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - returned for the test to check
            result = exc
        return result, tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


@pytest.fixture
def big_16bit_tiff(tmp_path):
    """A 3000x3000 RGB 16-bit TIFF: 54 MB decoded, a few hundred KB on disk."""
    import tifffile

    path = tmp_path / "big16.tif"
    tifffile.imwrite(path, np.zeros((3000, 3000, 3), np.uint16), photometric="rgb", compression="zlib", rowsperstrip=256)
    assert path.stat().st_size < 2_000_000
    return path


def test_default_cap_and_environment(monkeypatch):
    monkeypatch.delenv("GUSA_MAX_IMAGE_BYTES", raising=False)
    assert max_image_bytes() == DEFAULT_MAX_IMAGE_BYTES == 2 * 2**30
    monkeypatch.setenv("GUSA_MAX_IMAGE_BYTES", "64M")
    assert max_image_bytes() == 64 * 2**20
    monkeypatch.setenv("GUSA_MAX_IMAGE_BYTES", "123456")
    assert max_image_bytes() == 123456
    monkeypatch.setenv("GUSA_MAX_IMAGE_BYTES", "lots")
    with pytest.raises(GusaError, match="GUSA_MAX_IMAGE_BYTES"):
        max_image_bytes()


def test_16bit_tiff_above_the_cap_is_refused_before_decoding(big_16bit_tiff, monkeypatch):
    monkeypatch.setenv("GUSA_MAX_IMAGE_BYTES", "16M")
    error, peak = _peak_mib(read_image, big_16bit_tiff)
    assert isinstance(error, ImageReadError) and error.path == str(big_16bit_tiff)
    assert "3000x3000x3 uint16" in str(error) and "51.5 MiB" in str(error) and "16.0 MiB" in str(error)
    assert "GUSA_MAX_IMAGE_BYTES" in str(error)
    assert peak < 8, f"{peak:.0f} MiB allocated before refusing"
    assert image_size(big_16bit_tiff) == (3000, 3000)  # the header alone is still readable


def test_16bit_tiff_below_the_cap_decodes_in_bands(big_16bit_tiff, monkeypatch):
    """Under the cap, 8-bit conversion adds bands, not whole float copies: peak ~ decoded + output."""
    monkeypatch.setenv("GUSA_MAX_IMAGE_BYTES", "64M")
    image, peak = _peak_mib(read_image, big_16bit_tiff)
    assert isinstance(image, np.ndarray) and image.shape == (3000, 3000, 3) and image.dtype == np.uint8
    decoded, output = 3000 * 3000 * 3 * 2 / 2**20, 3000 * 3000 * 3 / 2**20
    assert peak < decoded + output + 80, f"{peak:.0f} MiB for {decoded:.0f} MiB decoded"


def test_png_and_mask_above_the_cap_are_refused(tmp_path, monkeypatch):
    from PIL import Image

    path = tmp_path / "huge.png"
    Image.new("L", (5000, 4000)).save(path)
    monkeypatch.setenv("GUSA_MAX_IMAGE_BYTES", "8M")
    error, peak = _peak_mib(read_image, path)
    assert isinstance(error, ImageReadError) and "5000x4000" in str(error) and str(path) in str(error)
    error, peak_mask = _peak_mib(read_mask, path)
    assert isinstance(error, MaskError) and "5000x4000" in str(error) and str(path) in str(error)
    assert max(peak, peak_mask) < 8


def test_deeply_nested_geojson_is_refused_not_a_recursion_error(tmp_path):
    path = tmp_path / "deep.geojson"
    path.write_text('{"type": "FeatureCollection", "features": ' + "[" * 200_000 + "]" * 200_000 + "}")
    with pytest.raises(MaskError, match="nested 200001 deep") as info:
        geojson.import_geojson(path, (10, 10))
    assert info.value.path == str(path)


def test_deep_geometry_collections_are_refused(tmp_path):
    geometry = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}
    for _ in range(40):  # JSON depth 80, beyond MAX_DEPTH = 64
        geometry = {"type": "GeometryCollection", "geometries": [geometry]}
    path = tmp_path / "deep.geojson"
    path.write_text(json.dumps(geometry))
    with pytest.raises(MaskError, match="nested"):
        geojson.import_geojson(path, (10, 10))


def _random_polygon(n: int, extent: float, seed: int = 0) -> dict:
    pts = np.random.default_rng(seed).uniform(0, extent, (n, 2)).round(2).tolist()
    return {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [pts + [pts[0]]]}}


def test_vertex_cap_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(geojson, "MAX_VERTICES", 1000)
    path = tmp_path / "many.geojson"
    path.write_text(json.dumps(_random_polygon(2000, 100)))
    with pytest.raises(MaskError, match="more than 1,000 polygon vertices") as info:
        geojson.import_geojson(path, (100, 100))
    assert info.value.path == str(path)


def test_crossing_cap_refuses_a_polygon_too_complex_for_the_mask(tmp_path, monkeypatch):
    monkeypatch.setattr(geojson, "MAX_CROSSINGS", 1_000_000)
    path = tmp_path / "zigzag.geojson"
    path.write_text(json.dumps(_random_polygon(20_000, 1000)))
    error, peak = _peak_mib(geojson.import_geojson, path, (1000, 1000))
    assert isinstance(error, MaskError) and "cross the mask's rows more than 1,000,000 times" in str(error)
    assert error.path == str(path)


def test_rasterising_a_large_polygon_is_bounded_and_exact(tmp_path, monkeypatch):
    """Chunks of edges give the same mask as one pass, in a fraction of the memory."""
    obj = _random_polygon(20_000, 1000, seed=1)
    whole = geojson.geojson_to_mask(obj, (1000, 1000))
    monkeypatch.setattr(geojson, "_CHUNK_CROSSINGS", 100_000)
    chunked, peak = _peak_mib(geojson.geojson_to_mask, obj, (1000, 1000))
    np.testing.assert_array_equal(chunked, whole)
    assert 0 < np.count_nonzero(whole) < whole.size
    assert peak < 60, f"{peak:.0f} MiB"


def test_coordinates_far_outside_the_mask_are_clipped(tmp_path):
    obj = {"type": "Polygon", "coordinates": [[[-1e300, -1e300], [1e300, -1e300], [1e300, 1e300], [-1e300, 1e300], [-1e300, -1e300]]]}
    mask = geojson.geojson_to_mask(obj, (20, 30))
    assert mask.shape == (20, 30) and (mask == 255).all()
