"""The ``gusa`` command line.

Each verb parses its options here and calls one function of the library; heavy
modules (torch) are imported inside the handlers so ``gusa --help`` is instant.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import DEFAULT_INPUT_SIZE, __version__
from .errors import GusaError

__all__ = ["main", "parse_size"]


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``WxH`` (e.g. ``512x384``) into ``(width, height)``; both divisible by 16."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH such as 512x384, got {text!r}") from None
    if w <= 0 or h <= 0 or w % 16 or h % 16:
        raise argparse.ArgumentTypeError(f"input size {text} must be positive and divisible by 16 (stride of bp)")
    return w, h


def parse_image_size(text: str) -> tuple[int, int]:
    """Parse ``WxH`` into ``(width, height)``, any positive size."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH such as 512x384, got {text!r}") from None
    if w < 16 or h < 16:
        raise argparse.ArgumentTypeError(f"image size {text} is too small (at least 16x16)")
    return w, h



# --------------------------------------------------------------------- verbs
def _cmd_demo(args) -> int:
    from .demo import write_demo_project

    project = write_demo_project(args.dir, seed=args.seed, per_class=args.per_class, size=args.size)
    print(f"demo project written to {project.folder} ({len(project.images)} images)")
    return 0


def _cmd_init(args) -> int:
    from .project import Project

    project = Project.from_folder(args.dir, args.images, masks=args.masks)
    n_lab = sum(1 for r in project.images if r.label is not None)
    n_mask = sum(1 for r in project.images if r.mask is not None)
    print(f"project {project.folder}: {len(project.images)} images, {n_lab} labelled, {n_mask} with RoI masks")
    return 0


def _cmd_info(args) -> int:
    from .models import info_dict

    info = info_dict(args.variant, input_size=args.input_size)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            print(f"{key:>26}: {value}")
    return 0


def _cmd_train(args) -> int:
    from .training import train_from_cli

    return train_from_cli(args)


def _cmd_predict(args) -> int:
    from .predict_io import predict_from_cli

    return predict_from_cli(args)


def _cmd_evaluate(args) -> int:
    from .evaluation import evaluate_from_cli

    return evaluate_from_cli(args)


def _cmd_export(args) -> int:
    from .export import export_onnx

    path = export_onnx(args.run, args.onnx, fold=args.fold)
    print(f"ONNX model written to {path}")
    return 0


# -------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    from .models_registry import DEFAULT_VARIANT, VARIANT_NAMES

    p = argparse.ArgumentParser(prog="gusa", description="GuSA Studio command line: guided soft attention for H&E histopathology.")
    p.add_argument("--version", action="version", version=f"gusa {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    s = sub.add_parser("demo", help="write the built-in demo project")
    s.add_argument("dir", type=Path, help="folder to create")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--per-class", type=int, default=10, help="labelled images per class")
    s.add_argument("--size", type=parse_image_size, default=(512, 384), metavar="WxH", help="image size")
    s.set_defaults(func=_cmd_demo)

    s = sub.add_parser("init", help="create a project from a folder of images (BACH layout understood)")
    s.add_argument("dir", type=Path, help="project folder to create")
    s.add_argument("--images", type=Path, required=True, help="image folder (BACH Photos/ or a flat folder)")
    s.add_argument("--masks", type=Path, default=None, help="folder of masks named after the image stems")
    s.set_defaults(func=_cmd_init)

    s = sub.add_parser("info", help="describe a model variant: parameter counts against the paper's Table I")
    s.add_argument("--variant", choices=VARIANT_NAMES, default=DEFAULT_VARIANT)
    s.add_argument("--input-size", type=parse_size, default=DEFAULT_INPUT_SIZE, metavar="WxH")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=_cmd_info)

    s = sub.add_parser("train", help="train a model (k-fold by default) on a project")
    s.add_argument("project", type=Path)
    s.add_argument("--out", type=Path, required=True, help="run folder to write")
    s.add_argument("--variant", choices=VARIANT_NAMES, default=DEFAULT_VARIANT)
    s.add_argument("--folds", type=int, default=4, help="stratified folds (1 = fixed validation split)")
    s.add_argument("--val-fraction", type=float, default=0.25, help="validation share when --folds 1")
    s.add_argument("--epochs", type=int, default=30)
    s.add_argument("--batch-size", type=int, default=5)
    s.add_argument("--lr", type=float, default=5e-5)
    s.add_argument("--weight-decay", type=float, default=1e-5)
    s.add_argument("--dice-weight", type=float, default=1.0, help="lambda of eq. 8")
    s.add_argument("--input-size", type=parse_size, default=DEFAULT_INPUT_SIZE, metavar="WxH")
    s.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    s.add_argument("--pretrained", default="auto", help="auto (TORCH_HOME cache), none, or a weights FILE")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--workers", type=int, default=None, help="data loader workers")
    s.add_argument("--no-augment", action="store_true")
    s.add_argument("--resume", action="store_true", help="continue a stopped or crashed run in --out")
    s.set_defaults(func=_cmd_train)

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
    s.add_argument("--backend", choices=("auto", "torch", "onnx"), default="auto",
                   help="auto: onnxruntime on the CPU, torch on a GPU")
    s.set_defaults(func=_cmd_predict)

    s = sub.add_parser("evaluate", help="accuracy, ROC AUC, confusion matrix and RoI IoU on a labelled project")
    s.add_argument("run", type=Path)
    s.add_argument("project", type=Path)
    s.add_argument("--json", type=Path, default=None, help="write the metrics as JSON")
    s.add_argument("--html", type=Path, default=None, help="write a self-contained HTML report")
    s.add_argument("--fold", type=int, default=None)
    s.add_argument("--validation", action="store_true", help="score each fold on its own validation images only")
    s.add_argument("--device", default="auto")
    s.add_argument("--backend", choices=("auto", "torch", "onnx"), default="auto")
    s.set_defaults(func=_cmd_evaluate)

    s = sub.add_parser("export", help="export a trained model to ONNX (logits + RoI map)")
    s.add_argument("run", type=Path)
    s.add_argument("--onnx", type=Path, required=True)
    s.add_argument("--fold", type=int, default=0)
    s.set_defaults(func=_cmd_export)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except GusaError as exc:
        print(f"gusa: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gusa: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
