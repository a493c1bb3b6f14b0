"""Live training curves and an honest time estimate for the training panel.

:class:`TrainingCurvesWidget` draws one pyqtgraph plot per metric (loss,
accuracy, validation RoI IoU), one colour per fold, training solid and
validation dashed. :class:`EtaEstimator` turns measured batch and validation
times into a remaining-time estimate; it is plain Python so it can be tested
without a window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

__all__ = ["FOLD_COLORS", "TrainingCurvesWidget", "EtaEstimator", "format_duration"]

#: Colour of each fold's curves (cycled past 8 folds).
FOLD_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")

# (plot title, y label, [(record key, series label, dashed)])
_PLOTS = (
    ("Loss", "loss", (("train_loss", "train", False), ("val_loss", "val", True))),
    ("Accuracy", "accuracy", (("train_acc", "train", False), ("val_acc", "val", True))),
    ("Validation RoI IoU", "IoU", (("val_miou", "val", True),)),
)


def format_duration(seconds: float) -> str:
    """``"45 s"``, ``"3 min 05 s"``, ``"2 h 10 min"``."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, sec = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class TrainingCurvesWidget(QWidget):
    """Per-epoch curves of training/validation loss, accuracy and RoI IoU."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        pg.setConfigOptions(antialias=True)
        self._view = pg.GraphicsLayoutWidget()
        self._view.setBackground("w")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._view, 1)
        self._view.setMinimumHeight(3 * 130)
        # One legend for all plots, as text: the plots are narrow in a dock.
        self.legend = QLabel()
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        self.legend.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(self.legend)
        self._folds_seen: set[int] = set()
        self._update_legend()
        self.plots: dict[str, pg.PlotItem] = {}
        # one plot a row: side by side, three plots in a dock's width crowd their ticks into each other
        for row, (title, ylabel, _series) in enumerate(_PLOTS):
            plot = self._view.addPlot(row=row, col=0, title=title)
            plot.showGrid(x=True, y=True, alpha=0.25)
            plot.setLimits(xMin=0)
            plot.setLabel("bottom", "epoch")
            plot.setLabel("left", ylabel)
            if ylabel in ("accuracy", "IoU"):
                plot.setYRange(0, 1, padding=0.02)
            self.plots[title] = plot
        self._curves: dict[tuple[str, int, str], pg.PlotDataItem] = {}
        self._data: dict[tuple[str, int, str], tuple[list[float], list[float]]] = {}
        self.clear()  # the axes start at epoch 1

    def clear(self) -> None:
        """Remove every curve (a new run starts)."""
        for plot in self.plots.values():
            plot.clear()
        self._curves.clear()
        self._data.clear()
        self._folds_seen.clear()
        self._update_legend()
        for plot in self.plots.values():  # forget the previous run's axes
            plot.getAxis("bottom").setTickSpacing(major=1, minor=1)  # whole epochs
            plot.setXRange(1, 2, padding=0.05)
        for title, ylabel, _series in _PLOTS:
            if ylabel in ("accuracy", "IoU"):
                self.plots[title].setYRange(0, 1, padding=0.02)
            else:
                self.plots[title].enableAutoRange(axis="y")

    def _update_legend(self) -> None:
        folds = " ".join(f'<span style="color:{FOLD_COLORS[f % len(FOLD_COLORS)]}">■ fold {f + 1}</span>'
                         for f in sorted(self._folds_seen))
        self.legend.setText(f"<span>━ train &nbsp; ╍ validation</span> &nbsp;&nbsp; {folds}")

    def add_epoch(self, rec: dict) -> None:
        """Add one epoch record (``fold`` from 0, ``epoch`` from 1, metric keys; missing metrics are skipped)."""
        fold = int(rec.get("fold", 0))
        epoch = int(rec.get("epoch", 1))  # gusa_core counts epochs from 1
        color = FOLD_COLORS[fold % len(FOLD_COLORS)]
        if fold not in self._folds_seen:
            self._folds_seen.add(fold)
            self._update_legend()
        for title, _ylabel, series in _PLOTS:
            for key, label, dashed in series:
                value = rec.get(key)
                if value is None:
                    continue
                try:
                    value = float(value)
                except (TypeError, ValueError):
                    continue
                if not math.isfinite(value):
                    continue
                self._append(title, fold, key, f"fold {fold + 1} {label}", color, dashed, epoch, value)
        # integer epochs on the axis while there are few of them
        last = max((xs[-1] for xs, _ys in self._data.values() if xs), default=1)
        for plot in self.plots.values():
            axis = plot.getAxis("bottom")
            if last <= 20:
                axis.setTickSpacing(major=max(1, math.ceil(last / 5)), minor=1)
            else:
                axis.setTickSpacing()
            plot.setXRange(1, max(2, last), padding=0.05)  # epochs count from 1: never a tick at 0 or below

    def _append(self, title, fold, key, name, color, dashed, x, y) -> None:
        ident = (title, fold, key)
        xs, ys = self._data.setdefault(ident, ([], []))
        if xs and xs[-1] == x:  # a resumed run may repeat an epoch: keep the newest value
            xs.pop()
            ys.pop()
        xs.append(x)
        ys.append(y)
        curve = self._curves.get(ident)
        if curve is None:
            style = Qt.PenStyle.DashLine if dashed else Qt.PenStyle.SolidLine
            pen = pg.mkPen(color=color, width=2, style=style)
            curve = self.plots[title].plot([], [], pen=pen, symbol="o", symbolSize=5,
                                           symbolBrush=color, symbolPen=color, name=name)
            self._curves[ident] = curve
        curve.setData(xs, ys)

    def points(self, title: str) -> int:
        """Number of points drawn in the plot ``title`` (for tests)."""
        return sum(len(xs) for (t, _f, _k), (xs, _ys) in self._data.items() if t == title)


@dataclass
class EtaEstimator:
    """Remaining time of a run from measured batch and validation times.

    Feed it every ``on_batch_end`` record (with the wall time between this
    batch and the previous event) and every epoch end (with the validation
    time measured after the last batch). The estimate is
    ``remaining training batches × mean batch time + remaining validations ×
    validation time``; until a validation has been measured, a validation is
    assumed to cost its images at a third of the training time per image
    (a forward pass without a backward pass). Returns ``None`` until two
    batches have been measured.

    Parameters
    ----------
    folds, epochs : int
        Size of the run.
    batches : int
        Training batches per epoch (updated from the records).
    batch_size : int
    val_images : int
        Validation images per epoch (0 when unknown).
    """

    folds: int = 1
    epochs: int = 1
    batches: int = 1
    batch_size: int = 1
    val_images: int = 0
    _batch_times: list[float] = field(default_factory=list)
    _val_times: list[float] = field(default_factory=list)
    _done_batches: int = 0
    _done_vals: int = 0

    #: Measured batches kept for the mean (recent ones describe the present speed).
    WINDOW = 50

    def add_batch(self, done_batches: int, seconds: float | None, *, batches: int | None = None) -> None:
        """A training batch ended.

        Parameters
        ----------
        done_batches : int
            Training batches done in the whole run so far, this one included
            (a resumed run starts past zero).
        seconds : float or None
            Wall time of this batch; ``None`` when not measurable (the first
            batch after a resume or a fold start includes set-up time).
        batches : int, optional
            Batches per epoch, when the record tells it.
        """
        if batches:
            self.batches = max(1, int(batches))
        if seconds is not None and seconds > 0:
            self._batch_times.append(float(seconds))
            del self._batch_times[: -self.WINDOW]
        self._done_batches = int(done_batches)

    def add_validation(self, done_vals: int, seconds: float | None) -> None:
        """A validation ended; ``done_vals`` validations are done in the run so far."""
        if seconds is not None and seconds > 0:
            self._val_times.append(float(seconds))
        self._done_vals = int(done_vals)

    @property
    def measured_batches(self) -> int:
        return len(self._batch_times)

    @property
    def batch_seconds(self) -> float | None:
        """Mean measured time of a training batch."""
        times = self._batch_times
        return sum(times) / len(times) if times else None

    @property
    def validation_seconds(self) -> float:
        """Measured (or, before the first validation, estimated) time of one validation."""
        if self._val_times:
            recent = self._val_times[-3:]
            return sum(recent) / len(recent)
        per_batch = self.batch_seconds or 0.0
        return self.val_images * per_batch / max(1, self.batch_size) / 3.0

    @property
    def total_batches(self) -> int:
        return self.folds * self.epochs * self.batches

    def remaining_seconds(self) -> float | None:
        """Estimated seconds left in the whole run, or ``None`` while estimating."""
        if self.measured_batches < 2 or self.batch_seconds is None:
            return None
        left_batches = max(0, self.total_batches - self._done_batches)
        left_vals = max(0, self.folds * self.epochs - self._done_vals) if self.val_images or self._val_times else 0
        return left_batches * self.batch_seconds + left_vals * self.validation_seconds

    def text(self) -> str:
        """``"about 3 min 05 s left"`` or ``"estimating…"``."""
        left = self.remaining_seconds()
        if left is None:
            return "estimating…"
        return f"about {format_duration(left)} left"
