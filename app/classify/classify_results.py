"""The classify-folder job and its results table: one generator run in a worker, one Qt table model.

:func:`classify_job` yields a record per image (thumbnail and attention
preview made in the worker); :class:`ClassifyResultsModel` holds them for the
table of :class:`~app.classify.classify_dialog.ClassifyFolderDialog`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QSortFilterProxyModel, Qt
from PySide6.QtGui import QColor, QPixmap

from app.workspace.canvas_image import numpy_to_qimage

__all__ = ["ClassifyResultsModel", "classify_job", "THUMB_SIZE", "PREVIEW_WIDTH"]

THUMB_SIZE = 64
PREVIEW_WIDTH = 480


def _small(image: np.ndarray, width: int) -> np.ndarray:
    import cv2

    h, w = image.shape[:2]
    scale = min(1.0, width / max(w, 1))
    if scale >= 1.0:
        return np.ascontiguousarray(image)
    return cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def classify_job(run_dir, fold, paths, *, attention_dir=None, colormap="jet", predictor_factory=None):
    """The worker's generator: a ``("classes", names)`` item, then one record per image.

    Records are those of :func:`gusa_core.inference.classify_paths` without the
    full-size image and attention map (a folder can hold hundreds of BACH
    images); ``thumbnail`` and ``preview`` (the attention overlay, at most
    ``PREVIEW_WIDTH`` wide) are added for the table. With ``attention_dir``
    the full-resolution overlay is written there as ``<stem>_attention.png``,
    as ``gusa predict --attention-dir`` does.
    """
    from gusa_core.inference import Predictor, classify_paths
    from gusa_core.inference.outputs import overlay_attention, unique_stem, write_attention_png

    factory = predictor_factory or Predictor.from_run
    predictor = factory(run_dir, fold=fold, device="auto")
    yield ("classes", list(predictor.class_names), predictor.attention_kind)
    used: set[str] = set()
    att_dir = Path(attention_dir) if attention_dir else None
    # Batches of one: the worker closes this generator between two yields, so a
    # Cancel is honoured within one image.
    for rec in classify_paths(predictor, paths, batch_size=1, keep_images=True):
        image = rec.pop("image", None)
        pred = rec.pop("prediction", None)
        if image is not None:
            rec["thumbnail"] = _small(image, THUMB_SIZE)
        if pred is not None:
            small = _small(image, PREVIEW_WIDTH)
            rec["preview"] = overlay_attention(small, pred.attention_at(small.shape[:2]), colormap=colormap)
            if att_dir is not None:
                name = unique_stem(Path(rec["path"]), used)
                write_attention_png(att_dir / f"{name}_attention.png", image, pred.attention, colormap=colormap)
        yield rec


class ClassifyResultsModel(QAbstractTableModel):
    """One row per classified file: thumbnail, name, predicted class, probabilities, RoI fraction, error."""

    FIXED = ("", "file", "predicted", "confidence")

    def __init__(self, parent=None):
        super().__init__(parent)
        self.class_names: list[str] = []
        self.records: list[dict] = []
        self._thumbs: list[QPixmap | None] = []

    def reset(self, class_names) -> None:
        self.beginResetModel()
        self.class_names = list(class_names)
        self.records = []
        self._thumbs = []
        self.endResetModel()

    def add(self, rec: dict) -> None:
        row = len(self.records)
        self.beginInsertRows(QModelIndex(), row, row)
        self.records.append(rec)
        thumb = rec.get("thumbnail")
        self._thumbs.append(QPixmap.fromImage(numpy_to_qimage(thumb)) if thumb is not None else None)
        self.endInsertRows()

    def columns(self) -> list[str]:
        return list(self.FIXED) + [f"p({c})" for c in self.class_names] + ["RoI fraction", "error"]

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: N802 - Qt API
        return 0 if parent.isValid() else len(self.records)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.columns())

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.columns()[section]
        return None

    @staticmethod
    def confidence(rec: dict) -> float | None:
        probs = rec.get("probs")
        return max(probs.values()) if probs else None

    def sort_value(self, row: int, col: int):
        rec = self.records[row]
        n = len(self.class_names)
        if col == 1:
            return Path(rec["path"]).name.lower()
        if col == 2:
            return rec.get("predicted") or "~"
        if col == 3:
            return self.confidence(rec) or -1.0
        if 4 <= col < 4 + n:
            return (rec.get("probs") or {}).get(self.class_names[col - 4], -1.0)
        if col == 4 + n:
            v = rec.get("roi_fraction")
            return -1.0 if v is None else v
        if col == 5 + n:
            return rec.get("error") or ""
        return row

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        rec = self.records[index.row()]
        col = index.column()
        n = len(self.class_names)
        if role == Qt.ItemDataRole.DecorationRole and col == 0:
            return self._thumbs[index.row()]
        if role == Qt.ItemDataRole.ToolTipRole:
            return rec.get("error") or rec["path"]
        if role == Qt.ItemDataRole.ForegroundRole and rec.get("error"):
            return QColor(200, 40, 40)
        if role == Qt.ItemDataRole.TextAlignmentRole and col >= 3 and col < 5 + n:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.UserRole:
            return self.sort_value(index.row(), col)
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if col == 1:
            return Path(rec["path"]).name
        if col == 2:
            return rec.get("predicted") or "—"
        if col == 3:
            c = self.confidence(rec)
            return "" if c is None else f"{c:.3f}"
        if 4 <= col < 4 + n:
            probs = rec.get("probs")
            return "" if not probs else f"{probs[self.class_names[col - 4]]:.3f}"
        if col == 4 + n:
            v = rec.get("roi_fraction")
            return "" if v is None else f"{v:.3f}"
        if col == 5 + n:
            return rec.get("error") or ""
        return None


class _ResultsFilter(QSortFilterProxyModel):
    """Filter by predicted class (or errors only) and minimum confidence; sort by value."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setSortRole(Qt.ItemDataRole.UserRole)
        self.klass: str | None = None  # None: all; "__errors__": errors only
        self.min_confidence = 0.0

    def set_filter(self, klass, min_confidence: float) -> None:
        self.klass = klass
        self.min_confidence = float(min_confidence)
        self.invalidateFilter()

    def filterAcceptsRow(self, row, parent):  # noqa: N802 - Qt API
        rec = self.sourceModel().records[row]
        if self.klass == "__errors__":
            return bool(rec.get("error"))
        if self.klass is not None and rec.get("predicted") != self.klass:
            return False
        if self.min_confidence > 0:
            c = ClassifyResultsModel.confidence(rec)
            return c is not None and c >= self.min_confidence
        return True
