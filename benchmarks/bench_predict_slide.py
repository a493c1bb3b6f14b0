"""Slide inference: field throughput of the sweep against the predictor alone, peak memory, whole-slide time.

Writes JPEG-tiled pyramidal TIFFs of tissue-like blobs at 0.25 µm/px (40,000 x 30,000, and
20,000 x 15,000 for the memory check) with the test fixtures and a random-weight ``fa-gusa`` run
(one fold), then measures in one process:

- baseline: the predictor's own throughput on prepared tensors (fields read and pre-processed
  beforehand, only ``predict_prepared`` timed), in fields per second;
- the sweep (:func:`gusa_core.inference.slide.iter_predict_slide`): fields per second from the
  first field to the last, reading, pre-processing and the network overlapping;
- the ratio sweep / baseline (target >= 0.85), and the whole-slide time (thumbnail, tissue,
  fields, blending).

Peak RSS is measured in a fresh child process per slide size (``ru_maxrss``), sweeping the slide
and writing its outputs: it should stay under 2 GB and not grow with the slide.

The input size defaults to 128x96 (not the 512x384 of the paper's runs) so a run on a shared
two-core machine takes a minute or two; pass ``--input 512x384`` for the full size.

Run: ``python benchmarks/bench_predict_slide.py [--input 128x96] [--batch 8] [--readers 2]``
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from gusa_core.engines import cpu_info  # noqa: E402
from gusa_core.inference import Predictor  # noqa: E402
from gusa_core.inference.slide import SlideOptions, iter_predict_slide  # noqa: E402
from gusa_core.inference.slide_outputs import write_slide_outputs  # noqa: E402
from gusa_core.runs import write_untrained_run  # noqa: E402
from slide_fixtures import TissuePainter, write_pyramid_tiff  # noqa: E402

SIZES = {"big": (40_000, 30_000), "half": (20_000, 15_000)}


def make_slide(folder: Path, name: str) -> Path:
    w, h = SIZES[name]
    path = folder / f"{name}.tif"
    if not path.exists():
        # same blob layout at both sizes: the tissue share (and so fields per area) match
        write_pyramid_tiff(path, w, h, painter=TissuePainter(w, h, seed=3, n_blobs=6, size=0.1), mpp=0.25)
    return path


def sweep(predictor, path, options):
    t0 = time.perf_counter()
    t_first = result = None
    for rec in iter_predict_slide(predictor, path, options=options):
        if rec["stage"] == "tissue":
            t_first = time.perf_counter()
        elif rec["stage"] == "done":
            result = rec["result"]
    t_end = time.perf_counter()
    return result, t_end - t_first, t_end - t0


def child(args) -> None:
    """Sweep one slide and write its outputs; print peak RSS as JSON."""
    predictor = Predictor.from_run(args.run, device="cpu")
    options = SlideOptions(batch_size=args.batch, readers=args.readers)
    result, _, total = sweep(predictor, Path(args.child), options)
    write_slide_outputs(result, Path(args.child).with_suffix(".out"))
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"fields": len(result.fields), "seconds": total, "peak_rss_mb": rss_mb,
                      "heatmap": list(result.probs.shape)}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--input", default="128x96", help="network input WxH (default 128x96)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--readers", type=int, default=2)
    p.add_argument("--baseline-fields", type=int, default=48)
    p.add_argument("--workdir", default=None, help="keep the slides here (re-used between runs)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--run", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)
    iw, ih = (int(v) for v in args.input.lower().split("x"))
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_predict_slide_"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"CPU: {cpu_info().model}; input {iw}x{ih}; batch {args.batch}; readers {args.readers}; work {work}")
    t = time.perf_counter()
    slides = {name: make_slide(work, name) for name in SIZES}
    print(f"slides written in {time.perf_counter() - t:.1f} s")
    run_dir = work / f"run-{iw}x{ih}"
    if not run_dir.exists():
        write_untrained_run(run_dir, variant="fa-gusa", class_names=["Normal", "Benign", "InSitu", "Invasive"],
                            input_size=(iw, ih), folds=1)
    predictor = Predictor.from_run(run_dir, device="cpu")
    print(f"backend {predictor.backend}, {predictor.attention_kind} attention")

    # baseline: the network alone on prepared fields of the big slide
    from gusa_core.slides import open_slide

    options = SlideOptions(batch_size=args.batch, readers=args.readers)
    with open_slide(slides["big"]) as s:
        fw, fh = 2048 * 0.42 / 0.25, 1536 * 0.42 / 0.25
        boxes = [(12_000 + (i % 6) * fw / 2, 12_000 + (i // 6) * fh / 2, fw, fh) for i in range(args.baseline_fields)]
        prepared = [predictor.prepare(s.read_field(b, (iw, ih))) for b in boxes]
    predictor.predict_prepared(prepared[: args.batch])  # warm-up
    t = time.perf_counter()
    for i in range(0, len(prepared), args.batch):
        predictor.predict_prepared(prepared[i : i + args.batch])
    base = len(prepared) / (time.perf_counter() - t)
    print(f"predictor on prepared tensors: {base:.1f} fields/s")

    result, t_fields, t_total = sweep(predictor, slides["big"], options)
    rate = len(result.fields) / t_fields
    print(f"predict-slide 40000x30000: {len(result.fields)} tissue fields, {rate:.1f} fields/s, "
          f"ratio {rate / base:.2f} (target >= 0.85); whole slide {t_total:.1f} s "
          f"(fields {t_fields:.1f} s), heatmap {result.probs.shape[2]}x{result.probs.shape[1]}")

    for name in ("half", "big"):
        out = subprocess.run([sys.executable, __file__, "--child", str(slides[name]), "--run", str(run_dir),
                              "--batch", str(args.batch), "--readers", str(args.readers)],
                             capture_output=True, text=True, check=True)
        rec = json.loads(out.stdout.strip().splitlines()[-1])
        w, h = SIZES[name]
        print(f"child {w}x{h}: {rec['fields']} fields in {rec['seconds']:.1f} s, peak RSS {rec['peak_rss_mb']:.0f} MB "
              f"(target <= 2048 MB, same for both sizes)")


if __name__ == "__main__":
    main()
