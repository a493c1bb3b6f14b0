"""Open the main window on an offscreen screen of a given size and print its dock layout as JSON.

Run by ``test_laptop_layout.py`` in a subprocess, because the offscreen
screen's size is fixed when the Qt application starts::

    python tests/app/layout_probe.py WIDTH HEIGHT PROJECT_FOLDER
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

W, H, FOLDER = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
_cfg = os.path.join(tempfile.mkdtemp(), "screen.json")
with open(_cfg, "w") as f:
    json.dump({"screens": [{"name": "laptop", "x": 0, "y": 0, "width": W, "height": H, "logicalDpi": 96}]}, f)
os.environ["QT_QPA_PLATFORM"] = f"offscreen:configfile={_cfg}"
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp()  # never the user's settings

from PySide6.QtCore import QSettings, QStandardPaths  # noqa: E402
from PySide6.QtWidgets import QApplication, QDockWidget  # noqa: E402

from app.base.qt_compat import guard_refcount_bug  # noqa: E402

guard_refcount_bug()
QStandardPaths.setTestModeEnabled(True)
QSettings.setDefaultFormat(QSettings.Format.IniFormat)


def rect(r):
    return [r.x(), r.y(), r.width(), r.height()]


def settle(app, n=30):
    for _ in range(n):
        app.processEvents()


def layout(win, app):
    settle(app)
    docks = []
    for d in win.findChildren(QDockWidget):
        if not d.isVisible():
            continue
        docks.append({
            "title": d.windowTitle(),
            "rect": rect(d.geometry()),
            "shown": not d.visibleRegion().isEmpty(),
            "tabbed_with": [t.windowTitle() for t in win.tabifiedDockWidgets(d)],
            "floating": d.isFloating(),
            "min": [d.minimumSizeHint().width(), d.minimumSizeHint().height()],
        })
    return {
        "frame": rect(win.frameGeometry()),
        "available": rect(win.screen().availableGeometry()),
        "status_bar": rect(win.statusBar().geometry()),
        "central": rect(win.centralWidget().geometry()),
        "docks": docks,
    }


def main() -> None:
    from app.shell.main_window import MainWindow
    from gusa_core.project import Project

    app = QApplication([])
    win = MainWindow(Project.open(FOLDER), features=False)
    win.install_features()
    win.show()
    win.resize(W, H)  # the user drags it to the screen's size
    settle(app)
    out = {"annotate": layout(win, app)}
    for title in ("Training", "Runs", "Review"):
        assert win.show_dock(title), title
        out[title.lower()] = layout(win, app)
    win.resize(W * 2, H * 2)  # too big: showing a dock brings the frame back inside the screen
    win.show_dock("Training")
    out["grown"] = layout(win, app)
    win.findChild(QDockWidget, "review_dock").setFloating(True)
    win.reset_layout()
    out["reset"] = layout(win, app)
    print("LAYOUT " + json.dumps(out), flush=True)
    win.close()
    settle(app)
    os._exit(0)  # the device probe's worker thread may still be starting; nothing is left to save


if __name__ == "__main__":
    main()
