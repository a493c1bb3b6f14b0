"""Training one fold: epochs, validation, the saved models, and the resume state.

Fold k writes into ``runs.fold_dir(run, k)``: the best epoch's model (chosen by
:data:`BEST_BY`), the final epoch's model in ``runs.last_model_dir`` and,
while the fold is unfinished, its resume state in ``runs.state_dir``, saved
after every epoch. This module imports torch; :class:`~.trainer.Trainer`
imports it only when a run starts.
"""

from __future__ import annotations

import contextlib
import shutil
import time
import warnings

import torch
import torch.distributed as tdist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from ..augment import Augmenter
from ..checkpoint import has_state, load_state, save_model, save_state
from ..data import IMAGENET_MEAN, IMAGENET_STD, ProjectDataset, SeededSampler
from ..losses import gusa_loss
from ..metrics import mean_iou, roc_auc
from ..models import ModelOutput, build_model
from ..models_registry import ROI_VARIANTS
from ..runs import fold_dir, last_model_dir, state_dir
from .config import effective_lr, effective_schedule
from .seeding import rng_state, set_rng_state

#: How the saved ("best") model of a fold is chosen.
BEST_BY = "val_acc, ties broken by the lower val_loss"

__all__ = ["FoldTrainer", "BEST_BY"]


# ---------------------------------------------------------------- one fold
class FoldTrainer:
    """Trains one fold: epochs, validation, checkpoints and resume state.

    Created by :class:`gusa_core.training.trainer.Trainer`; not meant to be used alone.
    """

    def __init__(self, trainer, prep, dist, callbacks, fold: int, train_ids: list[str], val_ids: list[str]):
        self.trainer = trainer
        self.prep = prep
        self.dist = dist
        self.cb = callbacks
        self.fold = fold
        self.train_ids = list(train_ids)
        self.val_ids = list(val_ids)
        self.config = prep.config
        self.device = prep.device
        self.folder = fold_dir(prep.run_dir, fold)

    # ----------------------------------------------------------- building
    def _build(self):
        cfg = self.config
        torch.manual_seed(cfg.seed + 7919 * self.fold)
        # The weights look-up warns when ImageNet weights are missing: say it once per run, through on_log.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeWarning)
            model = build_model(cfg.variant, num_classes=len(self.prep.classes), pretrained=cfg.pretrained)
        if caught and not getattr(self.trainer, "_weights_warned", False):
            self.trainer._weights_warned = True
            for w in caught:
                self.cb.on_log(str(w.message))
        if self.prep.memory_efficient:
            for m in model.modules():
                if hasattr(m, "memory_efficient"):  # torchvision's _DenseLayer: checkpointing
                    m.memory_efficient = True
        model.to(self.device)
        if self.prep.channels_last:
            model.to(memory_format=torch.channels_last)
        lr = effective_lr(cfg, model.pretrained_source)
        if lr != cfg.lr and not getattr(self.trainer, "_lr_noted", False):
            self.trainer._lr_noted = True
            self.cb.on_log(f"random initial weights: learning rate {lr:g} (random_init_lr) instead of {cfg.lr:g}, "
                           f"{effective_schedule(cfg, model.pretrained_source)} schedule")
        optimizer = _adam(model.parameters(), lr=lr, weight_decay=cfg.weight_decay)
        if effective_schedule(cfg, model.pretrained_source) == "cosine":
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, cfg.epochs))
        else:
            scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, cfg.lr_step), gamma=cfg.lr_decay)
        scaler = torch.amp.GradScaler("cuda", enabled=self.prep.amp)
        return model, optimizer, scheduler, scaler

    def _wrap(self, model):
        if not self.dist.enabled:
            return model
        if self.device.type == "cuda":
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        # GuRoI-like variants do not use ỹ for the class: with no mask in a batch the RoI conv gets no gradient.
        unused = self.config.variant in ROI_VARIANTS and self.config.variant not in ("gusa", "fa-gusa")
        ids = [self.device.index] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=unused)

    def _loaders(self):
        cfg, prep = self.config, self.prep
        kw = dict(input_size=cfg.input_size, normalizer=prep.normalizer, cache=prep.cache, fields=prep.fields)
        train_ds = ProjectDataset(
            prep.project, self.train_ids, augmenter=Augmenter() if cfg.augment else None,
            suggested_masks=cfg.suggested_masks, suggested_weight=cfg.suggested_weight, **kw,
        )
        val_ds = ProjectDataset(prep.project, self.val_ids, augmenter=None, **kw)
        self.sampler = SeededSampler(
            len(train_ds), seed=cfg.seed + 104729 * self.fold, shuffle=True, rank=self.dist.rank, world_size=self.dist.world_size
        )
        workers = prep.workers
        common = dict(num_workers=workers, pin_memory=self.device.type == "cuda", persistent_workers=workers > 0)
        if workers > 0:
            common.update(prefetch_factor=2, worker_init_fn=_worker_init)
        gen = torch.Generator().manual_seed(cfg.seed)
        train = DataLoader(train_ds, batch_size=cfg.batch_size, sampler=self.sampler, generator=gen, **common)
        val = DataLoader(val_ds, batch_size=cfg.batch_size, shuffle=False, **common)
        return train, val

    # ------------------------------------------------------------ running
    def run(self) -> dict:
        cfg = self.config
        model, optimizer, scheduler, scaler = self._build()
        start_epoch, history, best = 0, [], None
        resume_dir = state_dir(self.folder)
        if self.trainer.resume and has_state(resume_dir):
            st = load_state(resume_dir)
            model.load_state_dict(st["model"])
            optimizer.load_state_dict(st["optimizer"])
            _match_layout(optimizer)
            scheduler.load_state_dict(st["scheduler"])
            if st.get("scaler"):
                scaler.load_state_dict(st["scaler"])
            set_rng_state(st["rng"])
            start_epoch, history, best = int(st["epoch"]) + 1, list(st["history"]), st.get("best")
            self.cb.on_log(f"fold {self.fold}: resuming after epoch {start_epoch} of {cfg.epochs}")
        net = self._wrap(model)
        train_loader, val_loader = self._loaders()
        self.class_weight = self._class_weight(train_loader.dataset.labels)
        bn_loader = self._bn_loader(model)
        self._sync_model(model)
        status = "finished"
        for epoch in range(start_epoch, cfg.epochs):
            t0 = time.perf_counter()
            train_rec = self._train_epoch(net, model, optimizer, scaler, train_loader, epoch)
            if train_rec is None:
                status = "stopped"
                break
            lr = optimizer.param_groups[0]["lr"]
            scheduler.step()
            if bn_loader is not None and not self._recompute_bn(model, bn_loader):
                status = "stopped"
                break
            self._sync_model(model)
            val_rec = self._validate(model, val_loader)
            if val_rec is None:
                status = "stopped"
                break
            rec = {"fold": self.fold, "epoch": epoch + 1, "epochs": cfg.epochs, **train_rec, **val_rec, "lr": lr}
            rec["seconds"] = round(time.perf_counter() - t0, 3)
            improved = _better(rec, best)
            if improved:
                best = dict(rec)
            rec["best"] = improved
            history.append(rec)
            if self.dist.is_main:
                if improved:
                    save_model(self.folder, model, self._meta(history, best, rec, kind="best"))
                save_state(
                    resume_dir,
                    {
                        "epoch": epoch,
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "scaler": scaler.state_dict() if self.prep.amp else {},
                        "rng": rng_state(),
                        "history": history,
                        "best": best,
                    },
                )
            self.cb.on_epoch_end(dict(rec))
            self.prep.run_state.set_fold(self.fold, self._result("running", history, best))
            if epoch + 1 < cfg.epochs and self._stop():
                status = "stopped"
                break
        if status == "finished" and self.dist.is_main:
            last = history[-1] if history else None
            save_model(last_model_dir(self.folder), model, self._meta(history, best, last, kind="last"))
            shutil.rmtree(resume_dir, ignore_errors=True)
        self.dist.barrier()
        self.trainer.last_model = model
        return self._result(status, history, best)

    def _bn_loader(self, model):
        """The training images without augmentation, in order, for :meth:`_recompute_bn`; None when it is off."""
        cfg, prep = self.config, self.prep
        on = cfg.precise_bn if cfg.precise_bn is not None else getattr(model, "pretrained_source", "") == "random"
        if not on or not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
            return None
        if not getattr(self.trainer, "_bn_noted", False):
            self.trainer._bn_noted = True
            self.cb.on_log("BatchNorm statistics re-estimated over the training images after each epoch (precise_bn)")
        ds = ProjectDataset(prep.project, self.train_ids, augmenter=None, input_size=cfg.input_size,
                            normalizer=prep.normalizer, cache=prep.cache, fields=prep.fields)
        return DataLoader(ds, batch_size=cfg.batch_size, shuffle=False, num_workers=0)

    def _recompute_bn(self, model, loader) -> bool:
        """Re-estimate BatchNorm running statistics: the equal-weight average over ``loader``'s batches.

        The weights are untouched; returns False when a stop was asked for (the epoch is dropped).
        """
        bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        momenta = [m.momentum for m in bns]
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative average
        model.train()
        try:
            with torch.no_grad():
                for x, *_ in loader:
                    if self.trainer.stop_requested and not self.dist.enabled:
                        return False
                    x = x.to(self.device)
                    if self.prep.channels_last:
                        x = x.contiguous(memory_format=torch.channels_last)
                    with _autocast(self.prep):
                        model(x)
        finally:
            for m, momentum in zip(bns, momenta):
                m.momentum = momentum
        return True

    def _sync_model(self, model) -> None:
        """Make BatchNorm running statistics equal on every rank (rank 0's)."""
        if self.dist.enabled:
            for b in model.buffers():
                tdist.broadcast(b, 0)

    def _class_weight(self, labels):
        """The training cross-entropy's class weights (None: unweighted); says once per run what it chose."""
        counts = class_counts(labels, len(self.prep.classes))
        weights = balanced_class_weights(counts) if self.config.class_weights == "balanced" else None
        if getattr(self.trainer, "_cw_noted", False):
            return weights
        self.trainer._cw_noted = True
        if weights is not None:
            shown = ", ".join(f"{c} {w:.2f}" for c, w in zip(self.prep.classes, weights.tolist()))
            self.cb.on_log(f"class weights (balanced over fold {self.fold}'s training images): {shown}")
            return weights
        present = counts[counts > 0]
        if len(present) and present.max() >= UNEVEN_RATIO * present.min():
            shown = ", ".join(f"{c} {int(n)}" for c, n in zip(self.prep.classes, counts.tolist()) if n)
            self.cb.on_log(f"the classes are uneven in the training images ({shown}): --class-weights balanced "
                           "(Training panel: Advanced > Class weights) weighs them equally in the loss")
        return None

    def _stop(self) -> bool:
        return self.dist.any_flag(self.trainer.stop_requested)

    def _train_epoch(self, net, model, optimizer, scaler, loader, epoch: int) -> dict | None:
        cfg, prep = self.config, self.prep
        self.sampler.set_epoch(epoch)
        net.train()
        batches = len(loader)
        total = n = correct = 0
        ce_sum = dice_sum = 0.0
        t0 = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        if self._stop():
            return None
        for b, (x, y, m, hm) in enumerate(loader):
            x = x.to(self.device, non_blocking=True)
            if prep.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = y.to(self.device, non_blocking=True)
            m = m.to(self.device, non_blocking=True)
            hm = hm.to(self.device, non_blocking=True)
            with _autocast(prep):
                out = net(x)
            loss, parts = gusa_loss(_float_output(out), y, m, hm, lam=cfg.dice_weight, class_weight=self.class_weight)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            bs = int(x.shape[0])
            loss_v = float(loss.detach())
            ce_v, dice_v = _part(parts, "ce"), _part(parts, "dice")
            total += loss_v * bs
            ce_sum += (ce_v or 0.0) * bs
            dice_sum += (dice_v or 0.0) * bs
            correct += int((out.logits.detach().argmax(1) == y).sum())
            n += bs
            elapsed = time.perf_counter() - t0
            self.cb.on_batch_end(
                {
                    "fold": self.fold, "epoch": epoch + 1, "epochs": cfg.epochs, "batch": b + 1, "batches": batches,
                    "loss": loss_v, "ce": ce_v, "dice": dice_v, "lr": lr,
                    "images_per_s": n * self.dist.world_size / max(elapsed, 1e-9),
                }
            )
            if b + 1 < batches and self._stop():
                return None
        world = self.dist.world_size
        return {
            "train_loss": total / max(n, 1), "train_ce": ce_sum / max(n, 1), "train_dice": dice_sum / max(n, 1),
            "train_acc": correct / max(n, 1), "images": n * world,
            "images_per_s": n * world / max(time.perf_counter() - t0, 1e-9),
        }

    def _validate(self, model, loader) -> dict | None:
        cfg, prep = self.config, self.prep
        model.eval()
        probs, labels, rois, masks = [], [], [], []
        loss_sum = n = 0.0
        with torch.no_grad():
            for x, y, m, hm in loader:
                if self.trainer.stop_requested and not self.dist.enabled:
                    return None
                x = x.to(self.device, non_blocking=True)
                if prep.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                y, m, hm = y.to(self.device), m.to(self.device), hm.to(self.device)
                with _autocast(prep):
                    out = model(x)
                out = _float_output(out)
                loss, _ = gusa_loss(out, y, m, hm, lam=cfg.dice_weight)
                loss_sum += float(loss) * x.shape[0]
                n += x.shape[0]
                probs.append(torch.softmax(out.logits, 1).cpu())
                labels.append(y.cpu())
                if out.roi is not None:
                    up = F.interpolate(out.roi, size=x.shape[-2:], mode="bilinear", align_corners=False)
                    for i in range(x.shape[0]):
                        rois.append(up[i, 0].cpu().numpy() if bool(hm[i]) else None)
                        masks.append(m[i, 0].cpu().numpy() if bool(hm[i]) else None)
        p = torch.cat(probs).numpy()
        yv = torch.cat(labels).numpy()
        _, auc, _ = roc_auc(yv, p, n_classes=len(prep.classes))
        miou = mean_iou(rois, masks)[0] if rois else None
        return {
            "val_loss": loss_sum / max(n, 1),
            "val_acc": float((p.argmax(1) == yv).mean()) if len(yv) else float("nan"),
            "val_auc": _nan_to_none(auc),
            "val_miou": _nan_to_none(miou),
        }

    # ------------------------------------------------------------ records
    def _meta(self, history, best, rec, *, kind: str) -> dict:
        prep = self.prep
        return {
            "variant": self.config.variant,
            "class_names": list(prep.classes),
            "input_size": [int(v) for v in self.config.input_size],
            "reinhard": prep.normalizer_dict,
            "mean": list(IMAGENET_MEAN),
            "std": list(IMAGENET_STD),
            "training": self.config.to_dict(),
            "history": history,
            "fold": self.fold,
            "folds": len(prep.splits),
            "validation_ids": self.val_ids,
            "train_ids": self.train_ids,
            "kind": kind,
            "epoch": None if rec is None else rec["epoch"],
            "metrics": {"selection": BEST_BY, "best": best, "final": history[-1] if history else None},
            "device": str(self.device),
            "world_size": self.dist.world_size,
            "precision": prep.precision,
        }

    def _result(self, status: str, history: list, best: dict | None) -> dict:
        b = best or {}
        return {
            "fold": self.fold, "status": status, "epochs_done": len(history), "epochs": self.config.epochs,
            "best_epoch": b.get("epoch"), "val_acc": b.get("val_acc"), "val_auc": b.get("val_auc"),
            "val_miou": b.get("val_miou"), "val_loss": b.get("val_loss"),
            "n_train": len(self.train_ids), "n_val": len(self.val_ids), "selection": BEST_BY,
            # the epoch records (a few numbers each): a resumed run's curves start from epoch 1
            "history": [{k: v for k, v in r.items() if isinstance(v, (int, float, bool)) or v is None} for r in history],
        }


def _match_layout(optimizer) -> None:
    """Give restored optimizer moments their parameter's memory layout (channels-last).

    Saved tensors come back contiguous; the fused Adam kernel then sums in a
    different order and a resumed run would drift from an uninterrupted one.
    """
    for group in optimizer.param_groups:
        for p in group["params"]:
            st = optimizer.state.get(p, {})
            for key, v in list(st.items()):
                if torch.is_tensor(v) and v.shape == p.shape and v.stride() != p.stride():
                    st[key] = torch.empty_like(p, dtype=v.dtype).copy_(v)


#: A fold whose largest class has this many times the images of its smallest is "uneven" (a hint is logged).
UNEVEN_RATIO = 2


def class_counts(labels, n_classes: int) -> torch.Tensor:
    """Images of each class among ``labels`` (class indices; unlabelled entries, -1, are not counted), as floats."""
    return torch.bincount(torch.as_tensor([v for v in labels if v >= 0], dtype=torch.long), minlength=n_classes).float()


def balanced_class_weights(counts: torch.Tensor) -> torch.Tensor:
    """``n / (k · n_c)`` for each class ``c`` seen ``n_c`` times among ``n`` images of ``k`` classes present.

    scikit-learn's ``compute_class_weight("balanced", ...)`` over the classes
    present (``counts`` from :func:`class_counts`); a class absent from the
    training images gets weight 1 (no image of it contributes).
    """
    present = counts > 0
    weights = torch.ones(len(counts))
    if present.any():
        weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights


def _worker_init(worker_id: int) -> None:
    """Loader workers leave Ctrl+C to the main process, which stops training cleanly."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)


def _adam(params, **kw):
    """Adam with L2 weight decay; the fused kernel where torch has one (2x faster on the CPU)."""
    try:
        return torch.optim.Adam(params, fused=True, **kw)
    except (RuntimeError, TypeError, ValueError):  # pragma: no cover - old torch or unsupported device
        return torch.optim.Adam(params, **kw)


def _autocast(prep):
    """Autocast of the forward pass to the run's precision (fp16 or bf16 on CUDA, bf16 on a CPU; off for fp32)."""
    if prep.autocast_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=prep.device.type, dtype=prep.autocast_dtype)


def _float_output(out):
    """The model's output with fp16/bf16 (autocast) tensors cast to fp32 for the loss."""
    logits, roi = out
    return ModelOutput(logits.float(), None if roi is None else roi.float())


def _part(parts, key):
    v = parts.get(key) if isinstance(parts, dict) else None
    return None if v is None else float(v)


def _nan_to_none(v):
    if v is None:
        return None
    v = float(v)
    return None if (v != v or v in (float("inf"), float("-inf"))) else v


def _better(rec: dict, best: dict | None) -> bool:
    if best is None:
        return True
    if rec["val_acc"] != best["val_acc"]:
        return rec["val_acc"] > best["val_acc"]
    return rec["val_loss"] < best["val_loss"]
