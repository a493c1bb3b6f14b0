"""``gusa-studio``: start the desktop application.

``gusa-studio [PROJECT]`` opens a project folder; ``gusa-studio --demo`` writes
the built-in demo project to the user's data folder the first time and opens
it. Torch is never imported here: the window is on screen before any model is
needed. ``GUSA_STARTUP_PROBE=1`` prints ``window-visible <seconds>`` (time since
the process started) once the window is exposed, then quits (for
``benchmarks/bench_canvas.py``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

_T0 = time.time()

__all__ = ["main", "build_parser", "run_self_test"]


def _process_start_time() -> float:
    """Wall-clock time the process started (Linux: from /proc), else this module's import."""
    try:
        with open("/proc/self/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return time.time() - uptime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return _T0


def _first_paint_watcher_class():
    from PySide6.QtCore import QEvent, QObject

    class FirstPaintWatcher(QObject):
        """Calls ``callback`` once, when the watched window is first painted."""

        def __init__(self, parent, callback):
            super().__init__(parent)
            self._callback = callback

        def eventFilter(self, obj, event):
            if self._callback is not None and event.type() == QEvent.Type.Paint:
                callback, self._callback = self._callback, None
                callback()
            return False

    return FirstPaintWatcher


def _FirstPaintWatcher(parent, callback):  # noqa: N802 - a class made on demand (Qt imported late)
    return _first_paint_watcher_class()(parent, callback)


def build_parser() -> argparse.ArgumentParser:
    from gusa_core import __version__

    p = argparse.ArgumentParser(prog="gusa-studio", description="GuSA Studio: paint RoIs, label, train and review GuSA models.")
    p.add_argument("project", nargs="?", default=None, help="project folder to open")
    p.add_argument("--demo", action="store_true", help="open the built-in demo project (written on first use)")
    p.add_argument("--self-test", action="store_true", help="check the installation and exit")
    p.add_argument("--version", action="version", version=f"gusa-studio {__version__}")
    return p


def run_self_test() -> int:
    """``--self-test``: demo project → main window → one prediction; returns the exit status."""
    from app.shell.self_test import run_self_test as _run

    return _run()


def _open_demo(window, *, background: bool = True) -> bool:
    """Open the demo project, writing it first (off the GUI thread) if it does not exist yet.

    Returns whether the project is open (``False`` while it is still being written
    in the background: it opens by itself when ready).
    """
    from app.base import errors

    folder = window.demo_folder()
    if (folder / "gusa-project.json").is_file():
        return window.open_project(folder)

    def finish(problem: str) -> bool:
        if problem:
            errors.show_error(window, "Cannot write the demo project", problem)
            return False
        return window.open_project(folder)

    if not background:
        return finish(_write_demo(folder))

    from app.base.workers import run_in_thread

    window.canvas.set_placeholder(f"Preparing the demo project (first start only)…\n{folder}")
    window.show_status("Writing the demo project…")

    def done(problem: str) -> None:
        try:
            finish(problem)
        except RuntimeError:  # the window was closed meanwhile
            pass

    run_in_thread(_write_demo, folder, on_result=done)
    return False


def _write_demo(folder) -> str:
    """Write the demo project to a scratch folder, then move it into place (never half a project).

    Returns ``""`` on success, else a message naming the folder.
    """
    import shutil

    from gusa_core.demo import write_demo_project

    from app.base.errors import describe

    scratch = folder.with_name(folder.name + ".partial")
    try:
        shutil.rmtree(scratch, ignore_errors=True)
        folder.parent.mkdir(parents=True, exist_ok=True)
        write_demo_project(scratch)
        os.replace(scratch, folder)
        return ""
    except Exception as exc:
        shutil.rmtree(scratch, ignore_errors=True)
        return f"Cannot write the demo project to {folder}: {describe(exc)}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.self_test:
        return run_self_test()

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from app.base import errors
    from app.base.qt_compat import guard_refcount_bug

    guard_refcount_bug()
    from app.base.icon import app_icon
    from app.base.settings import APPLICATION, ORGANIZATION

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName(APPLICATION)
    app.setDesktopFileName("gusa-studio")
    app.setWindowIcon(app_icon())
    errors.install_excepthook()

    from app.shell.main_window import MainWindow

    window = MainWindow(features=False)
    probe = bool(os.environ.get("GUSA_STARTUP_PROBE"))

    def open_requested() -> None:
        if args.demo:
            _open_demo(window)
        elif args.project:
            window.open_project(args.project)

    painted: dict[str, object] = {}

    def on_first_paint() -> None:
        painted["visible"] = time.time() - _process_start_time()
        painted["torch"] = "torch" in sys.modules
        QTimer.singleShot(0, after_first_paint)

    def after_first_paint() -> None:
        # the window is on screen: now open the project, then add the model features
        visible, torch_loaded = painted["visible"], painted["torch"]
        open_requested()
        if probe:
            opened = time.time() - _process_start_time()
            print(f"window-visible {visible:.3f} torch-imported {torch_loaded} project-open {opened:.3f}", flush=True)
            window.close()
            app.quit()
        else:
            QTimer.singleShot(0, window.install_features)

    watcher = _FirstPaintWatcher(window, on_first_paint)
    window.installEventFilter(watcher)
    window.show()
    return app.exec()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
