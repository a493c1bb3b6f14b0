"""Slide viewer: open to first overview, first full-resolution viewport, pan repaint, memory while panning.

Writes a 40,000 x 30,000 JPEG-tiled pyramidal TIFF with the test fixtures, shows it in a
1366 x 768 :class:`app.workspace.canvas_tools.AnnotationView` (offscreen Qt) and measures,
for the tifffile backend (the ``auto`` choice for generic TIFFs) against OpenSlide on the same
file (the baseline, same process):

- open + overview thumbnail + first painted fit view (target <= 0.5 s),
- first full-resolution (40x) viewport at a place never visited: tiles decoded in the pool,
  repainted (target <= 300 ms),
- pan events with tiles cached: time from ``pan_by`` to a repainted viewport, p50 / p95
  (target p95 <= 16 ms), against the same canvas panning a flat 4096 x 3072 image held in memory,
- peak RSS growth while panning across the whole slide at 20x (target <= 500 MB).

Run: ``QT_QPA_PLATFORM=offscreen python benchmarks/bench_slide_viewer.py [--pans 200] [--quick]``
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from PySide6.QtWidgets import QApplication  # noqa: E402

from gusa_core.engines import cpu_info  # noqa: E402
from gusa_core.slides import open_slide  # noqa: E402
from slide_fixtures import TissuePainter, write_pyramid_tiff  # noqa: E402

VIEW = (1366, 768)


def status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def settle(app, view, timeout: float = 30.0) -> None:
    """Process events until every tile of the viewport is decoded, then repaint once."""
    end = time.perf_counter() + timeout
    while view.missing_tiles() and time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.001)
    app.processEvents()
    view.repaint()


def bench(app, path: Path, painter: TissuePainter, backend: str, pans: int, sweep: bool) -> dict:
    from app.workspace.canvas_tools import AnnotationView

    row: dict[str, float] = {}
    view = AnnotationView()
    view.resize(*VIEW)
    view.show()
    app.processEvents()
    t = time.perf_counter()
    slide = open_slide(path, backend=backend)
    thumb = slide.get_thumbnail(1024)
    view.set_slide(slide, thumb)
    view.repaint()
    row["open->overview ms"] = (time.perf_counter() - t) * 1000
    settle(app, view)
    # first 40x viewport on a blob never visited: pool decodes the tiles, paint shows them
    cx, cy, _, _ = painter.blobs[1]
    t = time.perf_counter()
    view.center_on(cx, cy)
    view.set_magnification(40)
    settle(app, view)
    row["first 40x view ms"] = (time.perf_counter() - t) * 1000
    # pans with tiles cached: a small back-and-forth path, warmed once, then timed; at 40x (tiles
    # drawn 1:1) and at 7x (tiles of the downsample-4 viewer level shrunk, smooth filtering)
    for mag, key in ((40, "pan"), (7, "pan 7x")):
        view.set_magnification(mag)
        steps = [(37, 23), (-37, -23)] * (pans // 2)
        for dx, dy in steps[:4]:
            view.pan_by(dx, dy)
            settle(app, view)
        times = []
        for dx, dy in steps:
            t = time.perf_counter()
            view.pan_by(dx, dy)
            view.repaint()
            times.append((time.perf_counter() - t) * 1000)
            app.processEvents()
        row[f"{key} p50 ms"] = float(np.percentile(times, 50))
        row[f"{key} p95 ms"] = float(np.percentile(times, 95))
    if sweep:
        # serpentine across the whole slide at 20x; peak RSS over the level before
        exact = reset_peak()
        rss0 = status_kib("VmRSS")
        view.set_magnification(20)
        w0, h0 = slide.dimensions
        vw, vh = VIEW[0] / view.zoom(), VIEW[1] / view.zoom()
        t = time.perf_counter()
        n = 0
        for r, y in enumerate(np.arange(vh / 2, h0, vh)):
            xs = np.arange(vw / 2, w0, vw)
            for x in (xs if r % 2 == 0 else xs[::-1]):
                view.center_on(float(x), float(y))
                settle(app, view)
                n += 1
        row["sweep viewports"] = n
        row["sweep s"] = time.perf_counter() - t
        if exact:
            row["sweep peak RSS growth MB"] = (status_kib("VmHWM") - rss0) / 1024
    view.shutdown()
    slide.close()
    view.close()
    return row


def flat_baseline(app, pans: int) -> float:
    """p95 of pan + repaint of the same canvas showing a flat image (a one-level slide drawn from memory)."""
    from app.workspace.canvas_view import CanvasView

    img = np.ascontiguousarray(TissuePainter(4096, 3072)(0, 0, 4096, 3072, 1.0))
    c = CanvasView()
    c.resize(*VIEW)
    c.show()
    c.set_image(img)
    c.set_zoom(1.0)
    app.processEvents()
    times = []
    for i in range(pans):
        d = 37 if i % 2 == 0 else -37
        t = time.perf_counter()
        c.pan_by(d, d)
        c.repaint()
        times.append((time.perf_counter() - t) * 1000)
        app.processEvents()
    c.close()
    return float(np.percentile(times, 95))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pans", type=int, default=200)
    ap.add_argument("--quick", action="store_true", help="skip the whole-slide sweep")
    ap.add_argument("--backends", default="tifffile,openslide")
    args = ap.parse_args()
    app = QApplication.instance() or QApplication([])
    print(f"CPU: {cpu_info().model}  (python {platform.python_version()}, {os.cpu_count()} logical CPUs, view {VIEW[0]}x{VIEW[1]})")
    with tempfile.TemporaryDirectory() as tmp:
        painter = TissuePainter(40_000, 30_000, n_blobs=8, size=0.06)
        t = time.perf_counter()
        path = write_pyramid_tiff(Path(tmp) / "slide.tif", 40_000, 30_000, painter=painter, mpp=0.25)
        print(f"40,000 x 30,000 pyramid written in {time.perf_counter() - t:.1f} s ({path.stat().st_size / 2**20:.0f} MiB)")
        flat = flat_baseline(app, args.pans)
        results = {}
        for i, backend in enumerate(args.backends.split(",")):
            results[backend] = bench(app, path, painter, backend, args.pans, sweep=(i == 0 and not args.quick))
        keys = sorted({k for r in results.values() for k in r}, key=lambda k: list(results[args.backends.split(",")[0]]).index(k)
                      if k in results[args.backends.split(",")[0]] else 99)
        print(f"{'':<28}" + "".join(f"{b:>12}" for b in results))
        for k in keys:
            print(f"{k:<28}" + "".join(f"{r.get(k, float('nan')):>12.1f}" for r in results.values()))
        first = args.backends.split(",")[0]
        r = results[first]
        print(f"\nflat image pan p95: {flat:.1f} ms; slide view p95 / flat p95 = {r['pan p95 ms'] / flat:.2f}")
        if len(results) > 1:
            o = results[args.backends.split(",")[1]]
            print(f"{first} vs {args.backends.split(',')[1]}: first 40x view {o['first 40x view ms'] / r['first 40x view ms']:.2f}x faster, "
                  f"open->overview {o['open->overview ms'] / r['open->overview ms']:.2f}x")
        print(f"targets: open->overview <= 500 ms: {r['open->overview ms']:.0f}; first 40x view <= 300 ms: "
              f"{r['first 40x view ms']:.0f}; pan p95 <= 16 ms: {r['pan p95 ms']:.1f}"
              + (f"; sweep RSS growth <= 500 MB: {r['sweep peak RSS growth MB']:.0f}" if "sweep peak RSS growth MB" in r else ""))


if __name__ == "__main__":
    main()
