"""Model → Evaluation report…: the paper's evaluation of a run, in the app and as HTML.

Accuracy, macro and per-class ROC AUC, ROC curves per class, the
row-normalised confusion matrix, RoI mean IoU at τ = 0.5 and the list of
misclassified images (click one to review it). The numbers come from
:func:`gusa_core.evaluation.evaluate_run` — the same as ``gusa evaluate`` —
and the HTML export is :func:`gusa_core.evaluation.report.write_html_report`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import math
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.review.run_choice import RunChooser
from app.base.dialogs import Dialogs
from app.base.workers import Worker

if TYPE_CHECKING:
    from app.shell.host import Host

__all__ = ["ReportView", "install"]

_CURVE_COLORS = [(76, 175, 80), (33, 150, 243), (255, 152, 0), (229, 57, 53), (156, 39, 176), (0, 150, 136)]


def _fmt(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}f}"


class _Progress(QObject):
    """Carries ``progress(done, total)`` from the worker thread to the GUI thread."""

    advanced = Signal(int, int)


def _calibration_text(cal: dict | None) -> str:
    if not cal:
        return ""
    t = cal.get("temperature")
    t_text = ", ".join(f"{v:.2f}" for v in t) if isinstance(t, list) else f"{float(t):.2f}"
    b, a = cal["before"], cal["after"]
    return (f"<br><b>ECE</b> {_fmt(a['ece'])} (before temperature scaling {_fmt(b['ece'])}) &nbsp; "
            f"<b>Brier</b> {_fmt(a['brier'])} (before {_fmt(b['brier'])}) &nbsp; T = {t_text}")


def _evaluate_job(run_dir, project_folder, fold, validation, progress: _Progress):
    from gusa_core.evaluation import evaluate_run

    return evaluate_run(run_dir, project_folder, fold=fold, validation=validation,
                        progress=lambda done, total: progress.advanced.emit(done, total))


class ReportView(QDialog):
    """Evaluate a run on a labelled project and show the result.

    Signals
    -------
    evaluation_finished(dict)
        The result of :func:`gusa_core.evaluation.evaluate_run`.
    evaluation_failed(str)
    image_activated(str)
        The id of a misclassified image the user clicked.
    """

    evaluation_finished = Signal(dict)
    evaluation_failed = Signal(str)
    image_activated = Signal(str)

    def __init__(self, project, parent=None, *, dialogs: Dialogs | None = None):
        super().__init__(parent)
        self.setWindowTitle("Evaluation report")
        self.dialogs = dialogs or Dialogs()
        self.resize(1150, 780)
        self.project = project
        self.result: dict | None = None
        self._worker: Worker | None = None
        self._progress = _Progress(self)
        self._progress.advanced.connect(self._on_progress_advanced)

        self.run_chooser = RunChooser(dialogs=self.dialogs)
        self.run_chooser.changed.connect(self._update_buttons)
        self.scope_validation = QRadioButton("validation images of each fold (the paper's protocol)")
        self.scope_all = QRadioButton("all labelled images of the project")
        self.scope_validation.setChecked(True)
        self.evaluate_button = QPushButton("Evaluate")
        self.evaluate_button.clicked.connect(self.start)
        self.progress = QProgressBar()
        self.progress.setFormat("%v of %m images")
        scope = QVBoxLayout()
        scope.addWidget(self.scope_validation)
        scope.addWidget(self.scope_all)
        go_row = QHBoxLayout()
        go_row.addWidget(self.evaluate_button)
        go_row.addWidget(self.progress, 1)
        form = QFormLayout()
        form.addRow("Run", self.run_chooser)
        form.addRow("Images", scope)
        form.addRow("", go_row)

        self.summary = QLabel("Choose a run and press Evaluate.")
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.summary.setWordWrap(True)
        self.auc_table = QTableWidget(0, 2)
        self.auc_table.setHorizontalHeaderLabels(["class", "ROC AUC"])
        self.auc_table.verticalHeader().hide()
        self.auc_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.confusion_table = QTableWidget(0, 0)
        self.confusion_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.confusion_table.setToolTip("Row-normalised: each row (true class) sums to 1")
        self.misclassified = QListWidget()
        self.misclassified.itemActivated.connect(self._on_misclassified_activated)
        self.misclassified.itemClicked.connect(self._on_misclassified_activated)

        import pyqtgraph as pg  # light: no torch

        self.roc_plot = pg.PlotWidget(background="w")
        self.roc_plot.setLabel("bottom", "false positive rate")
        self.roc_plot.setLabel("left", "true positive rate")
        self.roc_plot.setXRange(0, 1)
        self.roc_plot.setYRange(0, 1)
        self.roc_plot.showGrid(x=True, y=True, alpha=0.2)
        self.roc_plot.setMinimumSize(360, 320)
        self._legend = self.roc_plot.addLegend(offset=(-10, -10))

        self.reliability_plot = pg.PlotWidget(background="w")
        self.reliability_plot.setLabel("bottom", "confidence (top class)")
        self.reliability_plot.setLabel("left", "accuracy")
        self.reliability_plot.setXRange(0, 1)
        self.reliability_plot.setYRange(0, 1)
        self.reliability_plot.showGrid(x=True, y=True, alpha=0.2)
        self.reliability_plot.setMinimumSize(300, 320)
        self._reliability_legend = self.reliability_plot.addLegend(offset=(10, 10))

        conf_box = QGroupBox("Confusion matrix (rows: truth, row-normalised)")
        QVBoxLayout(conf_box).addWidget(self.confusion_table)
        auc_box = QGroupBox("ROC AUC per class")
        QVBoxLayout(auc_box).addWidget(self.auc_table)
        roc_box = QGroupBox("ROC curves (one-vs-rest)")
        QVBoxLayout(roc_box).addWidget(self.roc_plot)
        mis_box = QGroupBox("Misclassified images (click to review)")
        QVBoxLayout(mis_box).addWidget(self.misclassified)

        grid = QGridLayout()
        grid.addWidget(roc_box, 0, 0, 2, 1)
        grid.addWidget(conf_box, 0, 1)
        grid.addWidget(auc_box, 1, 1)
        rel_box = QGroupBox("Reliability diagram (before / after temperature scaling)")
        QVBoxLayout(rel_box).addWidget(self.reliability_plot)
        grid.addWidget(rel_box, 0, 2, 2, 1)
        top = QWidget()
        top.setLayout(grid)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(top)
        split.addWidget(mis_box)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)

        self.html_button = QPushButton("Export HTML…")
        self.html_button.clicked.connect(self._on_html_clicked)
        self.json_button = QPushButton("Export JSON…")
        self.json_button.clicked.connect(self._on_json_clicked)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        bottom = QHBoxLayout()
        bottom.addWidget(self.html_button)
        bottom.addWidget(self.json_button)
        bottom.addStretch(1)
        bottom.addWidget(close)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.summary)
        layout.addWidget(split, 1)
        layout.addLayout(bottom)
        self.refresh_runs()
        self._update_buttons()

    # ------------------------------------------------------------ settings
    def refresh_runs(self) -> None:
        """List the project's runs (newest first)."""
        self.run_chooser.refresh(self.project.folder if self.project is not None else None)

    def set_run(self, run_dir, fold: int | None = None) -> None:
        self.run_chooser.set_run(run_dir, fold)

    # ----------------------------------------------------------------- job
    @property
    def is_running(self) -> bool:
        return self._worker is not None and self._worker.is_running

    def start(self) -> bool:
        run_dir = self.run_chooser.run_dir()
        if self.is_running or not run_dir or self.project is None:
            return False
        n = len([r for r in self.project.images if r.label is not None])
        self.progress.setRange(0, max(n, 1))
        self.progress.setValue(0)
        self.summary.setText("Evaluating…")
        worker = Worker(_evaluate_job, run_dir, str(self.project.folder), self.run_chooser.fold(),
                        self.scope_validation.isChecked(), self._progress)
        worker.returned.connect(self._on_worker_returned)
        worker.errored.connect(self._on_worker_errored)
        worker.finished.connect(self._update_buttons)
        self._worker = worker
        worker.start()
        self._update_buttons()
        return True

    def _on_progress_advanced(self, done: int, total: int):
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)

    def _on_worker_returned(self, result):
        if result is None:
            return
        self.show_result(result)
        self.evaluation_finished.emit(result)

    def _on_worker_errored(self, message: str, details: str):
        self.summary.setText(f"<b>Evaluation failed:</b> {message}")
        self.evaluation_failed.emit(message)

    # ------------------------------------------------------------- display
    def show_result(self, result: dict) -> None:
        """Fill every widget from an :func:`evaluate_run` result."""
        self.result = result
        names = list(result["class_names"])
        miou = result.get("miou")
        self.summary.setText(
            f"<b>accuracy</b> {_fmt(result['accuracy'])} &nbsp; <b>macro AUC</b> {_fmt(result['auc_macro'])} &nbsp; "
            f"<b>RoI mIoU</b> (τ = 0.5) {_fmt(miou)} &nbsp; on {result['n_images']} images — "
            f"{result.get('protocol', '')}, {result.get('variant', '')}, {result.get('n_models', '')} model(s), "
            f"attention: {result.get('attention_kind', '')}" + _calibration_text(result.get("calibration"))
        )
        self.auc_table.setRowCount(len(names))
        for i, c in enumerate(names):
            self.auc_table.setItem(i, 0, QTableWidgetItem(c))
            item = QTableWidgetItem(_fmt(result["auc_per_class"].get(c)))
            item.setTextAlignment(int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter))
            self.auc_table.setItem(i, 1, item)
        conf = result["confusion"]
        self.confusion_table.setRowCount(len(names))
        self.confusion_table.setColumnCount(len(names))
        self.confusion_table.setHorizontalHeaderLabels([f"→ {c}" for c in names])
        self.confusion_table.setVerticalHeaderLabels(names)
        for i in range(len(names)):
            for j in range(len(names)):
                v = float(conf[i][j])
                item = QTableWidgetItem(f"{v:.2f}")
                item.setTextAlignment(int(Qt.AlignmentFlag.AlignCenter))
                shade = int(255 - 170 * v)
                item.setBackground(QBrush(QColor(shade, shade, 255) if i != j else QColor(shade, 255, shade)))
                self.confusion_table.setItem(i, j, item)
        self.roc_plot.clear()
        self._legend.clear()
        import pyqtgraph as pg

        self.roc_plot.plot([0, 1], [0, 1], pen=pg.mkPen((150, 150, 150), style=Qt.PenStyle.DashLine))
        for i, c in enumerate(names):
            curve = (result.get("roc") or {}).get(c)
            if not curve:
                continue
            color = self._class_colors().get(c) or _CURVE_COLORS[i % len(_CURVE_COLORS)]
            self.roc_plot.plot(curve["fpr"], curve["tpr"], pen=pg.mkPen(color, width=2),
                               name=f"{c} (AUC {_fmt(result['auc_per_class'].get(c), 3)})")
        self._plot_reliability(result.get("calibration"))
        self.misclassified.clear()
        by_id = {p["id"]: p for p in result.get("predictions", [])}
        for image_id in result.get("misclassified", []):
            p = by_id.get(image_id, {})
            conf_p = max((p.get("probs") or {}).values(), default=float("nan"))
            item = QListWidgetItem(f"{image_id}: labelled {p.get('label')}, predicted {p.get('predicted')} ({conf_p:.2f})")
            item.setData(Qt.ItemDataRole.UserRole, image_id)
            self.misclassified.addItem(item)
        self._update_buttons()

    def _plot_reliability(self, cal: dict | None) -> None:
        import pyqtgraph as pg

        self.reliability_plot.clear()
        self._reliability_legend.clear()
        self.reliability_plot.plot([0, 1], [0, 1], pen=pg.mkPen((150, 150, 150), style=Qt.PenStyle.DashLine))
        for key, color in (("before", (214, 39, 40)), ("after", (31, 119, 180))):
            summary = (cal or {}).get(key)
            if not summary:
                continue
            rel = summary["reliability"]
            pts = [(c, a) for c, a in zip(rel["confidence"], rel["accuracy"]) if c is not None and a is not None]
            if pts:
                self.reliability_plot.plot([p[0] for p in pts], [p[1] for p in pts], pen=pg.mkPen(color, width=2),
                                           symbol="o", symbolSize=6, symbolBrush=color,
                                           name=f"{key} T: ECE {_fmt(summary['ece'], 3)}")

    def _on_misclassified_activated(self, item):
        self.image_activated.emit(item.data(Qt.ItemDataRole.UserRole))

    # -------------------------------------------------------------- export
    def _run_info(self) -> dict:
        r = self.result or {}
        return {k: r.get(k) for k in ("run", "variant", "protocol", "n_models", "attention_kind") if r.get(k) is not None}

    def export_html(self, path) -> Path:
        from gusa_core.evaluation.report import write_html_report

        return write_html_report(path, self.result, title=f"GuSA evaluation — {Path(str(self.result.get('run', ''))).name}",
                                 run_info=self._run_info(), class_colors=self._class_colors())

    def _class_colors(self) -> dict:
        """The project's class colours: the curves (here and in the HTML report) look like the app's classes."""
        return dict(getattr(self.project, "class_colors", None) or {})

    def export_json(self, path) -> Path:
        from gusa_core.atomic import atomic_write_json

        return atomic_write_json(path, self.result)

    def _on_html_clicked(self):
        path = self.dialogs.save_path(self, "Export report", "report.html", "HTML (*.html)")
        if path:
            self.export_html(path)

    def _on_json_clicked(self):
        path = self.dialogs.save_path(self, "Export metrics", "metrics.json", "JSON (*.json)")
        if path:
            self.export_json(path)

    def _update_buttons(self, *_):
        running = self.is_running
        self.evaluate_button.setEnabled(not running and self.run_chooser.count() > 0)
        self.html_button.setEnabled(self.result is not None and not running)
        self.json_button.setEnabled(self.result is not None and not running)

    def closeEvent(self, event):  # noqa: N802 - Qt API
        if self._worker is not None:
            self._worker.wait(60000)
        super().closeEvent(event)


def install(host: Host) -> None:
    """Add Model → Evaluation report… (one dialog, made on first use; it follows the host's project)."""
    dialogs: list[ReportView] = []

    def _open():
        if not dialogs:
            dialogs.append(ReportView(host.project, host, dialogs=host.dialogs))
            dialogs[0].image_activated.connect(host.select_image)
        else:
            dialogs[0].project = host.project
            dialogs[0].refresh_runs()
        dialogs[0].show()
        dialogs[0].raise_()

    action = host.model_menu.addAction("Evaluation report…")
    action.setObjectName("action_report")
    action.triggered.connect(_open)
