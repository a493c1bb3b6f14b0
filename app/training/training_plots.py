"""Live training curves for the training panel.

:class:`TrainingCurvesWidget` draws one pyqtgraph plot per metric (loss,
accuracy, validation RoI IoU), one colour per fold, training solid and
validation dashed. The remaining-time estimate is
:class:`gusa_core.training.eta.EtaEstimator`.
"""

from __future__ import annotations

import math

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

__all__ = ["FOLD_COLORS", "TrainingCurvesWidget", "format_duration"]

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
