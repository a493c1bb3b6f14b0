"""Make docs/screenshots/slide_heatmap*.png: the Slide heatmap dock's class map over a generated slide.

Run (Xvfb, openbox and ImageMagick's ``import`` on the PATH; one picture per screen size of
:mod:`_xvfb_shot`)::

    python scripts/slide_heatmap_screenshot.py /tmp/heatmap-shot [RUN]

It writes a pyramidal TIFF tiled with demo tissue (:func:`gusa_core.demo.generate_field`), Normal
on the left half and Invasive on the right, at the demo's scale (one 256x192 demo image = one BACH
field, 3.36 µm/px), a project holding it, and trains ``fa-gusa`` from random weights on the demo
project (the run of ``tests/core/test_slide_demo_run.py``: 64x48 input, 8 epochs, about 20 CPU
seconds), unless RUN names a run to use instead. Then it runs Model → Predict slide…, clicks a
field and saves the screen: the class map is the trained run's own prediction, not a drawing.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "core"))

from _xvfb_shot import run_per_size, shoot  # noqa: E402

FIELDS = (14, 9)  # demo fields across and down (half of them Normal, half Invasive)


def make_project(folder: Path, run: Path | None = None):
    from test_slide_demo_run import CELL, LEFT, MPP, RIGHT, train_demo_run
    from slide_fixtures import DemoHalvesPainter, write_pyramid_tiff

    from gusa_core.project import Project
    from gusa_core.project.slides import add_paths

    if (folder / "project").is_dir():  # made for the previous screen size
        project = Project.open(folder / "project")
        return project, project.images[0].id, run or folder / "demo-run" / "run"
    folder.mkdir(parents=True, exist_ok=True)
    margin = (CELL[0] // 2, CELL[1] // 2)
    w, h = FIELDS[0] * CELL[0] + 2 * margin[0], FIELDS[1] * CELL[1] + 2 * margin[1]
    painter = DemoHalvesPainter(w, h, (LEFT, RIGHT), mpp=MPP, margin=margin, seed=1)
    path = write_pyramid_tiff(folder / "breast_wsi_02.tif", w, h, painter=painter, mpp=MPP, levels=[1, 4, 16],
                              tile=256)
    project = Project.create(folder / "project")
    sid = add_paths(project, [path])[0].id
    project.save()
    if run is None:
        (folder / "demo-run").mkdir(exist_ok=True)
        run = train_demo_run(folder / "demo-run")
    return project, sid, run


def main() -> None:
    out_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/heatmap-shot")
    if run_per_size(__file__, sys.argv[1:]):
        return
    project, sid, run_dir = make_project(out_dir, Path(sys.argv[2]) if len(sys.argv) > 2 else None)
    project.close()

    from PySide6.QtWidgets import QApplication

    from app.shell.main_window import MainWindow
    from app.slides.slide_predict_panel import DOCK_TITLE, SlidePredictPanel

    app = QApplication.instance() or QApplication([])
    win = MainWindow(features=False)
    win.install_features()
    win.showMaximized()
    win.open_project(project.folder)
    win.runs.set_active_run(run_dir)
    [panel] = win.findChildren(SlidePredictPanel)
    view = win.canvas
    state = {"done": False}

    def on_result(*_):
        if panel.is_running() or panel.result is None or state["done"]:
            return
        state["done"] = True
        panel.opacity_slider.setValue(45)
        f = panel.result.fields[len(panel.result.fields) // 2]
        view.set_tool("pan")
        panel._on_view_clicked(f.box[0] + f.box[2] / 2, f.box[1] + f.box[3] / 2)  # noqa: SLF001 - as a click would
        view.fit()

    def on_shown(_id):
        win.show_dock(DOCK_TITLE)
        panel.start()

    win.slide_shown.connect(on_shown)
    win.show_image(sid)

    def ready() -> bool:
        on_result()
        return state["done"] and not view.missing_tiles()

    shoot(app, win, "slide_heatmap", ready)


if __name__ == "__main__":
    main()
