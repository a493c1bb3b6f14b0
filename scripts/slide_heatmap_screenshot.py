"""Make docs/screenshots/slide_heatmap*.png: the Slide heatmap dock's class map over a generated slide.

Run (Xvfb, openbox and ImageMagick's ``import`` on the PATH; one picture per screen size of
:mod:`_xvfb_shot`)::

    python scripts/slide_heatmap_screenshot.py /tmp/heatmap-shot [RUN]

It writes a 16,000 x 12,000 pyramidal TIFF at 0.25 µm/px with two kinds of tissue (pink striped
on the left, purple dotted on the right), a project holding it and a one-fold ``fa-gusa`` run,
runs Model → Predict slide… and saves the screen.
Without RUN the run's weights are random (no download, no training) and the picture shows what
the overlay looks like, not a diagnosis; pass RUN (``... /tmp/heatmap-shot RUN``), e.g. a run
trained from painted regions of a slide drawn the same way, for a meaningful map.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from _xvfb_shot import run_per_size, shoot  # noqa: E402

W, H = 16_000, 12_000


def make_project(folder: Path, run: Path | None = None):
    from gusa_core.project import Project
    from gusa_core.project.slides import add_paths
    from gusa_core.runs import runs_dir, write_untrained_run
    from slide_fixtures import TwoClassPainter, write_pyramid_tiff

    if (folder / "project").is_dir():  # made for the previous screen size
        project = Project.open(folder / "project")
        return project, project.images[0].id, run or runs_dir(project.folder) / "fa-gusa-demo"
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
