"""Whole-slide inference: class and attention heatmaps from a sliding window of fields.

A slide is read as *fields*: rectangles with the footprint of the run's training field (by
default the BACH microscopy field, 2048 x 1536 px at 0.42 µm/px, see
:mod:`gusa_core.slides.fields`), laid on a grid over the slide with a chosen overlap and kept
where the tissue mask of the thumbnail covers enough of them. Each field is read from the
pyramid level nearest the network's input (:meth:`~gusa_core.slides.reader.Slide.read_field`),
classified by the run's ensemble, and blended into per-class probability maps and an attention
map at an output resolution of ``downsample`` level-0 pixels per heatmap pixel. Each field is
weighted by a tent window (high at its centre, low at its edges), so overlapping fields blend
smoothly and the centre of a field counts most where it is best seen.

Memory is bounded by the heatmaps (``C + 2`` float32 maps at the output resolution) and a fixed
number of fields in flight, whatever the slide's size. Reading and pre-processing run in a
small thread pool ahead of the network, so the network never waits on the decoder, and the
next batch is queued on the engine (:meth:`~gusa_core.inference.Predictor.submit_prepared`)
before the last one is blended into the heatmaps, so it never waits on the blending either.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import GusaError
from ..slides import detect_tissue, field_grid, open_slide, tissue_fraction
from ..slides.fields import BACH_FIELD_MPP, BACH_FIELD_SIZE, field_footprint, parse_field_id
from .ahead import OneAhead

__all__ = [
    "SlideOptions",
    "FieldSettings",
    "FieldResult",
    "SlideResult",
    "field_settings",
    "iter_predict_slide",
    "predict_slide",
]


@dataclass(frozen=True)
class SlideOptions:
    """How a slide is swept.

    Attributes
    ----------
    overlap : float
        Share of a field its neighbour overlaps, in [0, 1) (0.5: half a field).
    min_tissue : float
        Least share of a field the tissue mask must cover for the field to be classified.
    heatmap_mpp : float or None
        µm per heatmap pixel; None: 16 heatmap pixels across a field, and never more than
        ``max_heatmap_side`` pixels along the slide's longer side.
    max_heatmap_side : int
        Cap on the heatmap's longer side (bounds memory on huge slides).
    thumbnail_size : int
        Longer side of the thumbnail the tissue is detected on.
    batch_size : int
        Fields per network call.
    readers : int
        Threads reading and pre-processing fields ahead of the network.
    top_k : int
        Fields listed per class in the summary (the most probable ones).
    """

    overlap: float = 0.5
    min_tissue: float = 0.25
    heatmap_mpp: float | None = None
    max_heatmap_side: int = 4096
    thumbnail_size: int = 2048
    batch_size: int = 8
    readers: int = 2
    top_k: int = 5


@dataclass(frozen=True)
class FieldSettings:
    """The run's field: its size in pixels and its pixel size, and where they came from.

    Attributes
    ----------
    size : (int, int)
        ``(width, height)`` in the field's own pixels.
    mpp : float
        µm per field pixel.
    source : str
        ``"run"`` when the run was trained on slide fields at this pixel size, ``"default"``
        when it was trained on patch images and the BACH field is assumed.
    """

    size: tuple[int, int] = BACH_FIELD_SIZE
    mpp: float = BACH_FIELD_MPP
    source: str = "default"

    def describe(self) -> str:
        """One line for a log: the field and why it was chosen."""
        text = f"fields of {self.size[0]}x{self.size[1]} px at {self.mpp:g} µm/px"
        if self.source == "default":
            text += " (the BACH field: the run was trained on patch images and records no field pixel size)"
        return text


@dataclass
class FieldResult:
    """One classified field.

    Attributes
    ----------
    box : (int, int, int, int)
        ``(x, y, width, height)`` in level-0 pixels.
    tissue : float
        Share of the field on tissue.
    probs : ndarray of shape (C,)
        Ensemble probabilities.
    attention : float
        Mean of the field's attention map.
    """

    box: tuple[int, int, int, int]
    tissue: float
    probs: np.ndarray
    attention: float

    @property
    def index(self) -> int:
        """The predicted class index."""
        return int(np.argmax(self.probs))


@dataclass
class SlideResult:
    """Everything one slide's sweep produced.

    Attributes
    ----------
    path : Path
    class_names : list of str
    dimensions : (int, int)
        Level-0 ``(width, height)``.
    mpp : (float, float) or None
        µm per level-0 pixel as the slide records it.
    settings : FieldSettings
    footprint : (float, float)
        Level-0 ``(width, height)`` of a field.
    downsample : float
        Level-0 pixels per heatmap pixel.
    probs : ndarray of shape (C, H, W), float32
        Blended class probabilities; 0 where no field was classified.
    attention : ndarray of shape (H, W), float32
        Blended attention in [0, 1]; 0 where no field was classified.
    coverage : ndarray of shape (H, W), bool
        Where at least one field contributes.
    tissue : ndarray of shape (H, W), bool
        The tissue mask at the heatmap's resolution.
    fields : list of FieldResult
    attention_kind : {"roi", "gradcam"}
    seconds : float
        Wall time of the sweep.
    options : SlideOptions
    origin : (int, int)
        Level-0 pixel at QuPath's image origin (:attr:`~gusa_core.slides.reader.Slide.qupath_origin`):
        the GeoJSON written for QuPath is shifted by it.
    """

    path: Path
    class_names: list[str]
    dimensions: tuple[int, int]
    mpp: tuple[float, float] | None
    settings: FieldSettings
    footprint: tuple[float, float]
    downsample: float
    probs: np.ndarray
    attention: np.ndarray
    coverage: np.ndarray
    tissue: np.ndarray
    fields: list[FieldResult] = field(default_factory=list)
    attention_kind: str = "roi"
    seconds: float = 0.0
    options: SlideOptions = field(default_factory=SlideOptions)
    origin: tuple[int, int] = (0, 0)

    @property
    def valid(self) -> np.ndarray:
        """``(H, W)`` bool: where the heatmaps mean something (a field covers it and it is tissue)."""
        return self.coverage & self.tissue

    @property
    def label_map(self) -> np.ndarray:
        """``(H, W)`` int16: the most probable class where covered, -1 elsewhere."""
        out = np.argmax(self.probs, axis=0).astype(np.int16)
        out[~self.coverage] = -1
        return out

    def summary(self) -> dict:
        """Per-slide numbers: tissue and per-class areas in mm², the predicted class, the top fields.

        Areas count heatmap pixels that are tissue and covered by a field, by their most probable
        class. On a slide that records no pixel size, the slide is taken to be scanned at the
        field's pixel size (``area_assumed`` is True).
        """
        mpp = self.mpp or (self.settings.mpp, self.settings.mpp)
        px_mm2 = (self.downsample * mpp[0] / 1000.0) * (self.downsample * mpp[1] / 1000.0)
        labels = self.label_map
        counted = self.valid
        areas = {name: float(np.count_nonzero(counted & (labels == k)) * px_mm2) for k, name in enumerate(self.class_names)}
        predicted = max(areas, key=areas.get) if self.fields and any(areas.values()) else ""
        top = {}
        for k, name in enumerate(self.class_names):
            best = sorted(self.fields, key=lambda f: -float(f.probs[k]))[: self.options.top_k]
            top[name] = [{"box": list(f.box), "prob": float(f.probs[k])} for f in best]
        mean_probs = np.mean([f.probs for f in self.fields], axis=0) if self.fields else np.zeros(len(self.class_names))
        return {
            "slide": self.path.name,
            "path": str(self.path),
            "width": int(self.dimensions[0]),
            "height": int(self.dimensions[1]),
            "mpp": None if self.mpp is None else [float(v) for v in self.mpp],
            "qupath_origin": [int(v) for v in self.origin],
            "area_assumed": self.mpp is None,
            "field_size": list(self.settings.size),
            "field_mpp": self.settings.mpp,
            "field_source": self.settings.source,
            "overlap": self.options.overlap,
            "fields": len(self.fields),
            "heatmap_downsample": self.downsample,
            "tissue_mm2": float(np.count_nonzero(self.tissue) * px_mm2),
            "area_mm2": areas,
            "predicted": predicted,
            "mean_probs": {name: float(p) for name, p in zip(self.class_names, mean_probs)},
            "attention_kind": self.attention_kind,
            "top_fields": top,
            "seconds": round(self.seconds, 3),
        }


# ------------------------------------------------------------------ settings
def field_settings(metas: list[dict]) -> FieldSettings:
    """The field a run was trained on, from its fold models' ``model.json`` dicts.

    A run trained on slide fields (its training ids name fields, ``slide@x,y,w,h``) records
    the field's size and pixel size in its training settings; a run trained on patch images
    only is given the BACH field, and :attr:`FieldSettings.source` says so.
    """
    for meta in metas:
        training = meta.get("training") or {}
        ids = list(meta.get("train_ids") or []) + list(meta.get("validation_ids") or [])
        from_slides = any(parse_field_id(str(i)) is not None for i in ids)
        if from_slides and training.get("field_mpp") and training.get("field_size"):
            size = tuple(int(v) for v in training["field_size"])
            return FieldSettings((size[0], size[1]), float(training["field_mpp"]), "run")
    return FieldSettings()


def _heatmap_downsample(dims, footprint, mpp, options: SlideOptions) -> float:
    if options.heatmap_mpp:
        if mpp is None:
            raise GusaError("--heatmap-mpp needs a slide that records its pixel size")
        ds = float(options.heatmap_mpp) / float(max(mpp))
    else:
        ds = footprint[0] / 16.0
    return max(ds, max(dims) / float(options.max_heatmap_side), 1.0)


def _tent(h: int, w: int) -> np.ndarray:
    """A separable tent window, 1 at the centre and small (not 0) at the edges."""

    def one(n):
        t = (np.arange(n, dtype=np.float32) + 0.5) / n
        return 1.0 - np.abs(2.0 * t - 1.0) * 0.9

    return np.outer(one(h), one(w)).astype(np.float32)


# --------------------------------------------------------------------- sweep
def iter_predict_slide(
    predictor,
    path,
    *,
    options: SlideOptions | None = None,
    settings: FieldSettings | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Iterator[dict]:
    """Sweep one slide, yielding progress records; the last record holds the result.

    Parameters
    ----------
    predictor : gusa_core.inference.Predictor
    path : path-like
        A slide (or a flat image, read as a one-level slide).
    options : SlideOptions, optional
    settings : FieldSettings, optional
        Default: :func:`field_settings` of the predictor's models.
    should_stop : callable, optional
        Polled between batches; when it returns True the sweep ends without a result.

    Yields
    ------
    record : dict
        ``{"stage": "tissue", "fields": n}`` once the fields are laid out, then
        ``{"stage": "fields", "done": i, "total": n, "fields_per_s": r}`` after each batch, and
        finally ``{"stage": "done", "result": SlideResult}`` (or ``{"stage": "stopped"}``).

    Raises
    ------
    ImageReadError
        The slide cannot be opened or a field cannot be decoded.
    """
    options = options or SlideOptions()
    settings = settings or field_settings(predictor.metas)
    t0 = time.perf_counter()
    with open_slide(path) as slide:
        dims = slide.dimensions
        footprint = field_footprint(slide.mpp, field_size=settings.size, field_mpp=settings.mpp)
        fw, fh = max(1, round(footprint[0])), max(1, round(footprint[1]))
        thumb = slide.get_thumbnail(options.thumbnail_size)
        tmask = detect_tissue(thumb)
        tds = (dims[0] / tmask.shape[1], dims[1] / tmask.shape[0])
        boxes = []
        for box in field_grid(dims, (fw, fh), overlap=options.overlap):
            frac = tissue_fraction(tmask, box, tds)
            if frac >= options.min_tissue and frac > 0:
                boxes.append((box, frac))
        ds = _heatmap_downsample(dims, footprint, slide.mpp, options)
        hh, hw = max(1, math.ceil(dims[1] / ds)), max(1, math.ceil(dims[0] / ds))
        n_classes = len(predictor.class_names)
        acc = np.zeros((n_classes, hh, hw), np.float32)
        att = np.zeros((hh, hw), np.float32)
        weight = np.zeros((hh, hw), np.float32)
        yield {"stage": "tissue", "fields": len(boxes), "path": str(path)}
        in_size = tuple(int(v) for v in predictor.input_size)

        def load(box):
            return predictor.prepare(slide.read_field(box, in_size))

        results: list[FieldResult] = []
        window = max(1, options.batch_size) * 2  # fields read ahead of the network
        t_fields = time.perf_counter()
        with ThreadPoolExecutor(max_workers=max(1, options.readers), thread_name_prefix="gusa-slide") as pool:
            pending: deque = deque()
            it = iter(boxes)

            def fill():
                while len(pending) < window:
                    nxt = next(it, None)
                    if nxt is None:
                        return
                    pending.append((nxt, pool.submit(load, nxt[0])))

            def batches():
                fill()
                while pending:
                    batch = [pending.popleft() for _ in range(min(options.batch_size, len(pending)))]
                    fill()
                    yield batch, [fut.result() for _, fut in batch]

            sweep = OneAhead(batches(), lambda _batch, prepared: predictor.submit_prepared(prepared), should_stop)
            try:
                with contextlib.closing(iter(sweep)) as done_batches:
                    for batch, preds in done_batches:
                        for ((box, frac), _), pred in zip(batch, preds):
                            results.append(_blend(acc, att, weight, box, frac, pred, ds))
                        done = len(results)
                        rate = done / max(1e-9, time.perf_counter() - t_fields)
                        yield {"stage": "fields", "done": done, "total": len(boxes), "fields_per_s": rate,
                               "path": str(path)}
            finally:
                for _, fut in pending:
                    fut.cancel()
        if sweep.stopped:
            yield {"stage": "stopped", "path": str(path)}
            return
    coverage = weight > 0
    np.divide(acc, weight, out=acc, where=coverage)
    np.divide(att, weight, out=att, where=coverage)
    tissue = _sample_mask(tmask, tds, ds, (hh, hw), dims)
    result = SlideResult(
        path=Path(path), class_names=list(predictor.class_names), dimensions=tuple(dims),
        mpp=None if slide.mpp is None else tuple(float(v) for v in slide.mpp), settings=settings,
        footprint=(float(footprint[0]), float(footprint[1])), downsample=float(ds), probs=acc, attention=att,
        coverage=coverage, tissue=tissue, fields=results, attention_kind=predictor.attention_kind,
        seconds=time.perf_counter() - t0, options=options, origin=tuple(int(v) for v in slide.qupath_origin),
    )
    yield {"stage": "done", "result": result, "path": str(path)}


def _sample_mask(mask: np.ndarray, mask_ds, ds: float, shape, dims) -> np.ndarray:
    """The mask at heatmap resolution: each heatmap pixel takes the mask pixel under its centre (False off the slide)."""
    hh, hw = shape
    ys = (np.arange(hh) + 0.5) * ds
    xs = (np.arange(hw) + 0.5) * ds
    rows = np.minimum((ys / mask_ds[1]).astype(np.int64), mask.shape[0] - 1)
    cols = np.minimum((xs / mask_ds[0]).astype(np.int64), mask.shape[1] - 1)
    out = mask[rows][:, cols].copy()
    out[ys >= dims[1], :] = False
    out[:, xs >= dims[0]] = False
    return out


def _blend(acc, att, weight, box, frac, pred, ds) -> FieldResult:
    """Add one field's probabilities and attention, tent-weighted, to the heatmaps."""
    x, y, w, h = box
    hh, hw = weight.shape
    c0, r0 = int(math.floor(x / ds)), int(math.floor(y / ds))
    c1, r1 = min(hw, int(math.ceil((x + w) / ds))), min(hh, int(math.ceil((y + h) / ds)))
    if c1 > c0 and r1 > r0:
        win = _tent(r1 - r0, c1 - c0)
        a = pred.attention_at((r1 - r0, c1 - c0))
        weight[r0:r1, c0:c1] += win
        att[r0:r1, c0:c1] += win * a
        for k, p in enumerate(pred.probs):
            acc[k, r0:r1, c0:c1] += win * np.float32(p)
    mean_att = float(np.mean(pred.attention_lowres)) if pred.attention_lowres is not None else float("nan")
    return FieldResult(tuple(int(v) for v in box), float(frac), np.asarray(pred.probs, np.float64), mean_att)


def predict_slide(predictor, path, **kwargs) -> SlideResult:
    """Sweep one slide and return its :class:`SlideResult` (see :func:`iter_predict_slide`)."""
    for rec in iter_predict_slide(predictor, path, **kwargs):
        if rec["stage"] == "done":
            return rec["result"]
    raise GusaError(f"{path}: the sweep was stopped")
