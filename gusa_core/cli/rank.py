"""``gusa rank``: the annotation queue, what the run's models least know first."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

from tqdm import tqdm

_PARTS = ("entropy", "disagreement", "roi_uncertainty", "label_disagreement")


def add_parser(sub) -> None:
    s = sub.add_parser("rank", help="rank images by what the model least knows: what to annotate next")
    s.add_argument("run", type=Path)
    s.add_argument("project", type=Path)
    s.add_argument("--csv", nargs="?", const="-", default=None, metavar="FILE",
                   help="write the queue as CSV (to FILE, or to standard output without one)")
    s.add_argument("--by-score", action="store_true",
                   help="order by uncertainty alone, not in turns from each predicted class (the default)")
    s.add_argument("--device", default="auto")
    s.add_argument("--backend", choices=("auto", "torch", "onnx"), default="auto")
    s.set_defaults(func=run)


def queue_csv_text(items) -> str:
    """The queue as CSV: rank, id, score, reason, each part of the score, then the predicted class."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["rank", "id", "score", "reason", *_PARTS, "predicted"])
    for i, it in enumerate(items, 1):
        w.writerow([i, it.id, f"{it.score:.6f}", it.reason, *(f"{it.parts.get(k, 0.0):.6f}" for k in _PARTS),
                    it.predicted or ""])
    return buf.getvalue()


def run(args) -> int:
    """``gusa rank``: print the queue (or write it as CSV)."""
    from ..assist import annotation_queue, scan_project
    from ..atomic import atomic_write_text
    from ..project import Project
    from ..runs import stored_temperature

    project = Project.open(args.project)
    records = []
    bar = tqdm(total=len(project.images), unit="img", file=sys.stderr, disable=None, leave=False)
    try:
        for rec in scan_project(args.run, project, device=args.device, backend=args.backend,
                                temperature=stored_temperature(args.run)):
            bar.update(1)
            if rec["error"]:
                print(f"  {rec['id']}: error: {rec['error']}", file=sys.stderr)
            records.append(rec)
    finally:
        bar.close()
    items = annotation_queue(records, project, spread=not getattr(args, "by_score", False))
    if args.csv is not None:
        text = queue_csv_text(items)
        if args.csv == "-":
            sys.stdout.write(text)
        else:
            atomic_write_text(Path(args.csv), text)
            print(f"{len(items)} queued image(s) written to {args.csv}", file=sys.stderr)
        return 0
    if not items:
        print("nothing to annotate: every image is labelled, masked and agrees with the model")
        return 0
    print(f"{'rank':>4}  {'id':<32} {'score':>6}  reason")
    for i, it in enumerate(items, 1):
        print(f"{i:>4}  {it.id:<32} {it.score:6.3f}  {it.reason}")
    return 0
