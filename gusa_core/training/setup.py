"""Setting up a training run: settings checks, splits, colour reference and ``run.json``.

Used by :class:`~.trainer.Trainer`; the folds themselves are trained
by :class:`~.fold_trainer.FoldTrainer`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ..data import SUGGESTED_MASKS
from ..errors import CheckpointError, GusaError
from ..imageio import DownsampleCache, read_image
from ..models_registry import VARIANT_NAMES
from ..runs import Run, RunState, new_run_meta, run_json_path
from ..stain import ReinhardNormalizer
from .fold_trainer import BEST_BY
from ..project.slides import field_samples, is_slide, project_fields, slide_ids
from .precision import choose_train_precision
from .splits import make_folds

__all__ = ["prepare", "CPU_CHANNELS_LAST", "CPU_MEMORY_EFFICIENT"]

#: CPU defaults chosen with benchmarks/bench_train.py (see its output in the report).
#: Gradient checkpointing of the dense layers: peak RSS at batch 5, 512x384 falls
#: from ~4.2 GB to ~2.8 GB (PERF.md's limit is 3 GB), for the price of recomputing
#: each dense layer's BN-ReLU-Conv1x1 bottleneck in the backward pass.
CPU_MEMORY_EFFICIENT = True
#: Channels-last on the CPU: with checkpointing it wins back the recomputation
#: (interleaved in one process: ~1.09x plain fp32 eager, peak 2.7 GB).
CPU_CHANNELS_LAST = True


class _Prepared:
    """Everything the folds share: project, device, splits, normaliser, cache."""


def _normalizer(project, config, stored: dict | None, cb):
    """The Reinhard normaliser of the run (the stored one when resuming), or None."""
    if not config.color_normalize:
        return None
    if stored:
        return ReinhardNormalizer.from_dict(stored)
    ref = getattr(project, "reinhard_reference", None)
    if ref:
        try:
            if isinstance(ref, dict):
                return ReinhardNormalizer.from_dict(ref)
            path = Path(project.folder) / ref
            if path.suffix.lower() == ".json" and path.is_file():
                return ReinhardNormalizer.from_dict(json.loads(path.read_text(encoding="utf-8")))
            ids = {r.id for r in project.images}
            image = read_image(project.image_path(ref) if ref in ids else path)
            norm = ReinhardNormalizer().fit(image)
            norm.source = str(ref)
            return norm
        except (GusaError, ValueError, OSError) as exc:
            cb.on_log(f"colour reference {ref!r} unusable ({exc}); using the shipped default")
    return ReinhardNormalizer.default()


def _fields(project, cfg):
    return project_fields(project, field_size=tuple(cfg.field_size), field_mpp=cfg.field_mpp, stride=cfg.field_stride,
                          min_cover=cfg.field_min_cover, max_per_class=cfg.fields_per_class)


def prepare(trainer, dist, cb) -> _Prepared:
    """Check the settings, split the labelled images, open or create ``run.json``."""
    cfg = trainer.config
    if cfg.variant not in VARIANT_NAMES:
        raise GusaError(f"unknown variant {cfg.variant!r} (known: {', '.join(VARIANT_NAMES)})")
    w, h = (int(v) for v in cfg.input_size)
    if w <= 0 or h <= 0 or w % 16 or h % 16:
        raise GusaError(f"input size {w}x{h} must be positive and divisible by 16")
    if cfg.epochs < 1 or cfg.batch_size < 1:
        raise GusaError("epochs and batch size must be at least 1")
    if cfg.suggested_masks not in SUGGESTED_MASKS:
        raise GusaError(f"suggested masks: {cfg.suggested_masks!r} is not one of {', '.join(SUGGESTED_MASKS)}")
    if not 0.0 <= float(cfg.suggested_weight) <= 1.0:
        raise GusaError(f"suggested mask weight {cfg.suggested_weight} must lie in [0, 1]")
    cfg.input_size = (w, h)
    project = trainer.project
    prep = _Prepared()
    prep.project, prep.config, prep.device = project, cfg, dist.device
    prep.run_dir = trainer.out_dir
    cpu = dist.device.type == "cpu"
    if not cpu:
        torch.backends.cudnn.benchmark = True
    gpu_bf16 = dist.device.type == "cuda" and torch.cuda.get_device_capability(dist.device)[0] >= 8
    prep.precision, prep.precision_reason = choose_train_precision(cfg.precision, dist.device.type, gpu_bf16=gpu_bf16)
    prep.amp = prep.precision == "fp16"  # CUDA: fp16 autocast with a gradient scaler
    prep.autocast_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(prep.precision)
    prep.channels_last = cfg.channels_last if cfg.channels_last is not None else (not cpu or CPU_CHANNELS_LAST)
    prep.memory_efficient = cfg.memory_efficient if cfg.memory_efficient is not None else (cpu and CPU_MEMORY_EFFICIENT)
    if cfg.workers is not None:
        prep.workers = max(0, int(cfg.workers))
    else:  # the CPU spends ~1 s per image in the network and ~15 ms loading it: no worker needed
        prep.workers = 0 if cpu else min(4, max(0, (os.cpu_count() or 1) - 1))
    prep.classes = list(project.classes)

    run_file = run_json_path(prep.run_dir)
    stored = None
    if run_file.is_file():
        if not trainer.resume:
            raise GusaError(f"run folder {prep.run_dir} already holds a run: choose another --out or pass --resume")
        stored = Run(prep.run_dir).meta
        for key, now in (("variant", cfg.variant), ("class_names", prep.classes), ("input_size", [w, h])):
            if stored.get(key) != now:
                raise CheckpointError(run_file, f"cannot resume: {key} was {stored.get(key)!r}, now {now!r}")
    elif trainer.resume:
        cb.on_log(f"nothing to resume in {prep.run_dir}: starting a new run")

    messages: list[str] = []
    if stored and stored.get("splits"):
        splits = [(list(s["train"]), list(s["val"])) for s in stored["splits"]]
        messages = list(stored.get("messages", []))
    else:
        records = [r for r in project.images if r.label is not None and not is_slide(r)]
        unknown = [r.id for r in records if r.label not in prep.classes]
        if unknown:
            messages.append(f"{len(unknown)} image(s) have a label that is not a class and are skipped: {', '.join(unknown[:5])}")
        records = [r for r in records if r.label in prep.classes]
        n_slides = len(slide_ids(project))
        skipped = len(project.images) - len(records) - len(unknown) - n_slides
        if skipped:
            messages.append(f"{skipped} unlabelled image(s) skipped")
        labels = [prep.classes.index(r.label) for r in records]
        ids = [r.id for r in records]
        groups = list(ids)
        for f in _fields(project, cfg):
            ids.append(f.id)
            labels.append(f.label)
            groups.append(f.slide_id)
        if n_slides:
            n_fields = len(ids) - len(records)
            messages.append(f"{n_fields} field(s) of {cfg.field_size[0]}x{cfg.field_size[1]} px at {cfg.field_mpp:g} µm/px "
                            f"from the painted regions of {len({g for g in groups[len(records):]})} of {n_slides} slide(s)")
        present = sorted(set(labels))
        if len(present) < 2:
            found = f"only class {prep.classes[present[0]]!r} has images" if present else "no image is labelled"
            raise GusaError(f"training needs labelled images of at least two classes; in {project.folder} {found}: label more images")
        index_splits, split_msgs = make_folds(labels, folds=cfg.folds, val_fraction=cfg.val_fraction, seed=cfg.seed, groups=groups)
        messages += split_msgs
        splits = [([ids[i] for i in tr], [ids[i] for i in va]) for tr, va in index_splits]
    prep.splits = splits
    used = [i for tr, va in splits for i in tr + va]
    for image_id in dict.fromkeys(project.missing_masks([i for i in used if i in project])):
        note = f"mask missing for {image_id}: trained without its RoI (restore the file or clear the mask)"
        if note not in messages:
            messages.append(note)
    prep.fields = field_samples(project, used, _fields(project, cfg))
    n_masked = sum(1 for r in project.images if r.label in prep.classes and r.mask is not None and not is_slide(r))
    n_masked += len(prep.fields)
    prep.normalizer = _normalizer(project, cfg, stored.get("reinhard") if stored else None, cb)
    prep.normalizer_dict = prep.normalizer.to_dict() if prep.normalizer is not None else None
    prep.cache = DownsampleCache(project.cache_dir)

    meta = stored or new_run_meta(variant=cfg.variant, class_names=prep.classes, input_size=(w, h), project=project.folder)
    meta.update(
        config=cfg.to_dict(), folds=len(splits), status="running", reinhard=prep.normalizer_dict, messages=messages,
        splits=[{"train": tr, "val": va} for tr, va in splits], selection=BEST_BY,
        device=str(dist.device), world_size=dist.world_size,
        precision={"setting": cfg.precision, "used": prep.precision, "reason": prep.precision_reason},
    )
    dist.barrier()  # every rank has checked the folder before rank 0 writes into it
    prep.run_state = RunState(prep.run_dir, meta, write=dist.is_main)
    if dist.is_main:
        prep.run_dir.mkdir(parents=True, exist_ok=True)
    prep.run_state.fold_list(len(splits))
    prep.run_state.save()
    for m in messages:
        cb.on_log(m)
    cb.on_log(f"precision: {prep.precision} ({prep.precision_reason})")
    cb.on_run_start(
        {
            "run_dir": str(prep.run_dir), "device": str(dist.device), "world_size": dist.world_size,
            "folds": len(splits), "epochs": cfg.epochs, "variant": cfg.variant,
            "n_labelled": len(splits[0][0]) + len(splits[0][1]), "n_masked": n_masked,
            "n_train": [len(tr) for tr, _ in splits], "n_val": [len(va) for _, va in splits],
            "channels_last": prep.channels_last, "memory_efficient": prep.memory_efficient,
            "amp": prep.amp, "precision": prep.precision, "precision_reason": prep.precision_reason, "workers": prep.workers, "messages": messages, "resume": trainer.resume,
        }
    )
    return prep
