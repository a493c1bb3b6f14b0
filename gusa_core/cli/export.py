"""``gusa export``: export a trained model to ONNX."""

from __future__ import annotations

from pathlib import Path


def add_parser(sub) -> None:
    s = sub.add_parser("export", help="export a trained model to ONNX (logits + RoI map)")
    s.add_argument("run", type=Path)
    s.add_argument("--onnx", type=Path, required=True)
    s.add_argument("--fold", type=int, default=0)
    s.set_defaults(func=run)


def run(args) -> int:
    from ..inference.export import export_onnx

    path = export_onnx(args.run, args.onnx, fold=args.fold)
    print(f"ONNX model written to {path}")
    return 0
