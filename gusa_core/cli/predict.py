"""``gusa predict``: classify images and folders with a trained run."""

from __future__ import annotations

import sys
from pathlib import Path

from tqdm import tqdm

from ..inference.outputs import format_prob, unique_stem, write_attention_png, write_predictions_csv
from .options import add_engine_options, json_line


def add_parser(sub) -> None:
    s = sub.add_parser("predict", help="classify images or folders with a trained run")
    s.add_argument("run", type=Path, help="run folder (ensemble of its folds) or one fold folder")
    s.add_argument("inputs", type=Path, nargs="+", metavar="INPUT", help="images or folders")
    s.add_argument("--csv", type=Path, default=None)
    s.add_argument("--attention-dir", type=Path, default=None, help="write attention overlays as PNGs here")
    s.add_argument("--json", action="store_true", help="print one JSON record per image")
    s.add_argument("--fold", type=int, default=None, help="use one fold instead of the ensemble")
    s.add_argument("--recursive", action="store_true", help="descend into sub-folders")
    s.add_argument("--device", default="auto")
    s.add_argument("--batch-size", type=int, default=4)
    add_engine_options(s)
    s.set_defaults(func=run)


def run(args) -> int:
    """``gusa predict``: classify images and folders; see ``gusa predict --help``.

    Prints a table (or one JSON object per line with ``--json``), writes
    ``--csv`` and attention overlays (``<stem>_attention.png`` in
    ``--attention-dir``). Files that cannot be read are listed as errors and
    do not stop the run.

    Returns
    -------
    int
        0 when at least one image was classified (or there was nothing to
        classify), 1 when every file failed.
    """
    # The library (and torch with it) is imported when the verb runs: ``gusa --help`` stays instant.
    from ..inference import Predictor, classify_paths, collect_images

    paths = collect_images(args.inputs, recursive=getattr(args, "recursive", False))
    predictor = Predictor.from_run(args.run, fold=getattr(args, "fold", None), device=getattr(args, "device", "auto"),
                                   backend=getattr(args, "backend", "auto"), precision=getattr(args, "precision", "auto"))
    att_dir = Path(args.attention_dir) if getattr(args, "attention_dir", None) else None
    names = predictor.class_names
    engine = predictor.engine_info.as_dict()
    as_json = bool(getattr(args, "json", False))
    if not as_json:
        width = max([len(str(p)) for p in paths] + [4])
        width = min(width, 60)
        print(f"{'path':<{width}}  {'predicted':<12}" + "".join(f" {c[:10]:>10}" for c in names) + "  roi")
    records: list[dict] = []
    used: set[str] = set()
    bar = tqdm(total=len(paths), unit="img", file=sys.stderr, disable=None, leave=False)
    try:
        for rec in classify_paths(predictor, paths, batch_size=getattr(args, "batch_size", 4), keep_images=att_dir is not None):
            image = rec.pop("image", None)
            pred = rec.pop("prediction", None)
            if att_dir is not None and pred is not None:
                write_attention_png(att_dir / f"{unique_stem(Path(rec['path']), used)}_attention.png", image, pred.attention)
            records.append(rec)
            bar.update(1)
            bar.set_postfix_str(f"{rec['images_per_s']:.2f} img/s")
            if as_json:
                out = {k: rec[k] for k in ("path", "predicted", "probs", "roi_fraction", "error")}
                out["attention_kind"] = predictor.attention_kind
                out["engine"] = engine
                print(json_line(out), flush=True)
            elif rec["error"]:
                tqdm.write(f"{_clip(rec['path'], width):<{width}}  ERROR: {rec['error']}", file=sys.stdout)
            else:
                probs = "".join(f" {format_prob(rec['probs'][c])[:10]:>10}" for c in names)
                tqdm.write(f"{_clip(rec['path'], width):<{width}}  {rec['predicted']:<12}{probs}  {rec['roi_fraction']:.3f}", file=sys.stdout)
    finally:
        bar.close()
    if getattr(args, "csv", None):
        write_predictions_csv(args.csv, records, names)
    errors = [r for r in records if r["error"]]
    n_ok = len(records) - len(errors)
    print(
        f"{n_ok} of {len(records)} images classified with {predictor.n_models} model(s) "
        f"({predictor.variant}, {engine['backend']} {engine['precision']}); {len(errors)} error(s)\n"
        f"  engine: {engine['reason']}",
        file=sys.stderr,
    )
    for r in errors:
        print(f"  {r['path']}: {r['error']}", file=sys.stderr)
    return 1 if records and n_ok == 0 else 0


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else "…" + text[-(width - 1):]
