"""Make docs/screenshots/slide_viewer.png: the app on a generated slide project with painted regions.

Run under a virtual X server at 1366 x 768 (the README's screenshot size)::

    Xvfb :99 -screen 0 1366x768x24 & openbox &   # DISPLAY=:99
    DISPLAY=:99 python scripts/slide_screenshot.py /tmp/slide-shot

It writes a 24,000 x 18,000 pyramidal TIFF at 0.25 µm/px (40x), a project holding it, paints
class regions over its tissue (as a pathologist would with the brush), opens the window on the
slide at about 2.5x and saves the screen with ImageMagick's ``import -window root``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import numpy as np  # noqa: E402

W, H = 24_000, 18_000


def make_project(folder: Path):
    from gusa_core.project import Project
    from gusa_core.project.slides import add_paths, save_regions, slide_info
    from slide_fixtures import TissuePainter, write_pyramid_tiff

    folder.mkdir(parents=True, exist_ok=True)
    painter = TissuePainter(W, H, seed=3, n_blobs=7, size=0.13)
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
    target = ROOT / "docs" / "screenshots" / "slide_viewer.png"
    project, sid, painter = make_project(out_dir)

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from app.shell.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    win = MainWindow(features=False)
    win.setGeometry(0, 0, 1366, 768)
    win.showMaximized()
    win.open_project(project.folder)
    sw = win.slide_workspace
    view = sw.view

    def shot():
        app.processEvents()
        subprocess.run(["import", "-window", "root", str(target)], check=True)
        print(f"wrote {target}")
        win.close()
        app.quit()

    def settle():
        if view.missing_tiles():
            QTimer.singleShot(100, settle)
            return
        view.repaint()
        QTimer.singleShot(800, shot)

    def on_shown(_id):
        cx, cy, rx, ry = painter.blobs[0]
        view.center_on(cx + 0.55 * rx, cy)
        view.set_magnification(2.5)
        sw.class_combo.setCurrentIndex(3)
        view.setFocus()
        view._cursor = None  # noqa: SLF001 - no brush ring in the picture
        QTimer.singleShot(300, settle)

    sw.slide_shown.connect(on_shown)
    win.show_image(sid)
    app.exec()


if __name__ == "__main__":
    main()
