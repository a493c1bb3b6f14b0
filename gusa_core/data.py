"""Network inputs: pre-processing shared by training and inference, and the training dataset.

The order of the paper's pre-processing (``GUSA.md``) is kept, with one
deliberate change of place: Reinhard colour normalisation is applied *after*
down-sampling. Reinhard matches per-channel LAB means and standard deviations,
which area down-sampling barely changes, and it costs 16 times less at
512x384 than at 2048x1536.

    resize (area) -> Reinhard (optional) -> [augment, training only] -> / 255 -> ImageNet mean / std
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler

from .errors import MaskError
from .imageio import DownsampleCache, image_size, read_mask
from .preprocess import IMAGENET_MEAN, IMAGENET_STD, preprocess_array, to_array
from .slides import open_slide
from .slides.annotations import read_labels
from .slides.fields import FieldSample, field_roi

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "preprocess",
    "to_tensor",
    "resize_mask",
    "ProjectDataset",
    "SeededSampler",
    "sample_seed",
    "SUGGESTED_MASKS",
]

#: What training does with masks accepted from a model's suggestion (``TrainConfig.suggested_masks``).
SUGGESTED_MASKS = ("include", "weight", "exclude")


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """Turn an RGB image into a normalised network input (:func:`gusa_core.preprocess.to_array`).

    Parameters
    ----------
    image : ndarray of shape (H, W, 3), uint8
        Not modified.

    Returns
    -------
    tensor : torch.Tensor of shape (3, H, W), float32
        ``(image / 255 - mean) / std`` with the ImageNet mean and std.
    """
    return torch.from_numpy(to_array(image))


def preprocess(image: np.ndarray, input_size: Sequence[int], normalizer=None) -> torch.Tensor:
    """Pre-process one image for the network (training and inference share this).

    Parameters
    ----------
    image : ndarray of shape (H, W, 3), uint8
        RGB, any size. Not modified.
    input_size : (int, int)
        Network input ``(width, height)``, e.g. ``(512, 384)``.
    normalizer : ReinhardNormalizer or None
        Applied after down-sampling (see the module notes); ``None`` skips
        colour normalisation.

    Returns
    -------
    tensor : torch.Tensor of shape (3, height, width), float32
        :func:`gusa_core.preprocess.preprocess_array` as a tensor.
    """
    return torch.from_numpy(preprocess_array(image, input_size, normalizer))


def resize_mask(mask: np.ndarray, input_size: Sequence[int]) -> np.ndarray:
    """Shrink a mask to ``input_size = (width, height)`` as a boolean array.

    Area averaging then ``> 0.5``: a pixel of the result is RoI when most of
    the area it covers is.

    Parameters
    ----------
    mask : ndarray of shape (H, W)
        Non-zero is RoI. Not modified.

    Returns
    -------
    ndarray of shape (height, width), bool
    """
    w, h = int(input_size[0]), int(input_size[1])
    m = (np.asarray(mask) > 0).astype(np.float32)
    if m.shape != (h, w):
        flag = cv2.INTER_AREA if (w <= m.shape[1] and h <= m.shape[0]) else cv2.INTER_NEAREST
        m = cv2.resize(m, (w, h), interpolation=flag)
    return m > 0.5


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The augmentation seed of one sample in one epoch (independent of workers)."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch), int(index)]).generate_state(1)[0])


class SeededSampler(torch.utils.data.Sampler):
    """Yields ``(index, seed)`` pairs: the epoch's order and each sample's augmentation seed.

    The order and the seeds are functions of ``(seed, epoch)`` alone, so a run
    is repeatable whatever the number of loader workers, and a resumed run sees
    exactly the data an uninterrupted one would. Under data parallelism each
    rank gets its own share, as :class:`torch.utils.data.DistributedSampler`.

    Parameters
    ----------
    n : int
        Dataset length.
    seed : int
    shuffle : bool
    rank, world_size : int
        This process's share (``0, 1`` without data parallelism).
    """

    def __init__(self, n: int, *, seed: int = 0, shuffle: bool = True, rank: int = 0, world_size: int = 1):
        self.n = int(n)
        self.seed = int(seed)
        self.epoch = 0
        self._dist = DistributedSampler(
            range(self.n), num_replicas=world_size, rank=rank, shuffle=shuffle, seed=self.seed, drop_last=False
        )

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order and seeds to yield."""
        self.epoch = int(epoch)
        self._dist.set_epoch(self.epoch)

    def __iter__(self):
        for i in self._dist:
            yield (int(i), sample_seed(self.seed, self.epoch, int(i)))

    def __len__(self) -> int:
        return len(self._dist)


class ProjectDataset(Dataset):
    """Images of a project as network inputs, with their labels and RoI masks.

    Each image is decoded once: the project's :class:`DownsampleCache` keeps
    the down-sampled copy on disk (``cache/``), and masks are kept, shrunk and
    bit-packed, in memory. Nothing full-size is decoded after the first epoch.

    Parameters
    ----------
    project : Project
    ids : sequence of str
        Image ids, in order.
    input_size : (int, int)
        ``(width, height)``.
    normalizer : ReinhardNormalizer or None
    augmenter : Augmenter, optional
        Training only. Called with a per-sample seed when the dataset is
        indexed with ``(index, seed)`` pairs (see :class:`SeededSampler`).
    cache : DownsampleCache, optional
        Defaults to one in ``project.cache_dir``.
    suggested_masks : {"include", "weight", "exclude"}
        What to do with masks accepted from a model's suggestion as they were
        (``mask_source == "accepted"``): train on them as on painted masks,
        weigh their dice term by ``suggested_weight``, or leave them out
        (the image then trains the classifier only). Edited suggestions
        count as painted.
    suggested_weight : float
        The dice weight of accepted suggestions with ``"weight"``.
    fields : mapping of str to FieldSample, optional
        Ids in ``ids`` that are slide fields (:mod:`gusa_core.slides.fields`): their image is read
        from the slide's pyramid at the input size, their label is the painted class and their
        RoI mask is that class's region inside the field.

    Notes
    -----
    ``dataset[i]`` or ``dataset[(i, seed)]`` returns ``(image, label, mask,
    has_mask)``: image ``(3, h, w)`` float32, label the class index (``-1``
    if unlabelled), mask ``(1, h, w)`` float32 of 0 / 1 (all zeros without a
    mask) and has_mask a bool, or, with ``suggested_masks="weight"``, the
    image's dice weight as a float (0 without a mask).
    """

    def __init__(
        self,
        project,
        ids: Sequence[str],
        *,
        input_size: Sequence[int],
        normalizer=None,
        augmenter=None,
        cache: DownsampleCache | None = None,
        suggested_masks: str = "include",
        suggested_weight: float = 0.5,
        fields: dict[str, FieldSample] | None = None,
    ):
        if suggested_masks not in SUGGESTED_MASKS:
            raise ValueError(f"suggested_masks must be one of {', '.join(SUGGESTED_MASKS)}, got {suggested_masks!r}")
        self.ids = list(ids)
        fields = fields or {}
        self.fields: dict[int, FieldSample] = {}
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.normalizer = normalizer
        self.augmenter = augmenter
        self.cache = cache if cache is not None else DownsampleCache(project.cache_dir)
        classes = list(project.classes)
        self.labels: list[int] = []
        self.mask_paths: list[Path | None] = []
        self.paths: list[Path] = []
        self.mask_weights: list[float] = []
        # Only paths and labels are kept (not the project): the dataset pickles into
        # loader workers started by "spawn" (macOS, Windows).
        for i, image_id in enumerate(self.ids):
            if image_id in fields:
                f = fields[image_id]
                self.fields[i] = f
                self.labels.append(int(f.label))
                self.paths.append(Path(f.slide_path))
                self.mask_paths.append(Path(f.regions_path))
                self.mask_weights.append(1.0)
                continue
            rec = project.image(image_id)
            self.labels.append(classes.index(rec.label) if rec.label in classes else -1)
            self.paths.append(Path(project.image_path(image_id)))
            # a mask the manifest names but that is gone: trained without RoI guidance (setup reports it)
            accepted = rec.mask and getattr(rec, "mask_source", None) == "accepted"
            keep = rec.mask and project.has_mask(image_id) and not (accepted and suggested_masks == "exclude")
            self.mask_paths.append(Path(project.mask_path(image_id)) if keep else None)
            self.mask_weights.append(float(suggested_weight) if accepted and keep and suggested_masks == "weight" else 1.0)
        self._weighted = suggested_masks == "weight"
        self._masks: dict[tuple[int, int], np.ndarray] = {}
        self._slides: dict[Path, Any] = {}
        self._fields: dict[int, np.ndarray] = {}
        self._labels: dict[tuple[Path, int], np.ndarray] = {}

    def __getstate__(self):
        state = self.__dict__.copy()
        state["cache"] = (self.cache.cache_dir, self.cache.memory_items)  # holds locks: rebuilt in the worker
        state["_slides"] = {}  # open files: reopened in the worker
        return state

    def __setstate__(self, state):
        cache_dir, items = state["cache"]
        state["cache"] = DownsampleCache(cache_dir, memory_items=items)
        self.__dict__.update(state)

    def __len__(self) -> int:
        return len(self.ids)

    def has_mask(self, index: int) -> bool:
        """Whether image ``index`` has an RoI mask."""
        return self.mask_paths[index] is not None

    def image(self, index: int) -> np.ndarray:
        """Image ``index`` at the input size, colour-normalised, not augmented: (h, w, 3) uint8."""
        if index in self.fields:
            small = self._field_image(index)
        else:
            small = self.cache.get(self.paths[index], self.input_size)
        if self.normalizer is not None:
            small = self.normalizer.transform(small)
        return small

    def mask(self, index: int) -> np.ndarray | None:
        """Mask ``index`` at the input size as a (h, w) bool array, or None."""
        path = self.mask_paths[index]
        if path is None:
            return None
        try:
            mtime = os.stat(path).st_mtime_ns
        except FileNotFoundError:
            raise MaskError(path, f"mask missing for {self.ids[index]} (the manifest names it but the file is gone)") from None
        key = (index, mtime)
        packed = self._masks.get(key)
        if packed is None and index in self.fields:
            f = self.fields[index]
            labels = self._labels.get((path, mtime))
            if labels is None:
                labels = read_labels(path, f.label_shape)  # MaskError naming the file if it does not fit
                self._labels = {(path, mtime): labels}  # one slide's regions at a time: fields come grouped
            packed = np.packbits(field_roi(labels, f.downsample, f.box, f.label, self.input_size))
            self._masks[key] = packed
        elif packed is None:
            w, h = image_size(self.paths[index])
            full = read_mask(path, shape=(h, w))  # MaskError naming the file if it does not fit
            packed = np.packbits(resize_mask(full, self.input_size))
            self._masks[key] = packed
        w, h = self.input_size
        return np.unpackbits(packed, count=w * h).reshape(h, w).astype(bool)

    def _field_image(self, index: int) -> np.ndarray:
        """A field read from its slide's pyramid at the input size (kept in memory: fields are small)."""
        hit = self._fields.get(index)
        if hit is None:
            f = self.fields[index]
            slide = self._slides.get(self.paths[index])
            if slide is None:
                slide = self._slides[self.paths[index]] = open_slide(self.paths[index])
            hit = self._fields[index] = slide.read_field(f.box, self.input_size)
        return hit.copy()

    def __getitem__(self, item: Any):
        if isinstance(item, (tuple, list)):
            index, seed = int(item[0]), int(item[1])
        else:
            index, seed = int(item), None
        image = self.image(index)
        mask = self.mask(index)
        if self.augmenter is not None:
            image, mask = _augment(self.augmenter, image, mask, seed)
        x = to_tensor(np.ascontiguousarray(image))
        w, h = self.input_size
        if mask is None:
            m = torch.zeros(1, h, w, dtype=torch.float32)
        else:
            m = torch.from_numpy(np.ascontiguousarray(np.asarray(mask) > 0, dtype=np.float32)[None])
        if self._weighted:
            return x, self.labels[index], m, self.mask_weights[index] if mask is not None else 0.0
        return x, self.labels[index], m, mask is not None


def _augment(augmenter, image: np.ndarray, mask: np.ndarray | None, seed: int | None):
    """Apply ``augmenter``, drawing from a per-sample generator when a seed is given."""
    mask_u8 = None if mask is None else (np.asarray(mask, dtype=np.uint8) * 255)
    rng = None if seed is None else np.random.default_rng(seed)
    image, mask_u8 = augmenter(image, mask_u8, rng=rng)
    return image, (None if mask_u8 is None else np.asarray(mask_u8) > 127)
