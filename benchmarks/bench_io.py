"""Speed of image reading, Reinhard normalisation and the down-sample cache.

Prints medians of interleaved rounds, with each figure's ratio against a
baseline measured in the same process:

- reading a 2048x1536 RGB TIFF: tifffile (what read_image uses) vs PIL;
- read_image on the real he_bach_size.tif (if ../shared/data is present);
- Reinhard transform of a 2048x1536 image: gusa_core.stain vs torchstain's
  numpy backend (same algorithm, its own LAB conversion);
- DownsampleCache.get: memory hit and disk hit vs miss (decode + resize + write).

Run: ``.venv/bin/python benchmarks/bench_io.py [--rounds N]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gusa_core.demo import generate_tissue  # noqa: E402
from gusa_core.imageio import DownsampleCache, read_image, resize_image  # noqa: E402
from gusa_core.stain import ReinhardNormalizer  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def _time(fn, rounds: int) -> float:
    fn()  # warm-up
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out) * 1000.0


def _interleaved(fns: dict, rounds: int) -> dict:
    times = {k: [] for k in fns}
    for fn in fns.values():
        fn()
    for _ in range(rounds):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) * 1000.0 for k, v in times.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args(argv)
    rows: list[tuple[str, float, str, float]] = []

    import tifffile
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        big, _ = generate_tissue("Invasive", size=(2048, 1536), rng=np.random.default_rng(0))
        tif = tmp / "big.tif"
        tifffile.imwrite(tif, big, photometric="rgb")

        def pil_read():
            with Image.open(tif) as im:
                return np.asarray(im.convert("RGB"))

        t = _interleaved({"tifffile": lambda: tifffile.imread(tif), "read_image": lambda: read_image(tif), "pil": pil_read}, args.rounds)
        rows.append(("tifffile.imread 2048x1536 TIFF", t["tifffile"], "PIL", t["pil"]))
        rows.append(("read_image 2048x1536 TIFF", t["read_image"], "PIL", t["pil"]))

        real = SHARED / "he_bach_size.tif"
        if real.is_file():
            t = _interleaved({"ours": lambda: read_image(real), "pil": lambda: np.asarray(Image.open(real).convert("RGB"))}, args.rounds)
            rows.append(("read_image he_bach_size.tif", t["ours"], "PIL", t["pil"]))
        svs = SHARED / "cmu_small_region.svs"
        if svs.is_file():
            ms = _time(lambda: read_image(svs), max(3, args.rounds // 2))
            rows.append(("read_image cmu_small_region.svs L0", ms, "-", float("nan")))

        image = read_image(real) if real.is_file() else big
        ref = ReinhardNormalizer.default()
        fns = {"ours": lambda: ref.transform(image)}
        try:
            import torchstain

            ts = torchstain.normalizers.ReinhardNormalizer(backend="numpy")
            ts.target_means = np.array([ref.mean[0] * 2.55, ref.mean[1] + 128, ref.mean[2] + 128])
            ts.target_stds = np.array([ref.std[0] * 2.55, ref.std[1], ref.std[2]])
            ts.fit(image)  # statistics only; keeps the comparison honest
            fns["torchstain"] = lambda: ts.normalize(image)
        except Exception as exc:  # pragma: no cover
            print(f"(torchstain unavailable: {exc})")
        t = _interleaved(fns, max(3, args.rounds // 2))
        rows.append(("Reinhard transform 2048x1536", t["ours"], "torchstain", t.get("torchstain", float("nan"))))

        src = tmp / "big.png"
        Image.fromarray(big).save(src, compress_level=1)
        size = (512, 384)
        miss = []
        for i in range(max(3, args.rounds // 2)):
            cache = DownsampleCache(tmp / f"cache{i}")
            t0 = time.perf_counter()
            cache.get(src, size)
            miss.append(time.perf_counter() - t0)
        miss_ms = statistics.median(miss) * 1000
        cache = DownsampleCache(tmp / "cache0")
        disk = []
        for _ in range(args.rounds):
            cache.clear()
            t0 = time.perf_counter()
            cache.get(src, size)
            disk.append(time.perf_counter() - t0)
        disk_ms = statistics.median(disk) * 1000
        mem_ms = _time(lambda: cache.get(src, size), args.rounds * 5)
        rows.append(("DownsampleCache disk hit (PNG 512x384)", disk_ms, "miss", miss_ms))
        rows.append(("DownsampleCache memory hit", mem_ms, "miss", miss_ms))
        rows.append(("resize_image 2048x1536 -> 512x384", _time(lambda: resize_image(big, size), args.rounds), "-", float("nan")))

        t0 = time.perf_counter()
        for label in ("Normal", "Benign", "InSitu", "Invasive"):
            for i in range(3):
                generate_tissue(label, size=(512, 384), rng=np.random.default_rng(i))
        gen_ms = (time.perf_counter() - t0) / 12 * 1000
        rows.append(("generate_tissue 512x384 (per image)", gen_ms, "-", float("nan")))

    print(f"{'what':42s} {'ms':>9s}   {'baseline':12s} {'ms':>9s} {'speed-up':>9s}")
    for name, ms, base, base_ms in rows:
        ratio = base_ms / ms if base_ms == base_ms else float("nan")
        b = f"{base_ms:9.2f}" if base_ms == base_ms else f"{'':9s}"
        r = f"{ratio:8.2f}x" if ratio == ratio else ""
        print(f"{name:42s} {ms:9.2f}   {base:12s} {b} {r:>9s}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
