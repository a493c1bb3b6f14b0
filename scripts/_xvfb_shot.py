"""The screenshot scripts' shared driver: a virtual X screen with a window manager per screen size, and the shot.

A script's ``main`` calls :func:`run_per_size` first: outside a screen of this driver it starts,
for every size in :data:`SIZES`, ``Xvfb`` on a free display with ``openbox`` (real window
frames, maximising, focus), runs the script again on that display with the size in
``GUSA_SHOT_SIZE`` and a fresh settings folder, then stops both; it returns True there, and the
script returns. Inside, it returns False and the script builds its window, then hands it to
:func:`shoot`, which waits until the script's ``ready()`` holds, lets the window settle, saves the
whole screen with ImageMagick's ``import -window root`` and quits. The picture of the first size
is ``docs/screenshots/<stem>.png`` (the README's), the others ``<stem>_<W>x<H>.png``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "screenshots"
SIZES = ((1366, 768), (1920, 1080))
_ENV = "GUSA_SHOT_SIZE"

__all__ = ["SIZES", "run_per_size", "screen_size", "target", "shoot"]


def screen_size() -> tuple[int, int] | None:
    """The virtual screen's ``(width, height)`` inside the driver, else None."""
    value = os.environ.get(_ENV)
    if not value:
        return None
    w, h = value.split("x")
    return int(w), int(h)


def target(stem: str) -> Path:
    """Where the picture of this screen size goes."""
    size = screen_size() or SIZES[0]
    return DOCS / (f"{stem}.png" if size == SIZES[0] else f"{stem}_{size[0]}x{size[1]}.png")


def _free_display() -> int:
    for n in range(90, 200):
        if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists():
            return n
    raise RuntimeError("no free X display number between :90 and :199")


def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise RuntimeError(f"{what} did not start within {timeout:.0f} s")
        time.sleep(0.1)


def run_per_size(script: str, argv: list[str], sizes=SIZES) -> bool:
    """Outside the driver: run ``script`` with ``argv`` once per screen size on its own display; True.

    Inside the driver (the script was started by this function): False, nothing done.
    """
    if screen_size() is not None:
        return False
    for w, h in sizes:
        n = _free_display()
        xvfb = subprocess.Popen(["Xvfb", f":{n}", "-screen", "0", f"{w}x{h}x24", "-nolisten", "tcp"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wm = None
        try:
            _wait_for(lambda: Path(f"/tmp/.X11-unix/X{n}").exists(), 20, "Xvfb")
            with tempfile.TemporaryDirectory(prefix="gusa-shot-settings-") as config:
                env = {**os.environ, "DISPLAY": f":{n}", "QT_QPA_PLATFORM": "xcb", _ENV: f"{w}x{h}",
                       "XDG_CONFIG_HOME": config, "PYTHONPATH": str(ROOT)}
                wm = subprocess.Popen(["openbox"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(1.0)  # the window manager owns the screen before the window maps
                subprocess.run([sys.executable, script, *argv], env=env, check=True, timeout=900)
        finally:
            for proc in (wm, xvfb):
                if proc is not None:
                    proc.terminate()
                    try:
                        proc.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        proc.kill()
    return True


def shoot(app, window, stem: str, ready: Callable[[], bool], *, settle_ms: int = 800, timeout_s: float = 600) -> None:
    """Run ``app`` until ``ready()`` holds, let it settle, save the screen as :func:`target` ``(stem)``, quit."""
    from PySide6.QtCore import QTimer

    out = target(stem)
    end = time.monotonic() + timeout_s

    def save() -> None:
        app.processEvents()
        subprocess.run(["import", "-window", "root", str(out)], check=True)
        print(f"wrote {out}")
        window.close()
        app.quit()

    def poll() -> None:
        if not ready():
            if time.monotonic() > end:
                print(f"gave up waiting for {stem}", file=sys.stderr)
                app.exit(1)
                return
            QTimer.singleShot(100, poll)
            return
        QTimer.singleShot(settle_ms, save)

    QTimer.singleShot(0, poll)
    if app.exec():
        raise SystemExit(f"no screenshot of {stem}")
