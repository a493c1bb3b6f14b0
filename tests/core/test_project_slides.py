"""Slides in a project: kind "slide" records, regions saved and reopened, level-0 GeoJSON, fields."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gusa_core.errors import MaskError
from gusa_core.project import Project
from gusa_core.project.slides import (
    add_paths,
    export_regions_geojson,
    import_regions_geojson,
    is_slide,
    load_regions,
    project_fields,
    save_regions,
    slide_ids,
    slide_info,
)

from slide_fixtures import TwoClassPainter, write_pyramid_tiff


def test_slide_record_regions_geojson_round_trip(tmp_path, huge_slide):
    flat = tmp_path / "flat.png"
    import cv2

    cv2.imwrite(str(flat), np.full((40, 50, 3), 200, np.uint8))
    project = Project.create(tmp_path / "proj")
    recs = add_paths(project, [huge_slide, flat])
    assert [is_slide(r) for r in recs] == [True, False]
    sid = recs[0].id
    info = slide_info(project, sid)
    assert info.dimensions == (40_000, 30_000) and info.mpp == pytest.approx((0.25, 0.25))
    assert info.downsample == 16 and info.label_shape == (1875, 2500) and info.regions is None
    assert not load_regions(project, sid).any()
    labels = np.zeros(info.label_shape, np.uint8)
    labels[100:200, 300:500] = 4  # Invasive: level-0 x 4800..8000, y 1600..3200
    labels[1000:1100, 2000:2100] = 1
    assert save_regions(project, sid, labels).name == f"{sid}.regions.png"
    project.save()
    reopened = Project.open(project.folder)
    assert slide_ids(reopened) == [sid] and not is_slide(reopened.image(recs[1].id))
    np.testing.assert_array_equal(load_regions(reopened, sid), labels)
    out = export_regions_geojson(reopened, sid, tmp_path / "regions.geojson")
    fc = json.loads(out.read_text(encoding="utf-8"))
    by_name = {f["properties"]["classification"]["name"]: f for f in fc["features"]}
    assert set(by_name) == {"Normal", "Invasive"}
    ring = np.array(by_name["Invasive"]["geometry"]["coordinates"][0])
    assert (ring[:, 0].min(), ring[:, 0].max(), ring[:, 1].min(), ring[:, 1].max()) == (4800, 8000, 1600, 3200)
    back, skipped = import_regions_geojson(reopened, sid, out)
    np.testing.assert_array_equal(back, labels) and skipped == []
    save_regions(reopened, sid, np.zeros_like(labels))
    assert slide_info(reopened, sid).regions is None
    with pytest.raises(MaskError, match="needs 2500x1875"):
        save_regions(reopened, sid, np.zeros((10, 10), np.uint8))
    (tmp_path / "bad.geojson").write_text("{not json")
    with pytest.raises(MaskError, match="bad.geojson"):
        import_regions_geojson(reopened, sid, tmp_path / "bad.geojson")


def test_project_fields_from_two_slides(tmp_path):
    project = Project.create(tmp_path / "proj")
    for name in ("a", "b"):
        path = write_pyramid_tiff(tmp_path / f"{name}.tif", 8000, 6000, painter=TwoClassPainter(8000, 6000), levels=[1, 4, 16], mpp=0.5)
        rec = add_paths(project, [path])[0]
        info = slide_info(project, rec.id)
        labels = np.zeros(info.label_shape, np.uint8)
        h, w = labels.shape
        labels[h // 10 : -h // 10, w // 10 : w // 2] = 2
        labels[h // 10 : -h // 10, w // 2 : -w // 10] = 3
        save_regions(project, rec.id, labels)
    fields = project_fields(project)
    assert {f.slide_id for f in fields} == {"a", "b"} and {f.label for f in fields} == {1, 2}
    assert all(f.box[2] == pytest.approx(2048 * 0.42 / 0.5) for f in fields)


def test_gusa_init_and_info_slide(tmp_path, capsys):
    from gusa_core.cli.main import main

    src = tmp_path / "src"
    src.mkdir()
    write_pyramid_tiff(src / "wsi.tif", 3000, 2000, levels=[1, 4], mpp=0.5, objective_power=20)
    import cv2

    cv2.imwrite(str(src / "patch.png"), np.full((48, 64, 3), 180, np.uint8))
    assert main(["init", str(tmp_path / "proj"), "--images", str(src)]) == 0
    assert "1 whole-slide images" in capsys.readouterr().out
    project = Project.open(tmp_path / "proj")
    assert slide_ids(project) == ["wsi"] and not is_slide(project.image("patch"))
    assert slide_info(project, "wsi").objective_power == 20.0
    assert main(["info-slide", str(src / "wsi.tif")]) == 0
    out = capsys.readouterr().out
    assert "3000 x 2000 px (1.50 x 1.00 mm)" in out and "0.5000 x 0.5000 µm/px" in out and "20x" in out
    assert "1: 750 x 500  downsample 4" in out
    assert main(["info-slide", str(src / "wsi.tif"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["levels"][1] == {"level": 1, "width": 750, "height": 500, "downsample": 4.0}
    assert info["regions_downsample"] == 8 and info["regions_size"] == [375, 250]
    assert main(["info-slide", str(tmp_path / "missing.svs")]) == 2
    assert "missing.svs" in capsys.readouterr().err
