"""The slide viewer on a generated 40,000 x 30,000 pyramid: levels, tiles, overview, scale bar, painting."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt

from app.workspace.scale_bar import format_length, nice_length
from app.workspace.canvas_tools import AnnotationView
from gusa_core.annotation import MaskEditor
from gusa_core.slides import open_slide
from gusa_core.slides.annotations import label_shape, working_downsample

COLORS = [(0, 160, 0), (0, 90, 255), (255, 200, 0), (220, 0, 0)]


@pytest.fixture
def view(qtbot, huge_slide):
    slide = open_slide(huge_slide)
    v = AnnotationView()
    qtbot.addWidget(v)
    v.resize(800, 600)
    v.show()
    qtbot.waitExposed(v)
    v.set_slide(slide)
    yield v
    v.shutdown()
    slide.close()


def _wait_tiles(qtbot, v):
    qtbot.waitUntil(lambda: v.missing_tiles() == 0, timeout=20000)


def _grab(v) -> np.ndarray:
    img = v.grab().toImage().convertToFormat(v.grab().toImage().Format.Format_RGB888)
    w, h = img.width(), img.height()
    arr = np.frombuffer(img.constBits(), np.uint8, count=img.bytesPerLine() * h).reshape(h, img.bytesPerLine())
    return arr[:, : 3 * w].reshape(h, w, 3).copy()


def test_scale_bar_lengths():
    assert nice_length(1.0) == (100.0, 100.0)  # 1 µm/px: 100 µm in 100 px
    assert nice_length(0.25) == (20.0, 80.0)
    assert nice_length(40.0)[0] == 2000.0 and format_length(2000.0) == "2 mm"
    assert format_length(50.0) == "50 µm"


def _blob_centre():
    from slide_fixtures import TissuePainter

    cx, cy, _, _ = TissuePainter(40_000, 30_000, n_blobs=4, size=0.03).blobs[0]
    return cx, cy


def test_view_levels_presets_overview_and_pixels(qtbot, view):
    slide = view.slide()
    assert view.viewer_downsamples()[:3] == [1.0, 2.0, 4.0]
    assert view.zoom() == pytest.approx(min(792 / 40_000, 592 / 30_000))
    _wait_tiles(qtbot, view)
    assert view.overview.viewport_rect().width() > view.overview.width() - 10  # the whole slide is in view
    assert not view.overview.isVisible()  # so the overview would only cover it
    # 10x on a 40x slide (0.25 µm/px): 0.25 screen px per level-0 px, from the downsample-4 viewer level
    cx, cy = _blob_centre()
    view.center_on(cx, cy)
    assert view.set_magnification(10)
    assert view.overview.isVisible()
    assert view.zoom() == pytest.approx(0.25) and view.current_level() == 2
    assert view.magnification() == pytest.approx(10.0)
    assert view.um_per_screen_px() == pytest.approx(1.0) and view.brush_um() == pytest.approx(40.0)
    qtbot.keyClick(view, Qt.Key.Key_5)  # 40x
    assert view.zoom() == pytest.approx(1.0) and view.current_level() == 0
    x, y, w, h = view.viewport()
    assert (x + w / 2, y + h / 2) == pytest.approx((cx, cy), abs=1)
    _wait_tiles(qtbot, view)
    # at 40x the screen shows level 0 pixel for pixel: compare with an independent read
    shot = _grab(view)
    ox, oy = view.offset().x(), view.offset().y()
    bx, by = 300, 250  # widget pixel of the block's top-left
    lx, ly = bx - ox, by - oy
    assert lx == int(lx) and ly == int(ly)
    truth = slide.read_region(0, (int(lx), int(ly), 120, 90))
    np.testing.assert_array_equal(shot[by : by + 90, bx : bx + 120], truth)
    # the overview follows: the viewport is a small rectangle around the blob
    vr = view.overview.viewport_rect()
    p = view.overview.to_level0(vr.center())
    assert (p.x(), p.y()) == pytest.approx((cx, cy), rel=0.02)
    # a click on the overview centres the view there
    target = view.overview._image_rect().center()  # noqa: SLF001 - the middle of the slide
    qtbot.mouseClick(view.overview, Qt.MouseButton.LeftButton, pos=target.toPoint())
    x, y, w, h = view.viewport()
    assert (x + w / 2, y + h / 2) == pytest.approx((20_000, 15_000), rel=0.02)


def test_pan_paint_undo_redo(qtbot, view):
    slide = view.slide()
    ds = working_downsample(slide.dimensions, slide.mpp)
    assert ds == 16
    editor = MaskEditor(np.zeros(label_shape(slide.dimensions, ds), np.uint8))
    view.set_editor(editor, downsample=ds, colors=COLORS)
    cx, cy = _blob_centre()
    view.center_on(cx, cy)
    view.set_magnification(5)  # zoom 0.125: a label pixel is 2 screen pixels
    view.pan_by(-37, 21)
    view.set_class_value(4)  # Invasive
    view.set_brush_size(40)  # 40 screen px = 320 level-0 px = 20 label px (diameter)
    with qtbot.waitSignal(view.stroke_finished, timeout=2000):
        qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=QPoint(300, 300))
        qtbot.mouseMove(view, QPoint(360, 300))
        qtbot.mouseMove(view, QPoint(420, 300))
        qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=QPoint(420, 300))
    labels = editor.mask
    assert set(np.unique(labels)) == {0, 4}
    a, b = view.widget_to_image(QPointF(300, 300)), view.widget_to_image(QPointF(420, 300))
    rows, cols = np.nonzero(labels)
    # painted: the capsule of radius 10 label px from a to b (give or take a pixel)
    assert rows.min() == pytest.approx(a.y() / ds - 10, abs=1.5) and rows.max() == pytest.approx(a.y() / ds + 10, abs=1.5)
    assert cols.min() == pytest.approx(a.x() / ds - 10, abs=1.5) and cols.max() == pytest.approx(b.x() / ds + 10, abs=1.5)
    # the overlay shows it in the class colour
    shot = _grab(view)
    mid = shot[300, 360].astype(int)
    assert mid[0] > mid[1] + 40  # reddish over the tissue
    # the overview shows the painted region too
    preview = view.mask_preview(400)
    arr = np.frombuffer(preview.constBits(), np.uint32, count=preview.width() * preview.height())
    assert (arr != 0).sum() > 0
    editor.undo()  # the window's Ctrl+Z (tests/app/test_slide_window.py)
    assert not editor.mask.any()
    editor.redo()
    assert (editor.mask == 4).sum() == len(rows)
    # eraser and lasso
    view.set_tool("lasso")
    view.set_class_value(2)
    with qtbot.waitSignal(view.stroke_finished, timeout=2000):
        qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=QPoint(100, 100))
        for p in [(200, 100), (200, 200), (100, 200)]:
            qtbot.mouseMove(view, QPoint(*p))
        qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=QPoint(100, 200))
    assert (editor.mask == 2).sum() == pytest.approx((100 * 8 / ds) ** 2, rel=0.15)
    alt = Qt.KeyboardModifier.AltModifier
    with qtbot.waitSignal(view.stroke_finished, timeout=2000):  # Alt + lasso erases the left half
        qtbot.mousePress(view, Qt.MouseButton.LeftButton, alt, QPoint(90, 90))
        for p in [(150, 90), (150, 210), (90, 210)]:
            qtbot.mouseMove(view, QPoint(*p))
        qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, alt, QPoint(90, 210))
    assert (editor.mask == 2).sum() == pytest.approx((100 * 8 / ds) ** 2 / 2, rel=0.2)
    editor.undo()
    view.set_tool("eraser")
    with qtbot.waitSignal(view.stroke_finished, timeout=2000):
        qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=QPoint(150, 150))
        qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=QPoint(150, 150))
    p = view.widget_to_image(QPointF(150, 150))
    assert editor.mask[int(p.y() / ds), int(p.x() / ds)] == 0
    assert editor.undo_steps == 3


def test_pan_keeps_tiles_in_the_cache_bound(qtbot, huge_slide):
    slide = open_slide(huge_slide)
    v = AnnotationView(cache_bytes=16 * 2**20)
    qtbot.addWidget(v)
    v.resize(640, 480)
    v.show()
    v.set_slide(slide)
    v.set_magnification(20)
    for _ in range(6):
        v.pan_by(-500, -300)
        _wait_tiles(qtbot, v)
        assert v.cache.nbytes <= 16 * 2**20
    assert v.last_error is None
    v.shutdown()
    slide.close()


def test_uncalibrated_slide_and_flat_image(qtbot, tmp_path):
    """A flat PNG opens as a one-level slide in the same canvas; without a pixel size there is no preset."""
    import cv2

    rgb = np.zeros((300, 400, 3), np.uint8)
    rgb[:, :200] = (200, 100, 150)
    cv2.imwrite(str(tmp_path / "flat.png"), rgb[..., ::-1])
    slide = open_slide(tmp_path / "flat.png")
    v = AnnotationView()
    qtbot.addWidget(v)
    v.resize(400, 300)
    v.show()
    v.set_slide(slide)
    assert v.um_per_screen_px() is None and v.brush_um() is None
    assert not v.set_magnification(10)
    _wait_tiles(qtbot, v)
    v.set_zoom(1.0)
    _wait_tiles(qtbot, v)
    shot = _grab(v)
    p = v.image_to_widget(QPointF(100, 150))
    assert tuple(shot[int(p.y()), int(p.x())]) == (200, 100, 150)
    v.shutdown()
