"""What the predictor found (:class:`Prediction`), and writing it: CSV rows and attention overlays.

The one number format (:data:`PROB_FORMAT`) and the one CSV layout live here,
so the app's "Export CSV" and ``gusa predict --csv`` agree to the last digit.
Nothing here imports torch.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import atomic_write, atomic_write_text
from ..errors import GusaError

__all__ = [
    "Prediction",
    "PROB_FORMAT",
    "format_prob",
    "upsample_map",
    "predictions_csv_text",
    "write_predictions_csv",
    "overlay_attention",
    "write_attention_png",
    "unique_stem",
]

#: The one number format of probabilities and fractions, wherever they are written.
PROB_FORMAT = "{:.6f}"


def format_prob(value: float | None) -> str:
    """Format a probability or a fraction the way every output of gusa writes it."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return PROB_FORMAT.format(float(value))


def upsample_map(maps: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear up-sampling of one (h, w) map to ``shape = (H, W)`` (half-pixel centres)."""
    import cv2

    h, w = shape
    m = np.ascontiguousarray(maps, dtype=np.float32)
    if m.shape == (h, w):
        return m.copy()
    out = cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.clip(out, 0.0, 1.0, out=out)


# ---------------------------------------------------------------- outputs
@dataclass(eq=False)
class Prediction:
    """The prediction for one image.

    Attributes
    ----------
    class_names : list of str
    probs : ndarray of shape (C,)
        Softmax probabilities (mean over the folds of an ensemble).
    index : int
        Argmax of ``probs`` (eq. 5).
    label : str
        ``class_names[index]``.
    attention_kind : {"roi", "gradcam"}
        ỹ of the RoI branch, or Grad-CAM of the predicted class.
    roi_fraction : float
        Share of the image where the attention map, bilinearly up-sampled to
        the network's input size, is above 0.5.
    path : str or None
        The file, when the image came from one.
    attention_lowres : ndarray of shape (M, N), float32
        The map at the network's output resolution (stride 16).
    image_shape : tuple of int
        ``(H, W)`` of the image that was classified.

    Notes
    -----
    :attr:`attention` (the map at the image's full resolution, 12 MB for a
    BACH image) is up-sampled on first use only: a folder run that writes no
    overlay never pays for it, and a preview can ask :meth:`attention_at` for
    the size it shows.
    """

    class_names: list[str]
    probs: np.ndarray
    index: int
    label: str
    attention_kind: str
    roi_fraction: float
    path: str | None = None
    attention_lowres: np.ndarray | None = field(default=None, repr=False)
    image_shape: tuple[int, int] | None = None
    _attention: np.ndarray | None = field(default=None, repr=False)

    @property
    def attention(self) -> np.ndarray:
        """The attention map at the image's resolution, ``(H, W)`` float32 in [0, 1]."""
        if self._attention is None:
            self._attention = upsample_map(self.attention_lowres, self.image_shape)
        return self._attention

    def attention_at(self, shape: tuple[int, int]) -> np.ndarray:
        """The attention map up-sampled (bilinearly) to ``shape = (H, W)``."""
        if self._attention is not None and self._attention.shape == tuple(shape):
            return self._attention
        return upsample_map(self.attention_lowres, shape)

    def probs_dict(self) -> dict[str, float]:
        """``{class: probability}``."""
        return {name: float(p) for name, p in zip(self.class_names, self.probs)}



def predictions_csv_text(records: Iterable[dict], class_names: Sequence[str]) -> str:
    """The CSV text of :func:`write_predictions_csv`."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["path", "predicted"] + [f"prob_{c}" for c in class_names] + ["roi_fraction", "error"])
    for rec in records:
        probs = rec.get("probs") or {}
        writer.writerow(
            [rec.get("path", ""), rec.get("predicted") or ""]
            + [format_prob(probs.get(c)) if probs else "" for c in class_names]
            + [format_prob(rec.get("roi_fraction")), rec.get("error") or ""]
        )
    return buf.getvalue()


def write_predictions_csv(path, records: Iterable[dict], class_names: Sequence[str]) -> Path:
    """Write prediction records as CSV, atomically.

    Columns: ``path, predicted, prob_<class>... , roi_fraction, error``;
    numbers as :func:`format_prob` writes them (six decimals), empty where a
    file could not be classified.

    Parameters
    ----------
    path : path-like
    records : iterable of dict
        Records of :func:`classify_paths`.
    class_names : sequence of str

    Returns
    -------
    Path
    """
    return atomic_write_text(path, predictions_csv_text(records, class_names))


def overlay_attention(image: np.ndarray, attention: np.ndarray, *, colormap: str = "jet", alpha: float = 0.45) -> np.ndarray:
    """Blend an attention map over an image with a matplotlib colour map.

    Parameters
    ----------
    image : ndarray of shape (H, W, 3), uint8
        Not modified.
    attention : ndarray of shape (h, w)
        Values in [0, 1]; resized bilinearly to (H, W) when it differs.
    colormap : str
        Any matplotlib colour map name.
    alpha : float
        Weight of the colour map (0: the image only, 1: the map only).

    Returns
    -------
    ndarray of shape (H, W, 3), uint8
    """
    from matplotlib import colormaps

    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got {image.shape}")
    att = np.asarray(attention, dtype=np.float32)
    if att.shape != image.shape[:2]:
        att = upsample_map(att, image.shape[:2])
    lut = (colormaps[colormap](np.linspace(0.0, 1.0, 256))[:, :3] * 255.0).astype(np.float32)
    idx = np.clip(np.rint(np.nan_to_num(att) * 255.0), 0, 255).astype(np.uint8)
    colour = lut[idx]
    out = (1.0 - alpha) * image.astype(np.float32) + alpha * colour
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def write_attention_png(path, image: np.ndarray, attention: np.ndarray, **kwargs) -> Path:
    """Write :func:`overlay_attention` of ``image`` as a PNG, atomically."""
    import cv2

    rgb = overlay_attention(image, attention, **kwargs)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise GusaError(f"cannot encode the attention overlay for {path}")
    data = buf.tobytes()

    def _write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    return atomic_write(path, _write)


# -------------------------------------------------------------------- CLI
def unique_stem(path: Path, used: set[str]) -> str:
    stem = path.stem
    name, k = stem, 1
    while name in used:
        k += 1
        name = f"{stem}-{k}"
    used.add(name)
    return name
