"""A slide in the main window's one canvas: view a 40k x 30k slide, paint, save, reopen, export level-0 GeoJSON,
import; the keys of a slide and of a flat image; read-only mode on both."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt

from app_helpers import drag, focus
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
    with qtbot.waitSignal(win.slide_toolbar.slide_shown, timeout=20000):
        win.show_image(slide_id)
    view = win.canvas
    assert view.is_slide()
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
    # paint an Invasive stroke at 10x (key 3; Shift+4 picks the fourth class), then save on the autosave thread
    focus(qtbot, view)
    qtbot.keyClick(view, Qt.Key.Key_3)
    assert view.magnification() == pytest.approx(10.0)
    assert win.project.image(sid).label is None  # a digit is no label on a slide
    qtbot.keyClick(view, Qt.Key.Key_4, Qt.KeyboardModifier.ShiftModifier)
    assert win.slide_toolbar.class_combo.currentIndex() == 3 and view.class_value() == 4
    assert view.magnification() == pytest.approx(10.0)
    cx, cy = view.width() // 2, view.height() // 2
    drag(view, [(cx - 60, cy), (cx, cy), (cx + 60, cy)])
    p = view.widget_to_image(QPointF(cx, cy))
    row, col = int(p.y() / ds), int(p.x() / ds)
    assert view.editor().mask[row, col] == 4
    assert win.autosave.flush()
    np.testing.assert_array_equal(load_regions(Project.open(slide_project.folder), sid), view.editor().mask)
    # a flat image goes back to the canvas, the slide comes back with its regions
    win.show_image(fid)
    assert not win.showing_slide() and win.canvas.has_image() and not win.canvas.is_slide()
    assert win.slide_toolbar.isHidden()
    view = _open_slide(qtbot, win, sid)
    assert view.editor().mask[row, col] == 4
    # undo the stroke (the window's Ctrl+Z): saved too
    focus(qtbot, view)
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
    fc = json.loads(out.read_text(encoding="utf-8"))
    [feature] = fc["features"]
    assert feature["properties"]["classification"]["name"] == "Invasive"
    ring = np.array(feature["geometry"]["coordinates"][0], float)
    # level-0: the stroke's box around the painted point, in slide pixels (not label pixels)
    assert ring[:, 0].min() <= p.x() <= ring[:, 0].max() and ring[:, 1].min() <= p.y() <= ring[:, 1].max()
    assert ring[:, 0].max() - ring[:, 0].min() == pytest.approx((120 + 40) / 0.25, abs=2 * ds)  # 10x: 4 level-0 px per screen px
    # import a shifted copy: replaces the regions as one undo step
    shifted = json.loads(out.read_text(encoding="utf-8"))
    for pt in shifted["features"][0]["geometry"]["coordinates"][0]:
        pt[0] += 1600  # 100 label pixels to the right
    (tmp_path / "shifted.geojson").write_text(json.dumps(shifted))
    assert win2.import_slide_geojson(tmp_path / "shifted.geojson")
    mask = view2.editor().mask
    assert mask[row, col + 100] == 4 and mask[row, col] == 0
    win2.close()
    np.testing.assert_array_equal(load_regions(Project.open(slide_project.folder), sid), mask)


def test_digits_label_a_flat_image_and_shift_digits_are_listed(qtbot, window, slide_project):
    win = window
    assert win.open_project(slide_project.folder)
    sid, fid = (r.id for r in slide_project.images)
    win.show_image(fid)
    focus(qtbot, win.canvas)
    qtbot.keyClick(win.canvas, Qt.Key.Key_2)
    assert win.project.image(fid).label == win.project.classes[1]
    zoom = win.canvas.zoom()
    qtbot.keyClick(win.canvas, Qt.Key.Key_4, Qt.KeyboardModifier.ShiftModifier)  # no class picker on a flat image
    assert win.canvas.zoom() == zoom and win.project.image(fid).label == win.project.classes[1]
    # Help ▸ Keyboard shortcuts and the class picker's tooltips name both keys
    shown = []
    win.dialogs.inform = lambda parent, title, text: shown.append(text)
    win.show_shortcuts()
    assert "Shift+1" in shown[0] and "1x, 5x, 10x, 20x, 40x" in shown[0]
    combo = win.slide_toolbar.class_combo
    assert "Shift+4" in combo.itemData(3, Qt.ItemDataRole.ToolTipRole) and "Shift+1" in combo.toolTip()


def test_read_only_window_refuses_strokes_on_slides_and_flat_images(qtbot, window, slide_project, error_messages):
    holder = Project.open(slide_project.folder, lock="another window")
    try:
        win = window
        assert win.open_project(slide_project.folder)
        assert win.is_read_only() and win.canvas.is_read_only()
        sid, fid = (r.id for r in slide_project.images)
        for image_id in (fid, sid):
            view = _open_slide(qtbot, win, sid) if image_id == sid else win.canvas
            if image_id == fid:
                win.show_image(fid)
            editor = view.editor()
            assert editor is not None
            before = editor.mask.copy()
            cx, cy = view.width() // 2, view.height() // 2
            for tool in ("brush", "eraser", "lasso"):
                view.set_tool(tool)
                with qtbot.waitSignal(view.edit_refused, timeout=1000):
                    drag(view, [(cx - 60, cy - 40), (cx + 60, cy - 40), (cx + 60, cy + 40), (cx - 60, cy + 40)])
            np.testing.assert_array_equal(editor.mask, before)
            assert editor.undo_steps == 0 and not win.autosave.has_pending()
            assert "Read-only" in win.statusBar().currentMessage()
        assert not load_regions(Project.open(slide_project.folder, read_only=True), sid).any()
    finally:
        holder.close()
