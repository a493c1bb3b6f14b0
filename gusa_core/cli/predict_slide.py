"""``gusa predict-slide``: class and attention heatmaps over whole slides, one or a cohort.

Under ``torchrun --nproc_per_node N`` (one or several nodes) each process sweeps
``slides[rank::world]``; after a barrier rank 0 writes the cohort table from every slide's
folder, so the table is the same as one process's and a resumed run rebuilds it whole.

The barrier is gloo's ``monitored_barrier``: a rank that died is noticed at once (its
connections close), one that hangs after ``--rank-timeout`` seconds. Then the survivors exit
with status 3 naming the missing rank, and rank 0 still writes the cohort table, listing the
slides the missing rank did not finish as ``not done``; rerunning the command finishes them.
On one node torchrun itself stops the other ranks (SIGTERM) when one fails: rank 0 then still
writes the table before it exits.
"""

from __future__ import annotations

import datetime
import re
import signal
import sys
import threading
from pathlib import Path

from tqdm import tqdm

from .options import add_engine_options

#: Exit status when a rank of a distributed sweep went missing.
EXIT_RANK_LOST = 3


def add_parser(sub) -> None:
    s = sub.add_parser("predict-slide", help="heatmaps, fields and summaries of whole slides with a trained run")
    s.add_argument("run", type=Path, help="run folder (ensemble of its folds) or one fold folder")
    s.add_argument("slides", type=Path, nargs="+", metavar="SLIDE_OR_FOLDER", help="slides, or folders of slides")
    s.add_argument("--out", type=Path, required=True, help="output folder (one sub-folder per slide, cohort.csv)")
    s.add_argument("--overlap", type=float, default=0.5, help="share of a field its neighbour overlaps (default 0.5)")
    s.add_argument("--min-tissue", type=float, default=0.25, help="least tissue share of a classified field (default 0.25)")
    s.add_argument("--heatmap-mpp", type=float, default=None,
                   help="µm per heatmap pixel (default: 16 pixels across a field)")
    s.add_argument("--field-mpp", type=float, default=None, help="override the run's field pixel size (µm/px)")
    s.add_argument("--field-size", default=None, metavar="WxH", help="override the run's field size in its pixels")
    s.add_argument("--batch-size", type=int, default=8)
    s.add_argument("--readers", type=int, default=2, help="threads reading fields ahead of the network")
    s.add_argument("--colormap", default="viridis", help="of the PNG class heatmaps (attention uses jet)")
    s.add_argument("--no-tiff", action="store_true", help="skip the pyramidal TIFF heatmaps")
    s.add_argument("--redo", action="store_true", help="sweep slides that are already done")
    s.add_argument("--rank-timeout", type=float, default=7200.0, metavar="SECONDS",
                   help="under torchrun: how long a rank that has finished waits for the others before it "
                        "declares a silent one lost (default 7200; a rank that dies is noticed at once)")
    s.add_argument("--fold", type=int, default=None, help="use one fold instead of the ensemble")
    s.add_argument("--device", default="auto")
    add_engine_options(s)
    s.set_defaults(func=run)


def run(args) -> int:
    """Sweep the slides; print one line per slide; return 0 unless every slide failed."""
    from ..device import setup_distributed
    from ..errors import GusaError
    from ..inference import Predictor
    from ..inference.slide import FieldSettings, SlideOptions, field_settings
    from ..inference.slide_cohort import collect_slides, merge_cohort, sweep_settings
    if not 0.0 <= args.overlap < 1.0:
        raise GusaError(f"--overlap must be in [0, 1), got {args.overlap}")
    if not 0.0 <= args.min_tissue <= 1.0:
        raise GusaError(f"--min-tissue must be in [0, 1], got {args.min_tissue}")
    slides = collect_slides(args.slides)
    if not slides:
        raise GusaError("no slides found in " + ", ".join(str(s) for s in args.slides))
    if args.rank_timeout <= 0:
        raise GusaError(f"--rank-timeout must be positive, got {args.rank_timeout}")
    # joining is bounded too, but never so tightly that a slow start looks like a lost rank
    ctx = setup_distributed(args.device, timeout=max(args.rank_timeout, 300.0))
    previous = None
    if ctx.world_size > 1 and threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        group = _gloo_group(ctx, args.rank_timeout)
        predictor = Predictor.from_run(args.run, fold=args.fold, device=ctx.device, backend=args.backend,
                                       precision=args.precision)
        settings = field_settings(predictor.metas)
        if args.field_mpp or args.field_size:
            size = _parse_field_size(args.field_size) if args.field_size else settings.size
            settings = FieldSettings(tuple(size), float(args.field_mpp or settings.mpp), "option")
        options = SlideOptions(overlap=args.overlap, min_tissue=args.min_tissue, heatmap_mpp=args.heatmap_mpp,
                               batch_size=max(1, args.batch_size), readers=max(1, args.readers))
        tag = f"[rank {ctx.rank}/{ctx.world_size}] " if ctx.world_size > 1 else ""
        if ctx.rank == 0:
            print(f"{len(slides)} slide(s); {settings.describe()}; overlap {options.overlap:g}; "
                  f"{predictor.n_models} model(s), {predictor.attention_kind} attention", flush=True)
        stopped = False
        try:
            done, failed = _sweep(predictor, slides, args, options, settings, ctx, tag)
            missing = _wait_for_ranks(ctx, group, args.rank_timeout, tag) if ctx.world_size > 1 else []
        except _Stopped:
            stopped, done, failed, missing = True, 0, 0, list(range(ctx.world_size))
            print(f"gusa: {tag}stopped by the launcher (torchrun stops every rank when one of them fails)",
                  file=sys.stderr, flush=True)
        if previous is not None:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a stop from here on would lose the cohort table
        if ctx.rank == 0:
            sweep = sweep_settings(predictor, options, settings, tiff=not args.no_tiff, colormap=args.colormap)
            reason = "the sweep was stopped before it (a rank failed); rerun to finish it" if stopped else None
            path, counts = merge_cohort(slides, args.out, predictor.class_names, sweep=sweep, world=ctx.world_size,
                                        missing_ranks=missing, missing_reason=reason)
            parts = [f"{counts['done']} done", f"{counts['failed']} failed", f"{counts['pending']} not done"]
            if counts["stale"]:
                parts.append(f"{counts['stale']} swept with other settings")
            print(f"cohort: {', '.join(parts)} -> {path}", flush=True)
            if missing:
                return EXIT_RANK_LOST
            return 1 if counts["failed"] and not counts["done"] else 0
        if missing:
            return EXIT_RANK_LOST
        return 1 if failed and not done else 0
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        ctx.cleanup()


class _Stopped(BaseException):
    """SIGTERM from the launcher: not a slide's failure, so it passes the per-slide handler (like KeyboardInterrupt)."""


def _on_sigterm(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: the cohort table is being written
    raise _Stopped()


def _sweep(predictor, slides, args, options, settings, ctx, tag) -> tuple[int, int]:
    """Sweep this rank's share, one line per slide; return (done, failed)."""
    from ..inference.slide_cohort import iter_cohort

    failed = done = 0
    bar = None
    try:
        for rec in iter_cohort(predictor, slides, args.out, options=options, settings=settings, rank=ctx.rank,
                               world=ctx.world_size, redo=args.redo, tiff=not args.no_tiff, colormap=args.colormap):
            stage, name = rec["stage"], Path(rec["path"]).name
            head = f"{tag}[{rec['index'] + 1}/{rec['slides']}] {name}"
            if stage == "tissue":
                bar = tqdm(total=rec["fields"], unit="field", file=sys.stderr, disable=None, leave=False, desc=name)
            elif stage == "fields" and bar is not None:
                bar.n = rec["done"]
                bar.set_postfix_str(f"{rec['fields_per_s']:.1f} fields/s")
                bar.refresh()
            elif stage == "redo":
                tqdm.write(f"{head}: swept before with other settings ({'; '.join(rec['changes'])}): redoing",
                           file=sys.stdout)
            elif stage in ("done", "failed", "skipped"):
                if bar is not None:
                    bar.close()
                    bar = None
                if stage == "done":
                    done += 1
                    s = rec["summary"]
                    tqdm.write(f"{head}: {s['fields']} fields, {s['tissue_mm2']:.2f} mm² tissue, "
                               f"predicted {s['predicted'] or '-'} ({s['seconds']:.1f} s)", file=sys.stdout)
                elif stage == "failed":
                    failed += 1
                    tqdm.write(f"{head}: FAILED: {rec['error']}", file=sys.stdout)
                else:
                    tqdm.write(f"{head}: already done, skipped", file=sys.stdout)
    finally:
        if bar is not None:
            bar.close()
    return done, failed


def _gloo_group(ctx, timeout: float):
    """A gloo group for the final monitored barrier (NCCL has none); None: the default group is gloo."""
    if ctx.world_size <= 1:
        return None
    import torch.distributed as dist

    if dist.get_backend() == "gloo":
        return None
    return dist.new_group(backend="gloo", timeout=datetime.timedelta(seconds=timeout))


def _wait_for_ranks(ctx, group, timeout: float, tag: str) -> list[int]:
    """Wait for every rank to finish its share; return the ranks that died or stayed silent past ``timeout``."""
    import torch.distributed as dist

    try:
        dist.monitored_barrier(group=group, timeout=datetime.timedelta(seconds=timeout), wait_all_ranks=True)
        return []
    except RuntimeError as exc:
        text = str(exc)
    found = re.search(r"Ranks? ([\d,\s]+) failed to pass monitoredBarrier", text)
    if found:
        missing = sorted({int(v) for v in re.findall(r"\d+", found.group(1))})
    elif ctx.rank != 0:
        missing = [0]  # a rank other than 0 only hears from rank 0
    else:
        missing = [r for r in range(1, ctx.world_size)]
    names = ", ".join(str(r) for r in missing)
    plural = "s" if len(missing) > 1 else ""
    if ctx.rank == 0:
        print(f"gusa: {tag}rank{plural} {names} did not finish the sweep (died, or silent for {timeout:g} s); "
              "the cohort table lists its unfinished slides as not done: run the same command again to finish them",
              file=sys.stderr, flush=True)
    else:
        print(f"gusa: {tag}rank{plural} {names} did not finish the sweep (died, or silent for {timeout:g} s); "
              "rank 0 writes the cohort table, so it may be missing: run the same command again to finish it",
              file=sys.stderr, flush=True)
    return missing


def _parse_field_size(text: str) -> tuple[int, int]:
    from ..errors import GusaError

    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise GusaError(f"--field-size: expected WxH such as 2048x1536, got {text!r}") from None
    if w <= 0 or h <= 0:
        raise GusaError(f"--field-size must be positive, got {text!r}")
    return w, h
