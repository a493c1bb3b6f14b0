"""Slide viewing geometry, tile cache, label masks at a working resolution, level-0 GeoJSON and fields."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from gusa_core.errors import MaskError
from gusa_core.geojson import geojson_to_mask
from gusa_core.slides import open_slide
from gusa_core.slides.annotations import (
    geojson_to_labels,
    label_shape,
    labels_to_geojson,
    read_labels,
    working_downsample,
    write_labels,
)
from gusa_core.slides.fields import BACH_FIELD_MPP, field_footprint, field_roi, parse_field_id, sample_fields
from gusa_core.slides.tiles import TileCache, level_for_zoom, magnification_zoom, viewport_tiles

from slide_fixtures import TwoClassPainter, write_pyramid_tiff

CLASSES = ["Normal", "Benign", "InSitu", "Invasive"]

# ----------------------------------------------------------------------------- tiles


def test_level_for_zoom_never_enlarges_a_level():
    ds = [1.0, 4.0, 16.0, 64.0]
    assert level_for_zoom(ds, 1.0) == 0
    assert level_for_zoom(ds, 2.0) == 0  # past level 0: enlarge it
    assert level_for_zoom(ds, 0.26) == 0  # 1/0.26 = 3.8 < 4: level 1 would be enlarged
    assert level_for_zoom(ds, 0.25) == 1
    assert level_for_zoom(ds, 0.01) == 3
    assert level_for_zoom(ds, 0.25, oversample=2.0) == 0
    with pytest.raises(ValueError):
        level_for_zoom(ds, 0)


def test_viewport_tiles_cover_the_viewport_exactly():
    dims, ds = [(10000, 7000), (2500, 1750)], [1.0, 4.0]
    view = (3000.0, 2100.0, 4000.0, 2000.0)  # level-0
    tiles = viewport_tiles(dims, ds, 1, view, tile_size=256)
    covered = np.zeros((1750, 2500), bool)
    for t in tiles:
        x, y, w, h = t.box
        assert t.level == 1 and (x, y) == (t.col * 256, t.row * 256)
        covered[y : y + h, x : x + w] = True
    # every level-1 pixel under the viewport is in some tile; no tile lies wholly outside it
    assert covered[525:1025, 750:1750].all()
    for t in tiles:
        x, y, w, h = t.box
        assert x < 1750 and x + w > 750 and y < 1025 and y + h > 525
    # centre first
    first = tiles[0].box
    assert first[0] <= 1250 < first[0] + 256 and first[1] <= 775 < first[1] + 256
    # edge tiles are cut to the level, a viewport past the slide gives none
    edge = viewport_tiles(dims, ds, 1, (9000, 6500, 5000, 5000), tile_size=256)
    assert max(t.box[0] + t.box[2] for t in edge) == 2500 and max(t.box[1] + t.box[3] for t in edge) == 1750
    assert viewport_tiles(dims, ds, 1, (20000, 0, 100, 100), tile_size=256) == []
    assert len(viewport_tiles(dims, ds, 1, view, tile_size=256, margin=1)) > len(tiles)


def test_magnification_zoom_from_objective_or_mpp():
    assert magnification_zoom(10, 40.0, (0.25, 0.25)) == pytest.approx(0.25)
    assert magnification_zoom(40, None, (0.25, 0.25)) == pytest.approx(1.0)  # 10 / 0.25 = 40x
    assert magnification_zoom(20, None, None) is None


def test_tile_cache_is_lru_bounded_by_bytes():
    cache = TileCache(max_bytes=3000)
    for i in range(3):
        cache.put(i, np.zeros(1000, np.uint8))
    assert cache.nbytes == 3000 and len(cache) == 3
    assert cache.get(0) is not None  # 0 becomes the most recent
    cache.put(3, np.zeros(1000, np.uint8))
    assert 1 not in cache and 0 in cache and cache.keys() == [2, 0, 3]
    cache.put(4, np.zeros(5000, np.uint8))  # larger than the bound: not kept, nothing dropped
    assert 4 not in cache and len(cache) == 3
    cache.put(0, np.zeros(10, np.uint8))
    assert cache.nbytes == 2010
    cache.discard(2)
    assert cache.nbytes == 1010 and cache.get("x", "none") == "none"
    assert cache.hits == 1 and cache.misses == 1


def test_tile_cache_from_threads_stays_within_bound():
    cache = TileCache(max_bytes=50_000)

    def work(k):
        for i in range(300):
            cache.put((k, i), np.zeros(1000, np.uint8))
            cache.get((k, i - 3))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cache.nbytes == 1000 * len(cache) <= 50_000


# ----------------------------------------------------------------------------- label masks


def test_working_downsample_rules():
    assert working_downsample((40000, 30000), (0.25, 0.25)) == 16  # 4 µm/px, 2500 x 1875
    assert working_downsample((60000, 50000), (0.467, 0.467)) == 8  # BACH WSI: 3.7 µm/px
    assert working_downsample((200000, 100000), (0.25, 0.25)) == 32  # capped by the long side
    assert working_downsample((2000, 1500), None) == 1
    assert working_downsample((40000, 30000), None) == 8
    assert label_shape((40000, 30001), 16) == (1876, 2500)


def test_labels_file_round_trip_and_errors(tmp_path):
    labels = np.zeros((30, 40), np.uint8)
    labels[5:10, 3:20] = 2
    labels[20:, 30:] = 4
    path = write_labels(tmp_path / "m" / "s.png", labels)
    np.testing.assert_array_equal(read_labels(path, (30, 40), classes=4), labels)
    with pytest.raises(MaskError, match="needs 41x30"):
        read_labels(path, (30, 41))
    with pytest.raises(MaskError, match="3 classes"):
        read_labels(path, (30, 40), classes=3)
    with pytest.raises(MaskError, match="does not exist"):
        read_labels(tmp_path / "nope.png", (30, 40))


def test_labels_geojson_is_level0_and_round_trips():
    ds = 16
    labels = np.zeros((50, 60), np.uint8)
    labels[10:20, 5:15] = 1  # Normal: level-0 x 80..240, y 160..320
    labels[30:45, 40:58] = 4
    labels[32:36, 44:48] = 0  # a hole in the invasive region
    fc = labels_to_geojson(labels, downsample=ds, class_names=CLASSES, colors={"Normal": (0, 200, 0)})
    fc = json.loads(json.dumps(fc))
    names = [f["properties"]["classification"]["name"] for f in fc["features"]]
    assert names == ["Normal", "Invasive"]
    assert fc["features"][0]["properties"]["classification"]["color"] == [0, 200, 0]
    ring = np.array(fc["features"][0]["geometry"]["coordinates"][0])
    assert (ring[:, 0].min(), ring[:, 0].max(), ring[:, 1].min(), ring[:, 1].max()) == (80, 240, 160, 320)
    inv = fc["features"][1]["geometry"]["coordinates"]
    assert len(inv) == 2  # outer ring and the hole
    # an independent rasteriser at level-0 scale (per 4 px) sees the same regions
    fine = geojson_to_mask(fc, (50 * 4, 60 * 4), names={"Invasive"}, downsample=4)
    np.testing.assert_array_equal(fine[::4, ::4] > 0, labels == 4)
    back, skipped = geojson_to_labels(fc, labels.shape, downsample=ds, class_names=CLASSES)
    np.testing.assert_array_equal(back, labels)
    assert skipped == []
    fc["features"].append({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [50, 0], [50, 50], [0, 0]]]},
                           "properties": {"classification": {"name": "Tumor"}}})
    _, skipped = geojson_to_labels(fc, labels.shape, downsample=ds, class_names=CLASSES)
    assert skipped == ["Tumor"]


# ----------------------------------------------------------------------------- fields


def test_field_footprint_is_the_bach_field():
    assert field_footprint((0.25, 0.25)) == pytest.approx((2048 * BACH_FIELD_MPP / 0.25, 1536 * BACH_FIELD_MPP / 0.25))
    assert field_footprint(None) == (2048.0, 1536.0)


def test_sample_fields_label_cover_and_roi():
    ds = 8.0
    labels = np.zeros((200, 300), np.uint8)
    labels[:, :150] = 2  # Benign on the left half
    labels[50:150, 200:280] = 4  # an Invasive block on the right
    fields = sample_fields("s1", labels, ds, (40 * ds, 30 * ds), classes=4, stride=1.0, min_cover=0.5)
    assert fields and {f.label for f in fields} == {1, 3}
    for f in fields:
        x, y, w, h = (v / ds for v in f.box)
        window = labels[int(y) : int(y + h), int(x) : int(x + w)]
        assert f.cover == pytest.approx((window == f.label + 1).mean())
        assert f.cover >= 0.5 and x + w <= 300 and y + h <= 200
        roi = field_roi(labels, ds, f.box, f.label, (40, 30))  # one output pixel per label pixel here
        np.testing.assert_array_equal(roi, window == f.label + 1)
        assert parse_field_id(f.id) == ("s1", f.box)
    assert parse_field_id("plain_image") is None
    few = sample_fields("s1", labels, ds, (40 * ds, 30 * ds), classes=4, stride=1.0, max_per_class=2)
    assert sorted(f.label for f in few) == [1, 1, 3, 3]
    assert sample_fields("s1", np.zeros((50, 50), np.uint8), ds, (80, 80), classes=4) == []


def test_fields_read_from_a_generated_slide_match_their_class(tmp_path):
    """Fields sampled from a painted two-class slide show that class's texture when read back."""
    w, h = 6000, 4000
    painter = TwoClassPainter(w, h)
    path = write_pyramid_tiff(tmp_path / "two.tif", w, h, painter=painter, levels=[1, 4, 16], mpp=0.5)
    with open_slide(path) as slide:
        ds = working_downsample(slide.dimensions, slide.mpp)
        labels = np.zeros(label_shape(slide.dimensions, ds), np.uint8)
        hh, ww = labels.shape
        labels[hh // 10 : -hh // 10, ww // 10 : ww // 2 - 2] = 1  # Normal over class A
        labels[hh // 10 : -hh // 10, ww // 2 + 2 : -ww // 10] = 4  # Invasive over class B
        fields = sample_fields("two", labels, ds, field_footprint(slide.mpp), classes=4)
        assert {f.label for f in fields} == {0, 3}
        for f in fields:
            img = slide.read_field(f.box, (128, 96))
            cx = f.box[0] + f.box[2] / 2
            assert (cx < w / 2) == (f.label == 0)
            roi = field_roi(labels, ds, f.box, f.label, (128, 96))
            assert roi.mean() == pytest.approx(f.cover, abs=0.05)
            # inside its RoI, class B (purple) is darker in green than class A (pink)
            assert (img[roi][:, 1].mean() < 120) == (f.label == 3)
