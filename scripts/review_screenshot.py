"""Make docs/screenshots/review*.png and suggestion*.png: a flat image in Review, and a suggested RoI being corrected.

Run (Xvfb, openbox and ImageMagick's ``import`` on the PATH; one picture per screen size of
:mod:`_xvfb_shot`)::

    gusa demo /tmp/review-shot/demo --per-class 10
    gusa train /tmp/review-shot/demo --out /tmp/review-shot/demo/runs/fa-gusa-demo --variant fa-gusa \
        --folds 1 --epochs 10 --input-size 128x96 --pretrained none
    python scripts/review_screenshot.py /tmp/review-shot/demo [RUN]

The project is copied first (the pictures change nothing in it). Without RUN its newest run is used (random weights when it has none: the pictures then
show what the overlays look like, not what a model learnt). *review*: an In situ image in the
canvas with the Review dock's attention map (colour map, opacity), its τ outline and the
ground-truth RoI. *suggestion*: after Model → Assisted annotation scanned the project, an
unmasked image's dashed suggestion is accepted by an eraser stroke that takes a bite out of it.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "app"))  # app_helpers: synthetic mouse input

from _xvfb_shot import run_per_size, screen_size, shoot  # noqa: E402

PICTURES = ("review", "suggestion")


def _run(project, given: str | None) -> Path:
    from gusa_core.runs import list_runs, runs_dir, write_untrained_run

    if given:
        return Path(given)
    runs = list_runs(project.folder)
    if runs:
        return Path(runs[0].folder)
    return write_untrained_run(runs_dir(project.folder) / "untrained", variant="fa-gusa", class_names=list(project.classes),
                               input_size=(128, 96), folds=1, seed=4).folder


def review(app, win) -> None:
    from PySide6.QtGui import QCursor

    review_panel = win.features["app.review.review_panel"]
    target = next(r.id for r in win.project.images if r.label == "InSitu" and r.mask)
    QCursor.setPos(0, 0)  # no brush ring over the attention map
    win.select_image(target)
    win.show_dock("Review")
    review_panel.colormap_combo.setCurrentText("jet")
    review_panel.opacity_slider.setValue(45)
    review_panel.outline_check.setChecked(True)  # the τ outline
    review_panel.roi_check.setChecked(True)  # the pathologist's RoI
    win.canvas.set_mask_visible(False)  # the ground truth shows as the green outline
    shoot(app, win, "review", lambda: review_panel.prediction is not None and not review_panel.busy)


def suggestion(app, win) -> None:
    import cv2
    import numpy as np
    from PySide6.QtCore import QPointF

    from app.base.coords import rc_to_point
    from app_helpers import send_mouse

    assist = win.features["app.review.assist_panel"]
    state = {"done": False}

    def correct(_n) -> None:
        free = [r.id for r in win.project.images if r.mask is None and r.label is None]
        for image_id in free:
            win.select_image(image_id)
            if assist.pending is not None:
                break
        if assist.pending is None:
            raise SystemExit("no suggestion to correct: train the run longer or lower τ")
        canvas = win.canvas
        mask = assist.pending[1]
        h, w = mask.shape
        win.set_tool("eraser")
        canvas.set_brush_size(max(8, w // 14))
        # the eraser takes a bite out of the suggestion's edge nearest the middle: accepted, then edited
        edge = np.argwhere((mask > 0) & (cv2.erode(mask, np.ones((3, 3), np.uint8)) == 0))
        r, c = edge[np.argmin(((edge - (h / 2, w / 2)) ** 2).sum(1))]
        pts = [canvas.image_to_widget(rc_to_point(r + dr, c)) for dr in range(-w // 16, w // 16 + 1, 4)]
        send_mouse(canvas, "press", pts[0])
        for p in pts[1:]:
            send_mouse(canvas, "move", p)
        send_mouse(canvas, "release", pts[-1])
        send_mouse(canvas, "move", pts[-1] + QPointF(0, 1))
        state["done"] = True

    assist.scan_finished.connect(correct)
    win.show_dock("Assist")
    assist.start_scan()
    shoot(app, win, "suggestion", lambda: state["done"])


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    if screen_size() is None:  # every picture at every screen size, each in a process of its own
        for picture in PICTURES:
            run_per_size(__file__, [picture, *sys.argv[1:]])
        return
    picture = sys.argv[1]
    folder = Path(tempfile.mkdtemp(prefix="gusa-shot-")) / Path(sys.argv[2]).name
    shutil.copytree(sys.argv[2], folder)  # every picture starts from the project as given (nothing accepted yet)
    from PySide6.QtWidgets import QApplication

    from app.shell.main_window import MainWindow
    from gusa_core.project import Project

    project = Project.open(folder)
    run = _run(project, sys.argv[3] if len(sys.argv) > 3 else None)
    project.close()
    app = QApplication.instance() or QApplication([])
    win = MainWindow(features=False)
    win.install_features()
    win.showMaximized()
    win.open_project(folder)
    win.runs.set_active_run(run)
    {"review": review, "suggestion": suggestion}[picture](app, win)


if __name__ == "__main__":
    main()
