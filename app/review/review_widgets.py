"""Prediction jobs and the probability bars of the review panel.

Split out of :mod:`app.review.review_panel` so the panel file holds only the panel:
``predict_one`` and ``predict_many`` are the jobs the panel (and
:mod:`app.review.compare_view`) run in worker threads, and
:class:`ProbabilityBarsWidget` draws one bar per class. All three are
re-exported from :mod:`app.review.review_panel`. Torch is imported only inside the
jobs (through the predictor), never at import time.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QPainter
from PySide6.QtWidgets import QSizePolicy, QWidget

from gusa_core import DEFAULT_CLASS_COLORS

from app.review.prediction_cache import PredictionCache, PredictorCache

__all__ = ["ProbabilityBarsWidget", "predict_one", "predict_many"]


# ------------------------------------------------------------------ jobs (worker threads)
def predict_one(predictors: PredictorCache, cache: PredictionCache, key, image_path, run_dir, fold, device="auto"):
    """Read one image, predict it with the cached predictor, store the result; returns ``(key, prediction)``.

    Runs in a worker thread.
    """
    from gusa_core.imageio import read_image

    predictor = predictors.get(run_dir, fold, device)
    prediction = predictor.predict_image(read_image(image_path))
    cache.put(key, prediction)
    return key, prediction


def predict_many(predictors: PredictorCache, cache: PredictionCache, items, run_dir, fold, device="auto"):
    """Generator job of "Predict all": yields ``(image_id, label, probs, error)`` per image.

    ``items`` is a list of ``(image_id, image_path, key)``; cached results are
    reused. An unreadable image yields its error message instead of stopping the loop.
    """
    from gusa_core.imageio import read_image

    predictor = None
    for image_id, path, key in items:
        summary = cache.summary(key)
        if summary is not None:
            yield image_id, summary[0], summary[1], None
            continue
        try:
            if predictor is None:
                predictor = predictors.get(run_dir, fold, device)
            prediction = predictor.predict_image(read_image(path))
        except Exception as exc:  # noqa: BLE001 - reported per image
            from app.base.workers import error_message

            yield image_id, None, None, error_message(exc)
            continue
        cache.put(key, prediction)
        yield image_id, prediction.label, np.asarray(prediction.probs), None


# ------------------------------------------------------------------ widgets
class ProbabilityBarsWidget(QWidget):
    """Horizontal bars, one per class, in the class colours, with the probability written beside."""

    ROW_HEIGHT = 22

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._names: list[str] = []
        self._values: list[float] = []
        self._colors: dict[str, tuple[int, int, int]] = {}
        self._highlight: int | None = None
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMinimumWidth(160)
        self._update_height()

    def set_probabilities(self, names, values, colors: dict | None = None, highlight: int | None = None) -> None:
        """Show ``values`` (one per class in ``names``); ``highlight`` is the predicted index."""
        self._names = [str(n) for n in names]
        self._values = [float(v) for v in values]
        self._colors = dict(colors or {})
        self._highlight = highlight
        self._update_height()
        self.update()

    def clear(self) -> None:
        """Show no bars."""
        self.set_probabilities([], [])

    def values(self) -> dict[str, float]:
        """The shown probabilities, class name → value."""
        return dict(zip(self._names, self._values))

    def _update_height(self) -> None:
        self.setFixedHeight(max(1, len(self._names)) * self.ROW_HEIGHT + 4)

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt API
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        fm = painter.fontMetrics()
        name_w = max([fm.horizontalAdvance(n) for n in self._names] + [40]) + 8
        value_w = fm.horizontalAdvance("100.0%") + 8
        bar_w = max(10, self.width() - name_w - value_w - 4)
        if not self._names:
            painter.setPen(pal.color(pal.ColorRole.PlaceholderText))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "no prediction")
            return
        for i, (name, value) in enumerate(zip(self._names, self._values)):
            top = 2 + i * self.ROW_HEIGHT
            h = self.ROW_HEIGHT - 6
            font = QFont(painter.font())
            font.setBold(i == self._highlight)
            painter.setFont(font)
            painter.setPen(pal.color(pal.ColorRole.WindowText))
            painter.drawText(QRectF(0, top, name_w - 6, h), Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, name)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(pal.color(pal.ColorRole.AlternateBase).darker(110))
            painter.drawRoundedRect(QRectF(name_w, top, bar_w, h), 3, 3)
            rgb = self._colors.get(name, DEFAULT_CLASS_COLORS.get(name, (120, 120, 120)))
            painter.setBrush(QColor(*rgb))
            painter.drawRoundedRect(QRectF(name_w, top, bar_w * min(max(value, 0.0), 1.0), h), 3, 3)
            painter.setPen(pal.color(pal.ColorRole.WindowText))
            painter.drawText(QRectF(name_w + bar_w + 4, top, value_w, h), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                             f"{100 * value:.1f}%")
        painter.end()

