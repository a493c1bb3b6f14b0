"""The application shell: start-up without torch, --demo, errors, autosave, settings, notes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from app_helpers import drag, image_pixel

ROOT = Path(__file__).resolve().parents[2]


def test_window_shows_without_importing_torch(tmp_path, demo_project):
    code = (
        "import sys\n"
        "from PySide6.QtWidgets import QApplication\n"
        "app = QApplication([])\n"
        "from app.shell.main_window import MainWindow\n"
        f"w = MainWindow(); w.show(); w.open_project({str(demo_project.folder)!r})\n"
        "assert w.current_image_id() is not None\n"
        "print('torch' in sys.modules)\n"
        "w.close()\n"
    )
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=str(tmp_path), PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_startup_probe_prints_visible_time(tmp_path, demo_project):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=str(tmp_path), PYTHONPATH=str(ROOT),
               GUSA_STARTUP_PROBE="1")
    out = subprocess.run([sys.executable, "-m", "app.main", str(demo_project.folder)], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    line = next(l for l in out.stdout.splitlines() if l.startswith("window-visible"))
    assert float(line.split()[1]) > 0 and "torch-imported False" in line


def test_demo_project_is_written_once_then_opened(qtbot, window, monkeypatch, tmp_path):
    import gusa_core.demo as demo
    from app import main as app_main

    calls = []
    real = demo.write_demo_project

    def small(folder, **kw):
        calls.append(folder)
        return real(folder, per_class=1, unlabelled=0, size=(128, 96))

    monkeypatch.setattr(demo, "write_demo_project", small)
    monkeypatch.setattr(type(window), "demo_folder", staticmethod(lambda: tmp_path / "appdata" / "demo-project"))
    assert not app_main._open_demo(window)  # written in the background, then opened
    qtbot.waitUntil(lambda: window.project is not None, timeout=30000)
    assert len(window.project.images) == 4 and window.current_image() is not None  # paths survive the move
    assert not (tmp_path / "appdata" / "demo-project.partial").exists()
    assert app_main._open_demo(window)
    assert len(calls) == 1  # the second time it only opens
    args = app_main.build_parser().parse_args(["--demo"])
    assert args.demo and args.project is None and not args.self_test


def test_excepthook_shows_a_dialog_with_details(error_messages, monkeypatch):
    from app.base import errors

    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    errors.install_excepthook()
    try:
        raise ValueError("boom in a slot")
    except ValueError:
        sys.excepthook(*sys.exc_info())
    title, text = error_messages[-1]
    assert title == "Unexpected error" and "boom in a slot" in text and "Traceback" not in text


def test_autosave_coalesces_and_flushes():
    from app.workspace.autosave import AutosaveWorker

    worker = AutosaveWorker()
    gate = threading.Event()
    done = []
    worker.schedule("block", gate.wait)
    for i in range(10):
        worker.schedule("mask:a", lambda i=i: done.append(i))
    assert worker.has_pending()
    gate.set()
    assert worker.flush(10)
    assert done == [9]  # only the newest of ten rapid saves was written
    assert not worker.has_pending()
    worker.shutdown()


def test_closing_right_after_a_stroke_keeps_it(qtbot, window, demo_project):
    from gusa_core.imageio import read_mask

    win = window
    assert win.open_project(demo_project.folder)
    target = next(r.id for r in demo_project.images if r.mask is None)
    win.show_image(target)
    canvas = win.canvas
    cx, cy = canvas.width() // 2, canvas.height() // 2
    drag(canvas, [(cx - 10, cy), (cx + 10, cy)])
    r, c = image_pixel(canvas, (cx, cy))
    win.close()  # no waiting: closeEvent flushes
    assert read_mask(demo_project.folder / "masks" / f"{target}.png")[r, c] == 255


def test_recent_projects_and_layout_are_remembered(qtbot, window, demo_project):
    from app.shell.main_window import MainWindow
    from app.base.settings import recent_projects, settings

    assert window.open_project(demo_project.folder)
    assert str(Path(demo_project.folder).resolve()) in recent_projects()
    window.canvas.set_brush_size(77)
    last = window.image_list.visible_ids()[2]
    window.show_image(last)
    window.close()
    assert settings().value("main_window/state") is not None
    win2 = MainWindow(features=False)
    qtbot.addWidget(win2)
    assert win2.canvas.brush_size() == 77
    win2.open_project(demo_project.folder)
    assert win2.current_image_id() == last  # back where the user left off
    win2.close()


def test_notes_are_saved(qtbot, window, demo_project):
    from gusa_core.project import Project

    win = window
    assert win.open_project(demo_project.folder)
    image_id = win.current_image_id()
    win.side_panel.notes_edit.setPlainText("atypical ducts, check with IHC")
    assert win.isWindowModified()
    win.go_next(1)  # switching commits the notes
    assert win.save_now()
    assert Project.open(demo_project.folder).image(image_id).notes == "atypical ducts, check with IHC"


def test_unreadable_mask_disables_painting_and_keeps_the_file(qtbot, window, demo_project):
    rec = next(r for r in demo_project.images if r.mask is not None)
    path = demo_project.mask_path(rec.id)
    path.write_bytes(b"not a png")
    assert window.open_project(demo_project.folder)
    window.show_image(rec.id)
    assert window.canvas.editor() is None
    assert path.name in (window.canvas.banner_text() or "")
    assert path.read_bytes() == b"not a png"
