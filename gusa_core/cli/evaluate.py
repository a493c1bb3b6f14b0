"""``gusa evaluate``: accuracy, ROC AUC, confusion matrix and RoI IoU of a run on a labelled project."""

from __future__ import annotations

import sys
from pathlib import Path

from tqdm import tqdm

from ..atomic import atomic_write_text
from .options import strict_json


def add_parser(sub) -> None:
    s = sub.add_parser("evaluate", help="accuracy, ROC AUC, confusion matrix and RoI IoU on a labelled project")
    s.add_argument("run", type=Path)
    s.add_argument("project", type=Path)
    s.add_argument("--json", type=Path, default=None, help="write the metrics as JSON")
    s.add_argument("--html", type=Path, default=None, help="write a self-contained HTML report")
    s.add_argument("--fold", type=int, default=None)
    s.add_argument("--validation", action="store_true", help="score each fold on its own validation images only")
    s.add_argument("--device", default="auto")
    s.add_argument("--backend", choices=("auto", "openvino", "onnxruntime", "torch", "onnx"), default="auto")
    s.set_defaults(func=run)


def run(args) -> int:
    """``gusa evaluate``: print the metrics, optionally write ``--json`` and ``--html``."""
    # The library (and torch with it) is imported when the verb runs: ``gusa --help`` stays instant.
    from ..evaluation import evaluate_run, format_result
    from ..evaluation.report import write_html_report

    bar = tqdm(unit="img", file=sys.stderr, disable=None, leave=False)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        result = evaluate_run(
            args.run, args.project, fold=args.fold, validation=bool(args.validation), device=args.device,
            backend=getattr(args, "backend", "auto"), progress=progress,
        )
    finally:
        bar.close()
    print(format_result(result))
    for err in result["errors"]:
        print(f"  error: {err['path']}: {err['error']}", file=sys.stderr)
    if getattr(args, "json", None):
        atomic_write_text(args.json, strict_json(result, indent=2) + "\n")
        print(f"metrics written to {args.json}", file=sys.stderr)
    if getattr(args, "html", None):
        info = {
            "run": str(Path(args.run).resolve()),
            "project": str(Path(args.project).resolve()),
            "variant": result.get("variant"),
            "protocol": result.get("protocol"),
            "models": result.get("n_models"),
            "attention": result.get("attention_kind"),
        }
        from ..errors import GusaError
        from ..project import Project

        try:  # the ROC curves in the colours the app shows the classes in
            colors = Project.open(args.project).class_colors
        except (GusaError, OSError):  # the report is still useful in matplotlib's colours
            colors = None
        write_html_report(args.html, result, title=f"GuSA evaluation: {Path(args.run).name}", run_info=info,
                          class_colors=colors)
        print(f"report written to {args.html}", file=sys.stderr)
    return 0
