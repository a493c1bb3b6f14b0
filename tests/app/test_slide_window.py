"""A slide in the main window: view a 40k x 30k slide, paint, save, reopen, export level-0 GeoJSON, import."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt

from app_helpers import drag
from gusa_core.project import Project
from gusa_core.project.slides import add_paths, load_regions, slide_info


@pytest.fixture
def slide_project(tmp_path, huge_slide):
    flat = tmp_path / "flat.png"
    cv2.imwrite(str(flat), np.full((120, 160, 3), (150, 100, 200), np.uint8))
    project = Project.create(tmp_path / "proj")
    add_paths(project, [huge_slide, flat])
    project.save()
    return project


def _open_slide(qtbot, win, slide_id):
    with qtbot.waitSignal(win.slide_workspace.slide_shown, timeout=20000):
        win.show_image(slide_id)
    view = win.slide_workspace.view
    qtbot.waitUntil(lambda: view.missing_tiles() == 0, timeout=20000)
    return view


def test_slide_is_viewed_painted_saved_reopened_and_exported(qtbot, window, slide_project, tmp_path):
    win = window
    assert win.open_project(slide_project.folder)
    sid, fid = (r.id for r in slide_project.images)
    view = _open_slide(qtbot, win, sid)
    assert win.showing_slide() and win.current_image_id() == sid
    assert view.slide().dimensions == (40_000, 30_000)
    ds = slide_info(slide_project, sid).downsample
    # paint an Invasive stroke at 10x (key 3, the viewer's own shortcut), then save on the autosave thread
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_3)
    assert view.magnification() == pytest.approx(10.0)
    win.slide_workspace.class_combo.setCurrentIndex(3)
    cx, cy = view.width() // 2, view.height() // 2
    drag(view, [(cx - 60, cy), (cx, cy), (cx + 60, cy)])
    p = view.widget_to_level0(QPointF(cx, cy))
    row, col = int(p.y() / ds), int(p.x() / ds)
    assert view.editor().mask[row, col] == 4
    assert win.autosave.flush()
    np.testing.assert_array_equal(load_regions(Project.open(slide_project.folder), sid), view.editor().mask)
    # a flat image goes back to the canvas, the slide comes back with its regions
    win.show_image(fid)
    assert not win.showing_slide() and win.canvas.has_image()
    view = _open_slide(qtbot, win, sid)
    assert view.editor().mask[row, col] == 4
    # undo the stroke: saved too
    qtbot.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert not view.editor().mask.any()
    assert win.autosave.flush() and not load_regions(slide_project, sid).any()
    qtbot.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    win.close()
    # reopen in a fresh window: the regions are there, export is level-0
    from app.shell.main_window import MainWindow

    win2 = MainWindow(features=False)
    qtbot.addWidget(win2)
    win2.resize(1000, 700)
    win2.show()
    win2.open_project(slide_project.folder)
    view2 = _open_slide(qtbot, win2, sid)
    assert view2.editor().mask[row, col] == 4
    out = tmp_path / "regions.geojson"
    assert win2.export_slide_geojson(out)
    fc = json.loads(out.read_text())
    [feature] = fc["features"]
    assert feature["properties"]["classification"]["name"] == "Invasive"
    ring = np.array(feature["geometry"]["coordinates"][0], float)
    # level-0: the stroke's box around the painted point, in slide pixels (not label pixels)
    assert ring[:, 0].min() <= p.x() <= ring[:, 0].max() and ring[:, 1].min() <= p.y() <= ring[:, 1].max()
    assert ring[:, 0].max() - ring[:, 0].min() == pytest.approx((120 + 40) / 0.25, abs=2 * ds)  # 10x: 4 level-0 px per screen px
    # import a shifted copy: replaces the regions as one undo step
    shifted = json.loads(out.read_text())
    for pt in shifted["features"][0]["geometry"]["coordinates"][0]:
        pt[0] += 1600  # 100 label pixels to the right
    (tmp_path / "shifted.geojson").write_text(json.dumps(shifted))
    assert win2.import_slide_geojson(tmp_path / "shifted.geojson")
    mask = view2.editor().mask
    assert mask[row, col + 100] == 4 and mask[row, col] == 0
    win2.close()
    np.testing.assert_array_equal(load_regions(Project.open(slide_project.folder), sid), mask)
