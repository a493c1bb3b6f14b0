"""Folder import of vendor slides: NDPI, SCN and MIRAX (a ``.mrxs`` beside its data folder)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from gusa_core.errors import ProjectError
from gusa_core.project import Project
from gusa_core.project.importer import list_inputs, scan_folder
from gusa_core.project.slides import is_slide, slide_ids, slide_info

from vendor_fixtures import write_mrxs, write_ndpi, write_scn


@pytest.fixture()
def cohort(tmp_path):
    """``src/Benign/{m.mrxs, m/, n.ndpi}``, ``src/Invasive/s.scn``, ``src/patch.png``."""
    src = tmp_path / "src"
    (src / "Benign").mkdir(parents=True)
    (src / "Invasive").mkdir()
    write_mrxs(src / "Benign" / "m.mrxs", 2, 2, zoom_levels=2)
    # a stray picture inside the MIRAX data folder is part of the slide's folder, not an image
    cv2.imwrite(str(src / "Benign" / "m" / "preview.png"), np.full((8, 8, 3), 200, np.uint8))
    write_ndpi(src / "Benign" / "n.ndpi", 512, 256, levels=(1, 4), tile_width=64)
    write_scn(src / "Invasive" / "s.scn", 1024, 512, regions=[(256, 128, 512, 256)], levels=(1, 4), jpeg=False)
    cv2.imwrite(str(src / "patch.png"), np.full((48, 64, 3), 180, np.uint8))
    return src


def test_list_inputs_takes_vendor_slides_and_skips_mirax_data(cohort):
    names = [p.relative_to(cohort).as_posix() for p in list_inputs(cohort, recursive=True)]
    assert names == ["Benign/m.mrxs", "Benign/n.ndpi", "Invasive/s.scn", "patch.png"]
    assert list_inputs(cohort / "Benign" / "m") == [cohort / "Benign" / "m" / "preview.png"]  # asked for directly


def test_mirax_data_folder_named_like_a_class_is_not_a_class(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    write_mrxs(src / "Benign.mrxs", 2, 2, zoom_levels=2)  # its data folder is src/Benign/
    cv2.imwrite(str(src / "Benign" / "x.png"), np.full((8, 8, 3), 200, np.uint8))
    found, labels, _ = scan_folder(src, ["Normal", "Benign"])
    assert [p.name for p, _ in found] == ["Benign.mrxs"] and labels == [None]


def test_a_mirax_file_without_its_folder_is_a_warning(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "lost.mrxs").write_bytes(b"MIRAX")
    with pytest.raises(ProjectError, match=r"lost\.mrxs: MIRAX slide without its data folder lost/"):
        scan_folder(src, ["Normal"])
    cv2.imwrite(str(src / "p.png"), np.full((8, 8, 3), 200, np.uint8))
    warnings: list[str] = []
    found, _, _ = scan_folder(src, ["Normal"], warnings=warnings)
    assert [p.name for p, _ in found] == ["p.png"] and "lost.mrxs" in warnings[0]


def test_gusa_init_imports_vendor_slides_as_slides(cohort, tmp_path, capsys):
    from gusa_core.cli.main import main

    assert main(["init", str(tmp_path / "proj"), "--images", str(cohort)]) == 0
    assert "4 images, 3 labelled" in capsys.readouterr().out
    project = Project.open(tmp_path / "proj")
    assert sorted(slide_ids(project)) == ["m", "n", "s"] and not is_slide(project.image("patch"))
    assert {r.id: r.label for r in project.images} == {"m": "Benign", "n": "Benign", "s": "Invasive", "patch": None}
    assert slide_info(project, "m").mpp == pytest.approx((0.243, 0.243))
    assert slide_info(project, "n").objective_power == 20.0
    assert slide_info(project, "s").mpp == pytest.approx((0.5, 0.5))
    project.close()
    assert main(["info-slide", str(cohort / "Invasive" / "s.scn")]) == 0
    out = capsys.readouterr().out
    assert "openslide (leica)" in out and "scanned    : 512 x 256 px at (256, 128)" in out


def test_copying_a_mirax_slide_takes_its_data_folder(cohort, tmp_path):
    """A copied .mrxs is useless without its folder: both are copied, the folder renamed with the id."""
    import shutil

    from gusa_core.project.slides import add_slide
    from gusa_core.slides import open_slide

    src = cohort / "Benign" / "m.mrxs"
    with open_slide(src) as slide:
        want = slide.read_region(0, (0, 0, 256, 256))
    project = Project.create(tmp_path / "proj")
    first = add_slide(project, src, copy=True)
    (tmp_path / "other").mkdir()
    shutil.copy(src, tmp_path / "other" / "m.mrxs")
    shutil.copytree(cohort / "Benign" / "m", tmp_path / "other" / "m")
    second = add_slide(project, tmp_path / "other" / "m.mrxs", copy=True)  # same name: a new id
    assert (first.id, second.id) == ("m", "m-2")
    images = tmp_path / "proj" / "images"
    assert sorted(p.name for p in images.iterdir()) == ["m", "m-2", "m-2.mrxs", "m.mrxs"]
    shutil.rmtree(cohort)  # the copies stand alone
    shutil.rmtree(tmp_path / "other")
    for rec in (first, second):
        with open_slide(project.image_path(rec.id)) as slide:
            assert slide.vendor == "mirax"
            np.testing.assert_array_equal(slide.read_region(0, (0, 0, 256, 256)), want)
    project.close()
