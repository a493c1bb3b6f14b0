"""``gusa suggest``: the run's RoI map ỹ as suggested masks for the images that have none."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

#: Below this input size ỹ's stride-16 grid is too coarse for masks worth correcting (benchmarks/roi_quality.py).
MIN_SUGGEST_SIZE = (256, 192)


def add_parser(sub) -> None:
    s = sub.add_parser("suggest", help="suggest RoI masks from a run's attention map for images without a mask")
    s.add_argument("run", type=Path)
    s.add_argument("project", type=Path)
    s.add_argument("--tau", type=float, default=None,
                   help="threshold of the RoI map (default: the run's validated roi_tau, else 0.5)")
    s.add_argument("--accept-all", action="store_true",
                   help="save every suggestion as the image's mask (marked 'accepted' in the project)")
    s.add_argument("--stitch", action=argparse.BooleanOptionalAction, default=True,
                   help="RoI map at stride 8 from four shifted passes per fold: finer outlines at 4x the time "
                        "(default; on the demo at 256x192, 0.94 of suggestions reach IoU 0.7 instead of 0.75)")
    s.add_argument("--out", type=Path, default=None, help="write the suggested masks as PNGs into this folder")
    s.add_argument("--device", default="auto")
    s.add_argument("--backend", choices=("auto", "torch", "onnx"), default="auto")
    s.set_defaults(func=run)


def run(args) -> int:
    """``gusa suggest``: print one line per image; ``--accept-all`` saves, ``--out`` writes PNGs."""
    from ..assist import scan_project, suggester_key, suggestion
    from ..errors import GusaError
    from ..imageio import write_mask
    from ..project import Project
    from ..runs import model_folders, read_run_meta, stored_roi_tau

    project = Project.open(args.project)
    folders = model_folders(args.run)
    meta = read_run_meta(args.run) or read_run_meta(folders[0].parent) or {}
    size = meta.get("input_size")
    if size is not None and (size[0] < MIN_SUGGEST_SIZE[0] or size[1] < MIN_SUGGEST_SIZE[1]):
        print(f"warning: the run was trained at {size[0]}x{size[1]}; below {MIN_SUGGEST_SIZE[0]}x{MIN_SUGGEST_SIZE[1]} "
              "its RoI map is too coarse for good suggestions", file=sys.stderr)
    tau = args.tau if args.tau is not None else (stored_roi_tau(args.run) or 0.5)
    if not 0.0 < tau < 1.0:
        raise GusaError(f"--tau {tau} must lie strictly between 0 and 1")
    key = suggester_key(args.run)
    without = [r.id for r in project.images if not r.mask]
    ids = [i for i in without if not project.is_suggestion_rejected(i, key)]
    if len(ids) < len(without):
        print(f"{len(without) - len(ids)} image(s) skipped: their suggestion from this run ({key}) was rejected")
    if not ids:
        print("every image already has a mask or a rejected suggestion: nothing to suggest")
        return 0
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    print(f"{len(ids)} image(s) without a mask; {len(folders)} fold model(s); tau = {tau:.2f}")
    accepted = failed = 0
    bar = tqdm(total=len(ids), unit="img", file=sys.stderr, disable=None, leave=False)
    try:
        scan = scan_project(args.run, project, ids=ids, device=args.device, backend=args.backend, temperature=None,
                            stitch=args.stitch)
        for rec in scan:
            bar.update(1)
            if rec["error"]:
                failed += 1
                print(f"  {rec['id']}: error: {rec['error']}", file=sys.stderr)
                continue
            mask = suggestion(rec, tau=tau)
            if mask is None:
                raise GusaError(f"{args.run}: this variant has no RoI branch, so it cannot suggest masks")
            share = float((mask > 0).mean())
            print(f"  {rec['id']:<32} RoI {100 * share:5.1f} %")
            if args.out is not None:
                write_mask(args.out / f"{rec['id']}.png", mask)
            if args.accept_all and share > 0:
                project.save_mask(rec["id"], mask, source="accepted", save_manifest=False)
                accepted += 1
    finally:
        bar.close()
        if accepted:
            project.save()
    if args.accept_all:
        print(f"{accepted} suggestion(s) saved as masks (marked 'accepted'); empty ones skipped")
    return 1 if failed and failed == len(ids) else 0
