"""The annotation workspace driven like a user: open, paint, undo, label, switch, reopen."""

from __future__ import annotations


import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtTest import QTest

from gusa_core.imageio import read_mask
from gusa_core.project import Project

from app_helpers import drag, image_pixel, mask_drawn


def _wait_saved(qtbot, win):
    qtbot.waitUntil(lambda: not win.autosave.has_pending(), timeout=10000)
    qtbot.waitUntil(lambda: not win.isWindowModified(), timeout=10000)


def _open(qtbot, win, folder):
    assert win.open_project(folder)
    qtbot.waitUntil(lambda: win.current_image_id() is not None, timeout=5000)


def test_window_opens(window):
    # That showing the window imports no torch is checked in a fresh process
    # (test_app_shell.py): earlier tests in this process may have imported it.
    assert window.windowTitle().startswith("GuSA Studio")
    assert window.model_menu is not None
    assert not window.windowIcon().isNull()


def test_paint_undo_redo_label_switch_reopen(qtbot, window, demo_project):
    win = window
    _open(qtbot, win, demo_project.folder)
    assert win.windowTitle() == "GuSA Studio — demo[*]" or "demo" in win.windowTitle()
    # start from an image with no mask so the stroke is all ours
    target = next(r.id for r in demo_project.images if r.mask is None)
    win.show_image(target)
    assert win.current_image_id() == target
    canvas = win.canvas
    canvas.set_brush_size(9)
    cx, cy = canvas.width() // 2, canvas.height() // 2
    points = [(cx - 40 + 4 * i, cy) for i in range(21)]
    drag(canvas, points)
    assert win.isWindowModified()  # unsaved until the background save lands
    _wait_saved(qtbot, win)

    mask_file = demo_project.folder / "masks" / f"{target}.png"
    r, c = image_pixel(canvas, (cx, cy))
    saved = read_mask(mask_file)
    assert saved[r, c] == 255
    ra, ca = image_pixel(canvas, (cx, cy - 60))
    assert saved[ra, ca] == 0  # far from the stroke

    # undo removes the whole stroke (one step), on disk too
    QTest.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    _wait_saved(qtbot, win)
    assert not mask_file.exists() or not read_mask(mask_file).any()
    assert win.project.image(target).mask is None
    # redo brings it back
    QTest.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    _wait_saved(qtbot, win)
    assert read_mask(mask_file)[r, c] == 255

    # label with key 3 -> InSitu, in the manifest on disk
    QTest.keyClick(canvas, Qt.Key.Key_3)
    assert win.project.image(target).label == "InSitu"
    _wait_saved(qtbot, win)
    assert Project.open(demo_project.folder).image(target).label == "InSitu"
    assert win.side_panel.class_button("InSitu").isChecked()

    # next image with N and PgDown, previous with P
    order = win.image_list.visible_ids()
    win.show_image(order[0])
    i = 0
    QTest.keyClick(canvas, Qt.Key.Key_N)
    assert win.current_image_id() == order[i + 1]
    QTest.keyClick(canvas, Qt.Key.Key_PageDown)
    assert win.current_image_id() == order[i + 2]
    QTest.keyClick(canvas, Qt.Key.Key_P)
    assert win.current_image_id() == order[i + 1]

    # close: reopen in a new window and everything is there
    folder = demo_project.folder
    win.close()
    from app.shell.main_window import MainWindow

    win2 = MainWindow(features=False)
    qtbot.addWidget(win2)
    win2.show()
    _open(qtbot, win2, folder)
    win2.show_image(target)
    assert win2.project.image(target).label == "InSitu"
    assert win2.canvas.editor().mask[r, c] == 255
    assert win2.image_list.model.data(win2.image_list.model.index(order.index(target), 3)) == "✓"
    win2.close()


def test_strokes_are_one_undo_step_each(qtbot, window, demo_project):
    win = window
    _open(qtbot, win, demo_project.folder)
    target = next(r.id for r in demo_project.images if r.mask is None)
    win.show_image(target)
    canvas = win.canvas
    canvas.set_brush_size(5)
    cy = canvas.height() // 2
    drag(canvas, [(100 + 3 * i, cy) for i in range(10)])
    drag(canvas, [(100 + 3 * i, cy + 30) for i in range(10)])
    editor = canvas.editor()
    assert editor.undo_steps == 2
    win.undo()
    assert editor.mask[image_pixel(canvas, (110, cy))] == 255
    assert editor.mask[image_pixel(canvas, (110, cy + 30))] == 0
    # the overlay follows the mask in the undone rectangle
    r, c = image_pixel(canvas, (110, cy + 30))
    assert not mask_drawn(canvas, (r, c))
    r, c = image_pixel(canvas, (110, cy))
    assert mask_drawn(canvas, (r, c))


def test_eraser_and_alt_invert(qtbot, window, demo_project):
    win = window
    _open(qtbot, win, demo_project.folder)
    canvas = win.canvas
    canvas.set_brush_size(15)
    cx, cy = canvas.width() // 2, canvas.height() // 2
    drag(canvas, [(cx - 20, cy), (cx + 20, cy)])
    assert canvas.editor().mask[image_pixel(canvas, (cx, cy))] == 255
    QTest.keyClick(canvas, Qt.Key.Key_E)
    assert canvas.tool() == "eraser"
    drag(canvas, [(cx, cy), (cx + 1, cy)])
    assert canvas.editor().mask[image_pixel(canvas, (cx, cy))] == 0
    QTest.keyClick(canvas, Qt.Key.Key_B)
    drag(canvas, [(cx - 20, cy), (cx - 19, cy)], modifiers=Qt.KeyboardModifier.AltModifier)
    assert canvas.editor().mask[image_pixel(canvas, (cx - 20, cy))] == 0


def test_lasso_polygon_and_fill_holes(qtbot, window, demo_project):
    win = window
    _open(qtbot, win, demo_project.folder)
    target = next(r.id for r in demo_project.images if r.mask is None)
    win.show_image(target)
    canvas = win.canvas
    QTest.keyClick(canvas, Qt.Key.Key_L)
    cx, cy = canvas.width() // 2, canvas.height() // 2
    # freehand: drag a square outline
    pts = [(cx - 50, cy - 50), (cx + 50, cy - 50), (cx + 50, cy + 50), (cx - 50, cy + 50), (cx - 50, cy - 45)]
    drag(canvas, pts)
    assert canvas.editor().mask[image_pixel(canvas, (cx, cy))] == 255
    win.undo()
    # polygon by clicks, closed with Enter
    for p in [(cx - 30, cy - 30), (cx + 30, cy - 30), (cx + 30, cy + 30), (cx - 30, cy + 30)]:
        drag(canvas, [p])
    assert len(canvas.lasso_points()) == 4
    QTest.keyClick(canvas, Qt.Key.Key_Return)
    mask = canvas.editor().mask
    assert mask[image_pixel(canvas, (cx, cy))] == 255
    assert mask[image_pixel(canvas, (cx + 45, cy))] == 0
    # erase a hole in the middle, then fill holes
    QTest.keyClick(canvas, Qt.Key.Key_E)
    canvas.set_brush_size(5)
    drag(canvas, [(cx, cy), (cx + 1, cy)])
    assert mask[image_pixel(canvas, (cx, cy))] == 0
    win.fill_holes()
    assert canvas.editor().mask[image_pixel(canvas, (cx, cy))] == 255
    # clear asks first
    win.dialogs.confirm = lambda parent, title, text: False
    win.clear_mask()
    assert canvas.editor().mask.any()
    win.dialogs.confirm = lambda parent, title, text: True
    win.clear_mask()
    assert not canvas.editor().mask.any()
    _wait_saved(qtbot, win)
    assert win.project.image(target).mask is None


def test_corrupt_image_shows_error_and_rest_works(qtbot, window, demo_project):
    bad = demo_project.folder / "images" / "broken.tif"
    bad.write_bytes(b"II*\x00not really a tiff")
    rec = demo_project.add_image(bad)
    demo_project.save()
    win = window
    _open(qtbot, win, demo_project.folder)
    win.show_image(rec.id)
    banner = win.canvas.banner_text()
    assert banner is not None and "broken.tif" in banner and banner.startswith("Cannot read image")
    assert win.canvas.editor() is None
    # the list marks it (thumbnail job or the failed open)
    qtbot.waitUntil(lambda: win.image_list.model.error(rec.id) is not None, timeout=5000)
    # the rest keeps working
    other = next(r.id for r in demo_project.images if r.id != rec.id)
    win.show_image(other)
    assert win.canvas.banner_text() is None
    assert win.canvas.editor() is not None
    win.set_label("Benign")
    assert win.project.image(other).label == "Benign"


def test_unopenable_project_names_the_folder(window, tmp_path, error_messages):
    assert not window.open_project(tmp_path / "nowhere")
    assert error_messages and "nowhere" in error_messages[-1][1]


def test_geojson_export_import_via_menu(qtbot, window, demo_project, tmp_path):
    win = window
    _open(qtbot, win, demo_project.folder)
    source = next(r.id for r in demo_project.images if r.mask is not None)
    win.show_image(source)
    before = win.canvas.editor().mask.copy()
    assert before.any()
    out = tmp_path / "roi.geojson"
    win.dialogs.save_path = lambda parent, title, default, filters: str(out)
    win.export_geojson_action.trigger()
    assert out.is_file() and '"FeatureCollection"' in out.read_text(encoding="utf-8")
    # import into an image with no RoI: same region comes back
    target = next(r.id for r in demo_project.images if r.mask is None)
    win.show_image(target)
    win.dialogs.open_path = lambda parent, title, filters, start="": str(out)
    win.import_geojson_action.trigger()
    got = win.canvas.editor().mask
    inter = np.logical_and(got > 0, before > 0).sum()
    union = np.logical_or(got > 0, before > 0).sum()
    assert inter / union > 0.95
    # mask PNG round trip
    png = tmp_path / "roi.png"
    win.dialogs.save_path = lambda parent, title, default, filters: str(png)
    win.export_mask_action.trigger()
    assert (read_mask(png) == got).all()
    _wait_saved(qtbot, win)
    assert win.project.image(target).mask is not None


def test_filter_sort_and_predictions(qtbot, window, demo_project):
    win = window
    _open(qtbot, win, demo_project.folder)
    panel = win.image_list
    panel.set_class_filter("Benign")
    ids = panel.visible_ids()
    assert ids and all(demo_project.image(i).label == "Benign" for i in ids)
    panel.set_class_filter("__all__")
    assert len(panel.visible_ids()) == len(demo_project.images)
    panel.view.sortByColumn(1, Qt.SortOrder.DescendingOrder)
    names = panel.visible_ids()
    assert names == sorted(names, key=str.lower, reverse=True)
    first = demo_project.images[0]
    wrong = next(c for c in demo_project.classes if c != first.label)
    panel.set_predictions({first.id: (wrong, 0.9)})
    assert panel.model.disagrees(first.id)
    panel.set_class_filter("__disagree__")
    assert panel.visible_ids() == [first.id]
    qtbot.waitUntil(lambda: panel.model.thumbnail(first.id) is not None, timeout=10000)


def test_overlay_layer_and_mask_toggle(qtbot, window, demo_project):
    win = window
    _open(qtbot, win, demo_project.folder)
    canvas = win.canvas
    h, w = canvas.image_shape()
    rgba = np.zeros((h, w, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[..., 3] = 255
    canvas.set_overlay("attention", rgba)
    cx, cy = canvas.width() // 2, canvas.height() // 2
    img = canvas.grab().toImage()
    color = img.pixelColor(cx, cy)
    assert color.red() > 200 and color.green() < 60
    canvas.set_overlay("attention", None)
    assert canvas.overlay_names() == []
    QTest.keyClick(canvas, Qt.Key.Key_M)
    assert not canvas.mask_visible()
    QTest.keyClick(canvas, Qt.Key.Key_M)
    assert canvas.mask_visible()


def test_zoom_towards_cursor_and_pan(qtbot, window, demo_project):
    win = window
    _open(qtbot, win, demo_project.folder)
    canvas = win.canvas
    anchor = QPointF(canvas.width() * 0.3, canvas.height() * 0.4)
    before = canvas.widget_to_image(anchor)
    canvas.zoom_by(2.0, anchor)
    after = canvas.widget_to_image(anchor)
    assert abs(before.x() - after.x()) < 1e-6 and abs(before.y() - after.y()) < 1e-6
    QTest.keyClick(canvas, Qt.Key.Key_1, Qt.KeyboardModifier.ControlModifier)  # glides to 100 %
    qtbot.waitUntil(lambda: not canvas.is_animating(), timeout=3000)
    assert canvas.zoom() == pytest.approx(1.0)
    off = canvas.offset()
    QTest.keyClick(canvas, Qt.Key.Key_Left)
    assert canvas.offset().x() > off.x()
    QTest.keyClick(canvas, Qt.Key.Key_0, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: not canvas.is_animating(), timeout=3000)
    assert canvas.zoom() == pytest.approx(canvas.fit_zoom())
    # + zooms in around the cursor, gliding
    z = canvas.zoom()
    QTest.keyClick(canvas, Qt.Key.Key_Plus)
    qtbot.waitUntil(lambda: not canvas.is_animating(), timeout=3000)
    assert canvas.zoom() == pytest.approx(z * 1.5)
    # middle-button drag pans
    off = canvas.offset()
    drag(canvas, [(200, 200), (230, 210)], button=Qt.MouseButton.MiddleButton)
    assert canvas.offset().x() == pytest.approx(off.x() + 30)
    # brush size keys
    size = canvas.brush_size()
    QTest.keyClick(canvas, Qt.Key.Key_BracketRight)
    assert canvas.brush_size() > size


def test_real_he_image_renders(qtbot, he_tif):
    from app.workspace.canvas_tools import AnnotationView
    from gusa_core.annotation import MaskEditor
    from gusa_core.imageio import read_image

    image = read_image(he_tif)
    view = AnnotationView()
    qtbot.addWidget(view)
    view.resize(800, 600)
    view.show()
    qtbot.waitExposed(view)
    view.set_image(image)
    editor = MaskEditor(np.zeros(image.shape[:2], np.uint8))
    view.set_editor(editor)
    shot = view.grab().toImage()
    cx, cy = view.width() // 2, view.height() // 2
    colours = {shot.pixel(x, y) for x in range(cx - 100, cx + 100, 7) for y in range(cy - 80, cy + 80, 7)}
    assert len(colours) > 50  # real tissue, not a flat fill
    # the painted RoI shows in the rendering
    editor.begin_stroke(255)
    r, c = image.shape[0] // 2, image.shape[1] // 2
    editor.stroke_to(r, c, 60)
    editor.end_stroke()
    after = view.grab().toImage()
    p = view.image_to_widget(QPointF(c + 0.5, r + 0.5)).toPoint()
    assert after.pixel(p) != shot.pixel(p)


def test_context_menu_remove_and_drop_images(qtbot, window, demo_project, tmp_path):
    from gusa_core.demo import generate_tissue
    import cv2

    win = window
    _open(qtbot, win, demo_project.folder)
    current = win.current_image_id()
    other = win.image_list.visible_ids()[3]
    menu = win.image_context_menu(other)
    assert [a.text() for a in menu.actions() if a.text()][:2] == ["Label", "Copy file path"]
    win.set_image_label(other, "Invasive")
    assert win.project.image(other).label == "Invasive"
    n = len(win.project.images)
    win.dialogs.confirm = lambda parent, title, text: True
    assert win.remove_image(current)
    assert current not in win.project and len(win.image_list.visible_ids()) == n - 1
    assert win.current_image_id() is not None and win.current_image_id() != current
    # dropping a folder of images adds them
    folder = tmp_path / "more"
    folder.mkdir()
    image, _ = generate_tissue("Benign", size=(96, 64), rng=np.random.default_rng(1))
    cv2.imwrite(str(folder / "extra.png"), image[..., ::-1])
    win.open_dropped([folder])
    assert "extra" in win.image_list.visible_ids()
    _wait_saved(qtbot, win)
    assert "extra" in Project.open(demo_project.folder)


def test_suggestions_show_and_colour_reference_is_saved(qtbot, window, demo_project):
    from PySide6.QtCore import Qt

    from app.workspace.image_list import COL_CLASS

    win = window
    _open(qtbot, win, demo_project.folder)
    target = next(r.id for r in win.project.images if r.label is None)
    win.project.set_suggested(target, "InSitu")
    model = win.image_list.model
    row = model.row_of(target)
    qtbot.waitUntil(lambda: model.data(model.index(row, COL_CLASS), Qt.ItemDataRole.DisplayRole) == "InSitu?", timeout=5000)

    win.select_image(target)
    win.reference_action.trigger()
    _wait_saved(qtbot, win)
    assert Project.open(demo_project.folder).reinhard_reference == target
    win.default_reference_action.trigger()
    _wait_saved(qtbot, win)
    assert Project.open(demo_project.folder).reinhard_reference is None
