"""Make docs/screenshots/slide_viewer*.png: a generated slide with painted regions, the overview and the scale bar.

Run (Xvfb, openbox and ImageMagick's ``import`` on the PATH; one picture per screen size of
:mod:`_xvfb_shot`)::

    python scripts/slide_screenshot.py [/tmp/slide-shot]

It writes a 24,000 x 18,000 pyramidal TIFF at 0.25 µm/px (40x), a project holding it, paints
class regions over its tissue (as a pathologist would with the brush), opens the window on the
slide at 2.5x (5x on a full-HD screen) with an Invasive brush stroke just painted.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "app"))  # app_helpers: synthetic mouse input

import numpy as np  # noqa: E402

from _xvfb_shot import run_per_size, shoot  # noqa: E402

W, H = 24_000, 18_000


def make_project(folder: Path):
    from gusa_core.project import Project
    from gusa_core.project.slides import add_paths, save_regions, slide_info
    from slide_fixtures import TissuePainter, write_pyramid_tiff

    painter = TissuePainter(W, H, seed=3, n_blobs=7, size=0.13)
    if (folder / "project").is_dir():
        project = Project.open(folder / "project")
        return project, project.images[0].id, painter
    folder.mkdir(parents=True, exist_ok=True)
    path = write_pyramid_tiff(folder / "breast_wsi_01.tif", W, H, painter=painter, mpp=0.25, objective_power=40)
    project = Project.create(folder / "project")
    sid = add_paths(project, [path])[0].id
    info = slide_info(project, sid)
    h, w = info.label_shape
    d = info.downsample
    ys = (np.arange(h) + 0.5)[:, None] * d
    xs = (np.arange(w) + 0.5)[None, :] * d
    labels = np.zeros((h, w), np.uint8)
    # one class per blob, as the BACH WSI annotations: normal, benign, in situ, invasive
    for k, (cx, cy, rx, ry) in enumerate(painter.blobs):
        inside = ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 <= 0.8
        labels[inside] = [4, 2, 3, 1, 4, 2, 3][k]
    save_regions(project, sid, labels)
    project.save()
    return project, sid, painter


def main() -> None:
    out_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/slide-shot")
    if run_per_size(__file__, sys.argv[1:]):
        return
    project, sid, painter = make_project(out_dir)
    project.close()

    from PySide6.QtCore import QPointF
    from PySide6.QtWidgets import QApplication

    from app.shell.main_window import MainWindow
    from app_helpers import send_mouse

    app = QApplication.instance() or QApplication([])
    win = MainWindow(features=False)
    win.showMaximized()
    win.open_project(project.folder)
    view = win.canvas
    state = {"shown": False}

    def on_shown(_id):
        cx, cy, rx, ry = painter.blobs[0]
        view.set_magnification(2.5 if view.width() < 1400 else 5)  # the slide fills the view on either screen
        vw, vh = view.width() / view.zoom(), view.height() / view.zoom()
        view.center_on(min(max(cx + 0.55 * rx, vw / 2), W - vw / 2), min(max(cy, vh / 2), H - vh / 2))
        win.slide_toolbar.class_combo.setCurrentIndex(3)  # Invasive, as Shift+4 picks it
        view.set_brush_size(36)
        # an Invasive stroke along the blob's edge, the brush ring where it stopped
        p0 = view.image_to_widget(QPointF(cx + 0.75 * rx, cy - 0.35 * ry))
        pts = [p0 + QPointF(6 * i, 9 * i) for i in range(12)]
        send_mouse(view, "press", pts[0])
        for p in pts[1:]:
            send_mouse(view, "move", p)
        send_mouse(view, "release", pts[-1])
        send_mouse(view, "move", pts[-1])
        state["shown"] = True

    win.slide_shown.connect(on_shown)
    win.show_image(sid)
    shoot(app, win, "slide_viewer", lambda: state["shown"] and not view.missing_tiles())


if __name__ == "__main__":
    main()
