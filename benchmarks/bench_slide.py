"""Whole-slide reading: open + thumbnail, field reads from the pyramid, threaded tile throughput.

Writes a JPEG-tiled pyramidal TIFF of tissue-like blobs (20,000 x 15,000 by default; ``--big``
adds 40,000 x 30,000) with the test fixtures, then measures for the OpenSlide and the tifffile
backends of :func:`gusa_core.slides.open_slide`:

- open + first 512-px thumbnail (target <= 0.5 s),
- a 2048x1536 level-0 field read at level 0 and area-resized to 512x384 (baseline) against
  ``read_field`` taking it from the downsample-4 level,
- 256x256 level-0 tile reads per second with 1 and 2 threads (fresh slide each, no tile reused).

Compare the ratios, not the absolute figures.

Run: ``python benchmarks/bench_slide.py [--big] [--fields 12] [--tiles 200]``
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from gusa_core.engines import cpu_info  # noqa: E402
from gusa_core.slides import open_slide  # noqa: E402
from slide_fixtures import TissuePainter, write_pyramid_tiff  # noqa: E402


def timed(fn, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def bench(path: Path, painter: TissuePainter, backend: str, n_fields: int, n_tiles: int) -> dict:
    row: dict[str, float] = {}

    def open_thumb():
        with open_slide(path, backend=backend) as s:
            s.get_thumbnail(512)

    row["open+thumb s"] = timed(open_thumb, 3)
    rng = np.random.default_rng(0)
    w0, h0 = painter.width, painter.height
    boxes = []
    for cx, cy, _, _ in painter.blobs[: n_fields] * (1 + n_fields // max(1, len(painter.blobs))):
        boxes.append((int(cx) - 1024 + int(rng.integers(-200, 200)), int(cy) - 768, 2048, 1536))
    boxes = boxes[:n_fields]
    with open_slide(path, backend=backend) as s:
        t = time.perf_counter()
        for box in boxes:
            cv2.resize(s.read_region(0, box), (512, 384), interpolation=cv2.INTER_AREA)
        row["L0 field s"] = (time.perf_counter() - t) / len(boxes)
    with open_slide(path, backend=backend) as s:  # fresh handle: no tiles cached from above
        t = time.perf_counter()
        for box in boxes:
            s.read_field(box, (512, 384))
        row["read_field s"] = (time.perf_counter() - t) / len(boxes)
    cols, rows = w0 // 256, h0 // 256
    cells = rng.choice(cols * rows, size=2 * n_tiles, replace=False)
    for threads, part in ((1, cells[:n_tiles]), (2, cells[n_tiles:])):
        jobs = [(0, (int(c % cols) * 256, int(c // cols) * 256, 256, 256)) for c in part]
        with open_slide(path, backend=backend) as s, ThreadPoolExecutor(threads) as pool:
            t = time.perf_counter()
            list(pool.map(lambda job: s.read_region(*job), jobs))
            row[f"tiles/s {threads}T"] = len(jobs) / (time.perf_counter() - t)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--big", action="store_true", help="also a 40,000 x 30,000 slide")
    ap.add_argument("--fields", type=int, default=12)
    ap.add_argument("--tiles", type=int, default=200)
    args = ap.parse_args()
    cv2.setNumThreads(1)
    print(f"CPU: {cpu_info().model}  (python {platform.python_version()}, cv2 threads 1)")
    sizes = [(20_000, 15_000)] + ([(40_000, 30_000)] if args.big else [])
    with tempfile.TemporaryDirectory() as tmp:
        for w, h in sizes:
            painter = TissuePainter(w, h)
            t = time.perf_counter()
            path = write_pyramid_tiff(Path(tmp) / f"slide_{w}.tif", w, h, painter=painter)
            print(f"\n{w} x {h} JPEG-tiled pyramid written in {time.perf_counter() - t:.1f} s "
                  f"({path.stat().st_size / 2**20:.0f} MiB)")
            with open_slide(path) as s:
                print(f"levels {s.level_dimensions}")
            results = {b: bench(path, painter, b, args.fields, args.tiles) for b in ("openslide", "tifffile")}
            keys = list(results["openslide"])
            print(f"{'backend':<10}" + "".join(f"{k:>15}" for k in keys) + f"{'L0/field':>10}{'2T/1T':>8}")
            for b, row in results.items():
                print(f"{b:<10}" + "".join(f"{row[k]:>15.4f}" for k in keys)
                      + f"{row['L0 field s'] / row['read_field s']:>10.1f}{row['tiles/s 2T'] / row['tiles/s 1T']:>8.2f}")
            o, f = results["openslide"], results["tifffile"]
            print("tifffile / openslide time: "
                  + ", ".join(f"{k} {o[k] / f[k] if 'tiles' in k else f[k] / o[k]:.2f}" for k in keys))


if __name__ == "__main__":
    main()
