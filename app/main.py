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


def build_parser() -> argparse.ArgumentParser:
    from gusa_core import __version__

    p = argparse.ArgumentParser(prog="gusa-studio", description="GuSA Studio: paint RoIs, label, train and review GuSA models.")
    p.add_argument("project", nargs="?", default=None, help="project folder to open")
    p.add_argument("--demo", action="store_true", help="open the built-in demo project (written on first use)")
    p.add_argument("--self-test", action="store_true", help="check the installation and exit")
    p.add_argument("--version", action="version", version=f"gusa-studio {__version__}")
    return p


def run_self_test() -> int:
    """Check the installation (filled in by issue 7). Returns the exit status."""
    # TODO(issue 7): open a demo project offscreen, paint, train one tiny epoch, predict.
    print("gusa-studio --self-test: not implemented yet")
    return 0


def _open_demo(window) -> bool:
    from gusa_core.demo import write_demo_project

    from . import errors

    folder = window.demo_folder()
    if not (folder / "gusa-project.json").is_file():
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
            window.show_status(f"Writing the demo project to {folder}…")
            write_demo_project(folder)
        except Exception as exc:
            errors.show_error(window, "Cannot write the demo project", f"Cannot write the demo project to {folder}: {errors.describe(exc)}")
            return False
    return window.open_project(folder)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.self_test:
        return run_self_test()

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from . import errors
    from .icon import app_icon
    from .settings import APPLICATION, ORGANIZATION

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName(APPLICATION)
    app.setDesktopFileName("gusa-studio")
    app.setWindowIcon(app_icon())
    errors.install_excepthook()

    from .main_window import MainWindow

    window = MainWindow()
    window.show()
    probe = os.environ.get("GUSA_STARTUP_PROBE")
    if probe:
        def report():
            app.processEvents()
            print(f"window-visible {time.time() - _process_start_time():.3f} torch-imported {'torch' in sys.modules}", flush=True)
        # the project opens after the window is visible, as for a user
    if args.demo:
        QTimer.singleShot(0, lambda: _open_demo(window))
    elif args.project:
        QTimer.singleShot(0, lambda: window.open_project(args.project))
    if probe:
        QTimer.singleShot(0, lambda: (report(), window.close(), app.quit()))
    return app.exec()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
