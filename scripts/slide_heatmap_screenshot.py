"""Make docs/screenshots/slide_heatmap.png: the Slide heatmap dock's class map over a generated slide.

Run under a virtual X server at 1366 x 768 (the README's screenshot size)::

    Xvfb :99 -screen 0 1366x768x24 & openbox &   # DISPLAY=:99
    DISPLAY=:99 python scripts/slide_heatmap_screenshot.py /tmp/heatmap-shot

It writes a 16,000 x 12,000 pyramidal TIFF at 0.25 µm/px with two kinds of tissue (pink striped
on the left, purple dotted on the right), a project holding it and a one-fold ``fa-gusa`` run,
runs Model → Predict slide… and saves the screen with ImageMagick's ``import -window root``.
Without RUN the run's weights are random (no download, no training) and the picture shows what
the overlay looks like, not a diagnosis; pass RUN (``... /tmp/heatmap-shot RUN``), e.g. a run
trained from painted regions of a slide drawn the same way, for a meaningful map.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

W, H = 16_000, 12_000


def make_project(folder: Path, run: Path | None = None):
    from gusa_core.project import Project
    from gusa_core.project.slides import add_paths
    from gusa_core.runs import runs_dir, write_untrained_run
    from slide_fixtures import TwoClassPainter, write_pyramid_tiff

    folder.mkdir(parents=True, exist_ok=True)
    path = write_pyramid_tiff(folder / "breast_wsi_02.tif", W, H, painter=TwoClassPainter(W, H, margin=0.08), mpp=0.25,
                              objective_power=40)
    project = Project.create(folder / "project")
    sid = add_paths(project, [path])[0].id
    project.save()
    if run is not None:
        return project, sid, run
    run = write_untrained_run(runs_dir(project.folder) / "fa-gusa-demo", variant="fa-gusa",
                              class_names=list(project.classes), input_size=(128, 96), folds=1, seed=4)
    return project, sid, run.folder


def main() -> None:
    out_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/heatmap-shot")
    target = ROOT / "docs" / "screenshots" / "slide_heatmap.png"
    project, sid, run_dir = make_project(out_dir, Path(sys.argv[2]) if len(sys.argv) > 2 else None)

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from app.shell.main_window import MainWindow
    from app.slides.slide_predict_panel import DOCK_TITLE, SlidePredictPanel

    app = QApplication.instance() or QApplication([])
    win = MainWindow(features=False)
    win.install_features()
    win.setGeometry(0, 0, 1366, 768)
    win.showMaximized()
    win.open_project(project.folder)
    win.runs.set_active_run(run_dir)
    [panel] = win.findChildren(SlidePredictPanel)
    view = win.slide_view

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

    def finished():
        if panel.is_running() or panel.result is None:
            QTimer.singleShot(200, finished)
            return
        panel.opacity_slider.setValue(45)
        f = panel.result.fields[len(panel.result.fields) // 2]
        view.set_tool("pan")
        panel._on_view_clicked(f.box[0] + f.box[2] / 2, f.box[1] + f.box[3] / 2)  # noqa: SLF001 - as a click would
        view.fit()
        QTimer.singleShot(300, settle)

    def on_shown(_id):
        win.show_dock(DOCK_TITLE)
        panel.start()
        QTimer.singleShot(500, finished)

    win.slide_shown.connect(on_shown)
    win.show_image(sid)
    app.exec()


if __name__ == "__main__":
    main()
