"""Brush strokes, undo and GeoJSON on a BACH-size (2048x1536) mask.

Prints per-move latency of ``MaskEditor.stroke_to`` (median / p95) against a
naive editor that copies the whole mask for undo on every move and draws on
the whole mask, the undo time, and GeoJSON export/import times. Both editors
run in this process on the same strokes; compare the ratios, not the
absolute figures.

Run: ``python benchmarks/bench_annotation.py [--moves 50] [--radius 40] [--rounds 5]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
cv2.setNumThreads(1)

from gusa_core.annotation import MaskEditor, _line_thickness  # noqa: E402
from gusa_core.geojson import export_geojson, import_geojson, mask_to_geojson  # noqa: E402

H, W = 1536, 2048


def stroke_points(n: int, seed: int) -> list[tuple[int, int]]:
    """A wavy stroke across the mask, ~30 px between moves (a fast mouse drag)."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, n)
    rows = 300 + 900 * t + 80 * np.sin(9 * t) + rng.normal(0, 3, n)
    cols = 200 + 1500 * t + 60 * np.cos(7 * t) + rng.normal(0, 3, n)
    return [(int(r), int(c)) for r, c in zip(rows, cols)]


class NaiveEditor:
    """The baseline: snapshot the whole mask for undo and draw on the whole mask."""

    def __init__(self, mask):
        self.mask = mask.copy()
        self.history = []
        self.prev = None

    def begin_stroke(self, value):
        self.value, self.prev = value, None

    def stroke_to(self, r, c, radius):
        self.history.append(self.mask.copy())
        prev = self.prev or (r, c)
        cv2.line(self.mask, (prev[1], prev[0]), (c, r), self.value, thickness=_line_thickness(radius))
        cv2.circle(self.mask, (c, r), radius, self.value, -1)
        self.prev = (r, c)
        return (0, 0, H, W)

    def end_stroke(self):
        pass

    def undo(self):
        self.mask[:] = self.history[0]
        self.history.clear()


def run_stroke(editor, pts, radius):
    times = []
    editor.begin_stroke(255)
    for r, c in pts:
        t0 = time.perf_counter()
        editor.stroke_to(r, c, radius)
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    editor.end_stroke()
    t_end = time.perf_counter() - t0
    t0 = time.perf_counter()
    editor.undo()
    t_undo = time.perf_counter() - t0
    return times, t_end, t_undo


def blobby_mask(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = np.zeros((H, W), np.uint8)
    for _ in range(40):
        cv2.circle(m, (int(rng.integers(0, W)), int(rng.integers(0, H))), int(rng.integers(20, 220)), 255, -1)
    for _ in range(25):
        cv2.circle(m, (int(rng.integers(0, W)), int(rng.integers(0, H))), int(rng.integers(5, 60)), 0, -1)
    noise = cv2.GaussianBlur((rng.random((H, W)) * 255).astype(np.uint8), (0, 0), 6)
    return np.where((m > 0) & (noise > 110), 255, 0).astype(np.uint8)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--moves", type=int, default=50)
    ap.add_argument("--radius", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)

    base = np.zeros((H, W), np.uint8)
    fast_moves, naive_moves, fast_undo, naive_undo, fast_end = [], [], [], [], []
    for k in range(args.rounds):  # interleaved rounds
        pts = stroke_points(args.moves, seed=k)
        ed = MaskEditor(base)
        t, t_end, t_undo = run_stroke(ed, pts, args.radius)
        assert not ed.mask.any()
        fast_moves += t
        fast_end.append(t_end)
        fast_undo.append(t_undo)
        t, _, t_undo = run_stroke(NaiveEditor(base), pts, args.radius)
        naive_moves += t
        naive_undo.append(t_undo)

    def ms(values, q):
        return 1000 * float(np.percentile(values, q))

    print(f"brush stroke on {W}x{H}: {args.moves} moves, radius {args.radius}, {args.rounds} rounds")
    print(f"  MaskEditor.stroke_to   median {ms(fast_moves, 50):7.3f} ms   p95 {ms(fast_moves, 95):7.3f} ms")
    print(f"  naive (full copy+draw) median {ms(naive_moves, 50):7.3f} ms   p95 {ms(naive_moves, 95):7.3f} ms")
    print(f"  speed-up per move: median {ms(naive_moves, 50) / ms(fast_moves, 50):.1f}x, p95 {ms(naive_moves, 95) / ms(fast_moves, 95):.1f}x")
    print(f"  end_stroke (build one undo step) median {ms(fast_end, 50):.3f} ms")
    print(f"  undo: MaskEditor {ms(fast_undo, 50):.3f} ms, naive {ms(naive_undo, 50):.3f} ms")
    ed = MaskEditor(base)
    run_stroke(ed, stroke_points(args.moves, 0), args.radius)
    ed.redo()
    print(f"  history held for the stroke: {ed.history_bytes / 2**20:.2f} MiB (naive: {args.moves * H * W / 2**20:.0f} MiB)")

    mask = blobby_mask()
    gj = mask_to_geojson(mask)
    n_poly = len(gj["features"][0]["geometry"]["coordinates"]) if gj["features"] else 0
    reps = 3
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "roi.geojson"
        t_exp, t_imp = [], []
        for _ in range(reps):
            t0 = time.perf_counter()
            export_geojson(path, mask, name="Tumor")
            t_exp.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            back = import_geojson(path, (H, W))
            t_imp.append(time.perf_counter() - t0)
        size = os.path.getsize(path)
    exact = bool((back == mask).all())
    print(f"GeoJSON on a {W}x{H} blobby mask ({n_poly} polygons, {(mask > 0).mean():.0%} RoI, {size / 1024:.0f} KiB):")
    print(f"  export {1000 * min(t_exp):.1f} ms, import {1000 * min(t_imp):.1f} ms, round trip exact: {exact}")
    print(json.dumps({
        "stroke_median_ms": ms(fast_moves, 50), "stroke_p95_ms": ms(fast_moves, 95),
        "naive_median_ms": ms(naive_moves, 50), "naive_p95_ms": ms(naive_moves, 95),
        "undo_ms": ms(fast_undo, 50), "geojson_export_ms": 1000 * min(t_exp), "geojson_import_ms": 1000 * min(t_imp),
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
