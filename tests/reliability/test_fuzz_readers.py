"""Property-based tests: mutated and generated inputs to the readers raise only the project's own errors
(gusa_core.errors), and nothing outside the test's temporary folder changes.

Inputs are real small files (a PNG, a 16-bit TIFF, a tiled JPEG TIFF, a GeoJSON export, a model.json, a
run.json) with bits flipped, bytes overwritten and tails cut off, and generated GeoJSON-like documents.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from _snapshot import outside_snapshot  # noqa: F401 - a fixture
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gusa_core.errors import GusaError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: slide_fixtures
from slide_fixtures import write_pyramid_tiff  # noqa: E402

pytestmark = pytest.mark.usefixtures("outside_snapshot")

FUZZ = settings(max_examples=50, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    """Real small files to mutate, read-only for the tests."""
    import tifffile
    from PIL import Image

    from gusa_core.geojson import export_geojson

    root = tmp_path_factory.mktemp("fuzz_seeds")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(root / "image.png")
    tifffile.imwrite(root / "image16.tif", rng.integers(0, 4095, (24, 32, 3), dtype=np.uint16), photometric="rgb")
    write_pyramid_tiff(root / "tiled.tif", 256, 192, tile=64, levels=[1, 4], jpeg=True)
    mask = np.zeros((24, 32), np.uint8)
    mask[4:12, 5:20] = 255
    mask[6:8, 8:10] = 0
    Image.fromarray(mask).save(root / "mask.png")
    export_geojson(root / "roi.geojson", mask)
    return root


@pytest.fixture
def scratch(tmp_path):
    return tmp_path


def _mutate(data: bytes, flips, overwrite, cut) -> bytes:
    buf = bytearray(data)
    for pos, bit in flips:
        buf[pos % len(buf)] ^= 1 << bit
    for pos, value in overwrite:  # whole bytes: offsets and counts in headers take absurd values
        buf[pos % len(buf)] = value
    if cut is not None:
        buf = buf[: max(1, int(len(buf) * cut))]
    return bytes(buf)


mutations = st.tuples(
    st.lists(st.tuples(st.integers(0, 2**20), st.integers(0, 7)), max_size=8),
    st.lists(st.tuples(st.integers(0, 2**20), st.integers(0, 255)), max_size=4),
    st.one_of(st.none(), st.floats(0.0, 1.0)),
)


def _write(folder: Path, name: str, data: bytes) -> Path:
    out = Path(tempfile.mkdtemp(dir=folder)) / name
    out.write_bytes(data)
    return out


def _only_our_errors(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except GusaError:
        return None


@pytest.mark.parametrize("name", ["image.png", "image16.tif", "tiled.tif"])
@FUZZ
@given(mutation=mutations)
def test_image_readers_raise_only_our_errors(seeds, scratch, monkeypatch, name, mutation):
    from gusa_core.imageio import image_size, read_image, read_mask
    from gusa_core.slides import open_slide

    monkeypatch.setenv("GUSA_MAX_IMAGE_BYTES", "64M")  # a flipped header can claim any size
    path = _write(scratch, name, _mutate((seeds / name).read_bytes(), *mutation))
    image = _only_our_errors(read_image, path)
    if image is not None:
        assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8
    size = _only_our_errors(image_size, path)
    if size is not None:
        assert all(isinstance(v, int) for v in size)
    mask = _only_our_errors(read_mask, path)
    if mask is not None:
        assert mask.ndim == 2 and set(np.unique(mask)) <= {0, 255}
    slide = _only_our_errors(open_slide, path)
    if slide is not None:
        with slide:
            w, h = slide.dimensions
            region = _only_our_errors(slide.read_region, 0, (0, 0, min(w, 64), min(h, 64)))
            if region is not None:
                assert region.shape[:2] == (min(h, 64), min(w, 64))
            _only_our_errors(slide.get_thumbnail, 32)


@FUZZ
@given(mutation=mutations)
def test_geojson_import_of_mutated_exports_raises_only_our_errors(seeds, scratch, mutation):
    from gusa_core.geojson import import_geojson

    path = _write(scratch, "roi.geojson", _mutate((seeds / "roi.geojson").read_bytes(), *mutation))
    mask = _only_our_errors(import_geojson, path, (24, 32))
    if mask is not None:
        assert mask.shape == (24, 32) and mask.dtype == np.uint8


_number = st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True), st.just(1e308))
_position = st.one_of(st.lists(_number, min_size=0, max_size=3), _number, st.text(max_size=3), st.none())
_ring = st.one_of(st.lists(_position, max_size=12), st.lists(st.tuples(_number, _number).map(list), min_size=3, max_size=30))
_geometry = st.recursive(
    st.one_of(
        st.builds(lambda t, c: {"type": t, "coordinates": c},
                  st.sampled_from(["Polygon", "MultiPolygon", "Point", "LineString", "Circle", None]),
                  st.one_of(st.lists(_ring, max_size=3), st.lists(st.lists(_ring, max_size=2), max_size=2), _number)),
        st.none(), st.text(max_size=4), st.integers(),
    ),
    lambda inner: st.one_of(st.builds(lambda g: {"type": "GeometryCollection", "geometries": g}, st.lists(inner, max_size=3)),
                            st.lists(inner, max_size=3)),
    max_leaves=12,
)
_feature = st.builds(
    lambda g, p: {"type": "Feature", "geometry": g, "properties": p},
    _geometry,
    st.one_of(st.none(), st.dictionaries(st.sampled_from(["objectType", "classification", "name"]),
                                         st.one_of(st.text(max_size=5), st.integers(), st.none(), st.dictionaries(st.just("name"), st.text(max_size=3))))),
)
_document = st.one_of(
    st.builds(lambda f: {"type": "FeatureCollection", "features": f}, st.one_of(st.lists(_feature, max_size=4), _number, st.none())),
    _feature, _geometry, st.lists(_feature, max_size=4),
)


@FUZZ
@given(doc=_document, names=st.one_of(st.none(), st.lists(st.one_of(st.none(), st.text(max_size=3)), max_size=2)))
def test_geojson_import_of_generated_documents_raises_only_our_errors(scratch, doc, names):
    from gusa_core.geojson import import_geojson

    path = _write(scratch, "doc.geojson", json.dumps(doc).encode())
    mask = _only_our_errors(import_geojson, path, (16, 20), names=names)
    if mask is not None:
        assert mask.shape == (16, 20) and set(np.unique(mask)) <= {0, 255}
