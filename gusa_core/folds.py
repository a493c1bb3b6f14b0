"""The folds of a run: splitting labelled images, and training one fold.

The paper's protocol is 4-fold cross-validation, stratified so that each fold
holds a quarter of every class (``GUSA.md``). ``folds=1`` is a single
stratified split that keeps ``val_fraction`` of each class for validation.
Small projects rarely satisfy stratification exactly; the fallbacks are
explained in the messages returned beside the splits.
"""

from __future__ import annotations

import time
import warnings
from collections import Counter
from collections.abc import Sequence

import numpy as np

from .checkpoint import save_model
from .errors import GusaError
from .training import BEST_BY

__all__ = ["make_folds", "FoldTrainer"]


def make_folds(
    labels: Sequence[int], *, folds: int, val_fraction: float = 0.25, seed: int = 0
) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[str]]:
    """Split sample indices into ``(train, validation)`` index arrays.

    Parameters
    ----------
    labels : sequence of int
        Class index of each labelled sample.
    folds : int
        ``>= 2``: stratified k-fold (scikit-learn ``StratifiedKFold``,
        shuffled with ``seed``); ``1``: one stratified split.
    val_fraction : float
        Validation share when ``folds == 1``.
    seed : int

    Returns
    -------
    splits : list of (ndarray, ndarray)
        Sorted training and validation indices of each fold.
    messages : list of str
        Explanations of any fallback taken (empty when none was needed).

    Raises
    ------
    GusaError
        Too few labelled images for the requested split.
    """
    from sklearn.model_selection import KFold, ShuffleSplit, StratifiedKFold, StratifiedShuffleSplit

    y = np.asarray(labels, dtype=np.int64)
    n = int(y.size)
    folds = int(folds)
    messages: list[str] = []
    if folds < 1:
        raise GusaError(f"folds must be 1 or more, got {folds}")
    if n < 2:
        raise GusaError(f"training needs at least 2 labelled images (one to train, one to validate); the project has {n}")
    counts = Counter(y.tolist())
    smallest = min(counts.values())
    X = np.zeros((n, 1))
    if folds >= 2:
        if n < folds:
            raise GusaError(f"{folds} folds need at least {folds} labelled images; the project has {n}: use fewer folds")
        if max(counts.values()) < folds:
            messages.append(
                f"every class has fewer than {folds} images: folds are not stratified (plain shuffled k-fold)"
            )
            splitter = KFold(n_splits=folds, shuffle=True, random_state=seed)
        else:
            if smallest < folds:
                thin = ", ".join(f"class {c}: {k}" for c, k in sorted(counts.items()) if k < folds)
                messages.append(
                    f"some classes have fewer images than folds ({thin}): "
                    f"they are missing from the validation set of some folds"
                )
            splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the thin-class warning is in ``messages``
            splits = [(np.sort(tr), np.sort(va)) for tr, va in splitter.split(X, y)]
        return splits, messages
    if not 0.0 < val_fraction < 1.0:
        raise GusaError(f"val_fraction must lie strictly between 0 and 1, got {val_fraction}")
    n_val = max(1, int(round(n * val_fraction)))
    n_val = min(n_val, n - 1)
    if n_val < len(counts) <= n - len(counts) and smallest >= 2:
        messages.append(f"validation split enlarged from {n_val} to {len(counts)} images: one per class")
        n_val = len(counts)
    if smallest >= 2 and len(counts) <= n_val <= n - len(counts):
        splitter = StratifiedShuffleSplit(n_splits=1, test_size=n_val, random_state=seed)
        tr, va = next(splitter.split(X, y))
    else:
        messages.append(
            f"cannot stratify a {n_val}-image validation split of {n} images over {len(counts)} classes "
            f"(smallest class: {smallest} images): random split instead"
        )
        tr, va = next(ShuffleSplit(n_splits=1, test_size=n_val, random_state=seed).split(X))
    return [(np.sort(tr), np.sort(va))], messages


# ---------------------------------------------------------------- one fold
class FoldTrainer:
    """Trains one fold: epochs, validation, checkpoints and resume state.

    Created by :class:`gusa_core.training.Trainer`; not meant to be used alone.
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
        self.folder = prep.run_dir / f"fold-{fold}"

    # ----------------------------------------------------------- building
    def _build(self):
        import torch

        from .models import build_model

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
        optimizer = _adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, cfg.lr_step), gamma=cfg.lr_decay)
        scaler = torch.amp.GradScaler("cuda", enabled=self.prep.amp)
        return model, optimizer, scheduler, scaler

    def _wrap(self, model):
        import torch

        if not self.dist.enabled:
            return model
        from .models_registry import ROI_VARIANTS

        if self.device.type == "cuda":
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        # GuRoI-like variants do not use ỹ for the class: with no mask in a batch the RoI conv gets no gradient.
        unused = self.config.variant in ROI_VARIANTS and self.config.variant not in ("gusa", "fa-gusa")
        ids = [self.device.index] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=unused)

    def _loaders(self):
        import torch
        from torch.utils.data import DataLoader

        from .augment import Augmenter
        from .data import ProjectDataset, SeededSampler

        cfg, prep = self.config, self.prep
        kw = dict(input_size=cfg.input_size, normalizer=prep.normalizer, cache=prep.cache)
        train_ds = ProjectDataset(prep.project, self.train_ids, augmenter=Augmenter() if cfg.augment else None, **kw)
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
        return train, val, val_ds

    # ------------------------------------------------------------ running
    def run(self) -> dict:
        from .checkpoint import STATE_DIR, load_state

        cfg = self.config
        model, optimizer, scheduler, scaler = self._build()
        start_epoch, history, best = 0, [], None
        state_dir = self.folder / STATE_DIR
        if self.trainer.resume and (state_dir / "state.json").is_file():
            st = load_state(state_dir)
            model.load_state_dict(st["model"])
            optimizer.load_state_dict(st["optimizer"])
            _match_layout(optimizer)
            scheduler.load_state_dict(st["scheduler"])
            if st.get("scaler"):
                scaler.load_state_dict(st["scaler"])
            from .training import _set_rng_state

            _set_rng_state(st["rng"])
            start_epoch, history, best = int(st["epoch"]) + 1, list(st["history"]), st.get("best")
            self.cb.on_log(f"fold {self.fold}: resuming after epoch {start_epoch} of {cfg.epochs}")
        net = self._wrap(model)
        train_loader, val_loader, val_ds = self._loaders()
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
            self._sync_model(model)
            val_rec = self._validate(model, val_loader, val_ds)
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
                from .checkpoint import save_state
                from .training import _rng_state

                save_state(
                    state_dir,
                    {
                        "epoch": epoch,
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "scaler": scaler.state_dict() if self.prep.amp else {},
                        "rng": _rng_state(),
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
            save_model(self.folder / "last", model, self._meta(history, best, last, kind="last"))
            import shutil

            shutil.rmtree(state_dir, ignore_errors=True)
        self.dist.barrier()
        self.trainer.last_model = model
        return self._result(status, history, best)

    def _sync_model(self, model) -> None:
        """Make BatchNorm running statistics equal on every rank (rank 0's)."""
        if self.dist.enabled:
            import torch.distributed as tdist

            for b in model.buffers():
                tdist.broadcast(b, 0)

    def _stop(self) -> bool:
        return self.dist.any_flag(self.trainer.stop_requested)

    def _train_epoch(self, net, model, optimizer, scaler, loader, epoch: int) -> dict | None:
        import torch

        from .losses import gusa_loss

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
            with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=prep.amp):
                out = net(x)
            loss, parts = gusa_loss(_float_output(out), y, m, hm, lam=cfg.dice_weight)
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

    def _validate(self, model, loader, dataset) -> dict | None:
        import torch
        import torch.nn.functional as F

        from .losses import gusa_loss
        from .metrics import mean_iou, roc_auc

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
                with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=prep.amp):
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
        from .data import IMAGENET_MEAN, IMAGENET_STD

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
        }

    def _result(self, status: str, history: list, best: dict | None) -> dict:
        b = best or {}
        return {
            "fold": self.fold, "status": status, "epochs_done": len(history), "epochs": self.config.epochs,
            "best_epoch": b.get("epoch"), "val_acc": b.get("val_acc"), "val_auc": b.get("val_auc"),
            "val_miou": b.get("val_miou"), "val_loss": b.get("val_loss"),
            "n_train": len(self.train_ids), "n_val": len(self.val_ids), "selection": BEST_BY,
        }


def _match_layout(optimizer) -> None:
    """Give restored optimizer moments their parameter's memory layout (channels-last).

    Saved tensors come back contiguous; the fused Adam kernel then sums in a
    different order and a resumed run would drift from an uninterrupted one.
    """
    import torch

    for group in optimizer.param_groups:
        for p in group["params"]:
            st = optimizer.state.get(p, {})
            for key, v in list(st.items()):
                if torch.is_tensor(v) and v.shape == p.shape and v.stride() != p.stride():
                    st[key] = torch.empty_like(p, dtype=v.dtype).copy_(v)


def _worker_init(worker_id: int) -> None:
    """Loader workers leave Ctrl+C to the main process, which stops training cleanly."""
    import signal

    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)


def _adam(params, **kw):
    """Adam with L2 weight decay; the fused kernel where torch has one (2x faster on the CPU)."""
    import torch

    try:
        return torch.optim.Adam(params, fused=True, **kw)
    except (RuntimeError, TypeError, ValueError):  # pragma: no cover - old torch or unsupported device
        return torch.optim.Adam(params, **kw)


def _float_output(out):
    """The model's output with fp16 (autocast) tensors cast to fp32 for the loss."""
    from .models import ModelOutput

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
