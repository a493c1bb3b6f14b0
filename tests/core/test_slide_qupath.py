"""Slide outputs as QuPath reads them: the heatmap TIFF through OpenSlide, the fields as GeoJSON detections.

What QuPath expects is taken from its source (github.com/qupath/qupath):
``OpenslideServerBuilder.supportLevel`` (OpenSlide claims a TIFF before Bio-Formats only when
it is 8-bit RGB), ``OpenslideImageServer`` (pixel size from ``openslide.mpp-x/y``, tile size
from ``openslide.level[0].tile-width``, crop to ``openslide.bounds-*``) and
``QuPathTypeAdapters.PathObjectTypeAdapter`` (``objectType``, ``classification`` with
``name`` and ``color``, ``measurements`` as an object of numbers, ``"NaN"`` strings).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import openslide
import pytest
import tifffile

from gusa_core.inference.slide import FieldResult, FieldSettings, SlideResult, predict_slide
from gusa_core.inference.slide_outputs import fields_geojson, read_fields_geojson, write_slide_outputs
from gusa_core.slides import open_slide

from vendor_fixtures import write_scn


def _result(*, origin=(0, 0), shape=(600, 800), mpp=0.5, downsample=8.0) -> SlideResult:
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    probs = np.stack([xx / w, 1 - xx / w]).astype(np.float32)
    valid = (yy > 20) & (xx > 30)
    fields = [
        FieldResult((1000, 2000, 512, 384), 0.9, np.array([0.8, 0.2]), 0.4),
        FieldResult((1512, 2000, 512, 384), 0.5, np.array([0.3, 0.7]), float("nan")),  # no attention: NaN
    ]
    return SlideResult(
        path=Path("slide.svs"), class_names=["Normal", "Invasive"], dimensions=(int(w * downsample), int(h * downsample)),
        mpp=(mpp, mpp), settings=FieldSettings(), footprint=(512.0, 384.0), downsample=downsample, probs=probs,
        attention=probs[0].copy(), coverage=valid, tissue=np.ones((h, w), bool), fields=fields, origin=origin,
    )


def test_heatmap_tiff_is_a_pyramid_qupath_gives_to_openslide(tmp_path):
    r = _result()
    write_slide_outputs(r, tmp_path)
    path = tmp_path / "heatmap_Normal.tif"
    with tifffile.TiffFile(path) as tif:
        pages = list(tif.pages)
        # QuPath's FileFormatInfo: 8-bit, 3 samples (maybe RGB), the largest image once -> OpenSlide (3.5) over Bio-Formats (3)
        assert [p.samplesperpixel for p in pages] == [3] * len(pages) and all(p.bitspersample == 8 for p in pages)
        assert sum(1 for p in pages if p.shape[:2] == pages[0].shape[:2]) == 1
        # OpenSlide's generic-tiff driver: tiled pages, the reduced ones marked NewSubfileType 1, no SubIFDs
        assert all(p.is_tiled and (p.tilewidth, p.tilelength) == (256, 256) for p in pages)
        assert [p.subfiletype for p in pages] == [0] + [1] * (len(pages) - 1) and not pages[0].subifds
        assert pages[0].tags["ResolutionUnit"].value == 3
    osr = openslide.OpenSlide(str(path))
    assert osr.properties["openslide.vendor"] == "generic-tiff"
    assert osr.level_dimensions == ((800, 600), (400, 300), (200, 150))
    assert float(osr.properties["openslide.mpp-x"]) == pytest.approx(0.5 * 8.0)  # µm per heatmap pixel
    assert float(osr.properties["openslide.mpp-y"]) == pytest.approx(0.5 * 8.0)
    assert osr.properties["openslide.level[0].tile-width"] == "256"
    rgba = np.asarray(osr.read_region((0, 0), 0, (800, 600)))
    expected = np.where(r.valid, 1 + np.round(r.probs[0] * 254), 0)
    assert (rgba[..., 0] == rgba[..., 1]).all() and (rgba[..., 1] == rgba[..., 2]).all()
    assert np.abs(rgba[..., 0].astype(int) - expected).max() <= 1
    coarse = np.asarray(osr.read_region((0, 0), 2, (200, 150)))[..., 0]
    assert coarse.shape == (150, 200) and coarse[100, 150] == expected[400, 600]  # each level its own pixels
    with open_slide(path) as slide:  # and the app's reader agrees
        assert slide.level_count == 3 and slide.mpp == pytest.approx((4.0, 4.0))


def _strict(text: str):
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def test_fields_geojson_is_what_qupaths_reader_takes(tmp_path):
    write_slide_outputs(_result(), tmp_path, tiff=False)
    obj = _strict((tmp_path / "fields.geojson").read_text(encoding="utf-8"))
    assert obj["type"] == "FeatureCollection" and len(obj["features"]) == 2
    for feat in obj["features"]:
        uuid.UUID(feat["id"])
        assert feat["type"] == "Feature" and feat["geometry"]["type"] == "Polygon"
        ring = feat["geometry"]["coordinates"][0]
        assert len(ring) == 5 and ring[0] == ring[-1]
        props = feat["properties"]
        assert props["objectType"] == "detection"
        cls = props["classification"]
        assert set(cls) == {"name", "color"} and len(cls["color"]) == 3 and all(isinstance(c, int) for c in cls["color"])
        assert isinstance(props["measurements"], dict)
        assert all(isinstance(v, float) or v == "NaN" for v in props["measurements"].values())
    first, second = obj["features"]
    assert first["properties"]["classification"]["name"] == "Normal"
    assert second["properties"]["classification"]["name"] == "Invasive"
    assert first["properties"]["measurements"] == {"prob Normal": 0.8, "prob Invasive": 0.2, "tissue": 0.9, "attention": 0.4}
    assert second["properties"]["measurements"]["attention"] == "NaN"
    assert first["geometry"]["coordinates"][0][:3] == [[1000, 2000], [1512, 2000], [1512, 2384]]
    # the same field keeps its id from one run to the next
    assert fields_geojson(_result())["features"][0]["id"] == first["id"]


def test_geojson_is_in_qupaths_frame_for_slides_it_crops(tmp_path):
    obj = fields_geojson(_result(origin=(600, 1500)))
    assert obj["features"][0]["geometry"]["coordinates"][0][0] == [400, 500]
    assert obj["gusa"]["origin"] == [600, 1500]
    (tmp_path / "f.geojson").write_text(json.dumps(obj))
    assert read_fields_geojson(tmp_path / "f.geojson")[0]["box"] == (1000.0, 2000.0, 512.0, 384.0)  # level 0 again


def test_leica_slide_is_cropped_by_qupath_and_its_fields_follow(tiny_run, tmp_path):
    from gusa_core.inference import Predictor

    # a BACH field at 3.36 µm/px is 256 x 192 level-0 pixels: one scanned region, a few fields
    region = (256, 192, 768, 576)
    path = write_scn(tmp_path / "s.scn", 1536, 1152, regions=[region], levels=(1, 4), mpp=3.36,
                     jpeg=False)
    with open_slide(path) as slide:
        assert slide.bounds == region and slide.qupath_origin == (256, 192)
    _, run_dir = tiny_run
    r = predict_slide(Predictor.from_run(run_dir, device="cpu"), path)
    assert r.origin == (256, 192) and r.fields
    write_slide_outputs(r, tmp_path / "out", tiff=False)
    obj = _strict((tmp_path / "out" / "fields.geojson").read_text(encoding="utf-8"))
    for feat, f in zip(obj["features"], r.fields):
        x0, y0 = feat["geometry"]["coordinates"][0][0]
        assert (x0, y0) == (f.box[0] - 256, f.box[1] - 192)
    back = read_fields_geojson(tmp_path / "out" / "fields.geojson")
    assert [b["box"] for b in back] == [tuple(float(v) for v in f.box) for f in r.fields]
    assert json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))["qupath_origin"] == [256, 192]


def test_painted_regions_export_in_qupaths_frame_and_come_back():
    from gusa_core.slides.annotations import geojson_to_labels, labels_to_geojson

    classes = ["Normal", "Benign", "InSitu", "Invasive"]
    labels = np.zeros((40, 50), np.uint8)
    labels[10:20, 5:15] = 2
    plain = labels_to_geojson(labels, downsample=8, class_names=classes)
    shifted = labels_to_geojson(labels, downsample=8, class_names=classes, origin=(256, 192))
    a = np.array(plain["features"][0]["geometry"]["coordinates"][0])
    b = np.array(shifted["features"][0]["geometry"]["coordinates"][0])
    np.testing.assert_array_equal(b, a - [256, 192])
    back, skipped = geojson_to_labels(json.loads(json.dumps(shifted)), labels.shape, downsample=8, class_names=classes,
                                      origin=(256, 192))
    np.testing.assert_array_equal(back, labels)
    assert skipped == []


def test_project_regions_of_a_leica_slide_round_trip_in_qupaths_frame(tmp_path):
    from gusa_core.project import Project
    from gusa_core.project.slides import add_paths, export_regions_geojson, import_regions_geojson, slide_info

    path = write_scn(tmp_path / "s.scn", 2048, 1536, regions=[(512, 256, 1024, 768)], levels=(1, 4), jpeg=False)
    project = Project.create(tmp_path / "proj")
    sid = add_paths(project, [path])[0].id
    info = slide_info(project, sid)
    labels = np.zeros(info.label_shape, np.uint8)
    d = info.downsample
    labels[512 // d : 768 // d, 640 // d : 1024 // d] = 2  # Benign: level-0 x 640..1024, y 512..768
    out = export_regions_geojson(project, sid, tmp_path / "regions.geojson", labels)
    ring = np.array(json.loads(out.read_text(encoding="utf-8"))["features"][0]["geometry"]["coordinates"][0])
    assert (ring[:, 0].min(), ring[:, 1].min(), ring[:, 0].max(), ring[:, 1].max()) == (128, 256, 512, 512)
    back, skipped = import_regions_geojson(project, sid, out)
    np.testing.assert_array_equal(back, labels)
    assert skipped == []
    project.close()
