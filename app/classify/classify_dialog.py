"""File → Classify folder…: classify every image of a folder with one click.

The job runs :func:`gusa_core.inference.classify_paths` in a worker thread
(decoding overlaps the network there); each record reaches the table as it
arrives. Cancel stops within one image (the worker asks for batches of one).
Files that cannot be read are listed with their error and never abort the run.
The CSV is written by the same function as ``gusa predict --csv``, so the two
agree to the last digit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import time
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.workspace.canvas_image import numpy_to_qimage
from app.review.run_choice import RunChooser
from app.base import errors
from app.base.dialogs import Dialogs
from app.base.workers import Worker

if TYPE_CHECKING:
    from app.shell.host import Host

from app.classify.classify_results import PREVIEW_WIDTH, THUMB_SIZE, ClassifyResultsModel, _ResultsFilter, classify_job

__all__ = ["ClassifyFolderDialog", "ClassifyResultsModel", "classify_job", "install"]


class ClassifyFolderDialog(QDialog):
    """Pick a folder and a run, classify every image, sort, filter, export.

    Signals
    -------
    classification_started()
    record_added(dict)
    classification_finished(int)
        The number of records (also after a Cancel).
    image_activated(str)
        A row was double-clicked: the image's path.
    """

    classification_started = Signal()
    record_added = Signal(dict)
    classification_finished = Signal(int)
    image_activated = Signal(str)

    def __init__(self, project=None, parent=None, *, predictor_factory=None, dialogs: Dialogs | None = None):
        super().__init__(parent)
        self.dialogs = dialogs or Dialogs()
        self.setWindowTitle("Classify folder")
        self.resize(1200, 720)
        self.project = project
        self._predictor_factory = predictor_factory
        self._worker: Worker | None = None
        self._t0 = 0.0
        self._total = 0
        self.attention_kind = ""

        # -- job settings ------------------------------------------------------
        self.folder_edit = QLineEdit()
        self.folder_edit.setPlaceholderText("folder of images (TIFF, SVS, PNG, JPEG, BMP)")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._on_browse_clicked)
        self.recursive_check = QCheckBox("include sub-folders")
        self.run_chooser = RunChooser(other_button=True, dialogs=self.dialogs)
        self.run_chooser.changed.connect(self._update_buttons)
        self.attention_check = QCheckBox("save attention overlays to")
        self.attention_edit = QLineEdit()
        self.attention_edit.setPlaceholderText("folder for <name>_attention.png")

        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder_edit, 1)
        folder_row.addWidget(browse)
        folder_row.addWidget(self.recursive_check)
        att_row = QHBoxLayout()
        att_row.addWidget(self.attention_check)
        att_row.addWidget(self.attention_edit, 1)
        form = QFormLayout()
        form.addRow("Folder", folder_row)
        form.addRow("Model", self.run_chooser)
        form.addRow("", att_row)

        self.start_button = QPushButton("Classify")
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QProgressBar()
        self.progress.setFormat("%v of %m")
        self.progress_label = QLabel("")
        prog_row = QHBoxLayout()
        prog_row.addWidget(self.start_button)
        prog_row.addWidget(self.cancel_button)
        prog_row.addWidget(self.progress, 1)
        prog_row.addWidget(self.progress_label)

        # -- results -----------------------------------------------------------
        self.model = ClassifyResultsModel(self)
        self.proxy = _ResultsFilter(self)
        self.proxy.setSourceModel(self.model)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().setDefaultSectionSize(THUMB_SIZE * 3 // 4 + 6)
        self.table.verticalHeader().hide()
        self.table.setIconSize(self.table.iconSize().__class__(THUMB_SIZE, THUMB_SIZE))
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.doubleClicked.connect(self._on_table_double_clicked)
        self.table.selectionModel().currentRowChanged.connect(self._on_table_current_changed)
        self.class_filter = QComboBox()
        self.class_filter.currentIndexChanged.connect(self._on_filter_changed)
        self.min_conf = QDoubleSpinBox()
        self.min_conf.setRange(0.0, 1.0)
        self.min_conf.setSingleStep(0.05)
        self.min_conf.setDecimals(2)
        self.min_conf.valueChanged.connect(self._on_filter_changed)
        self.summary_label = QLabel("")
        filt_row = QHBoxLayout()
        filt_row.addWidget(QLabel("Show"))
        filt_row.addWidget(self.class_filter)
        filt_row.addWidget(QLabel("confidence ≥"))
        filt_row.addWidget(self.min_conf)
        filt_row.addStretch(1)
        filt_row.addWidget(self.summary_label)

        self.preview = QLabel("Select a row to see its attention map")
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setMinimumWidth(360)
        self.preview.setWordWrap(True)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addLayout(filt_row)
        left_layout.addWidget(self.table, 1)
        split = QSplitter()
        split.addWidget(left)
        split.addWidget(self.preview)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)

        self.export_button = QPushButton("Export CSV…")
        self.export_button.clicked.connect(self._on_export_clicked)
        self.add_button = QPushButton("Add to project as suggestions")
        self.add_button.setToolTip("Add the classified images to the project, their predicted class offered as a suggestion")
        self.add_button.clicked.connect(self._on_add_clicked)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        bottom = QHBoxLayout()
        bottom.addWidget(self.export_button)
        bottom.addWidget(self.add_button)
        bottom.addStretch(1)
        bottom.addWidget(close)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(prog_row)
        layout.addWidget(split, 1)
        layout.addLayout(bottom)
        self.refresh_runs()
        self._update_buttons()

    # ------------------------------------------------------------ settings
    def refresh_runs(self) -> None:
        """List the project's runs (newest first)."""
        self.run_chooser.refresh(self.project.folder if self.project is not None else None)

    def set_folder(self, folder) -> None:
        self.folder_edit.setText(str(folder))

    def set_run(self, run_dir, fold: int | None = None) -> None:
        """Choose the run (a folder) and fold (None: the ensemble of its folds)."""
        self.run_chooser.set_run(run_dir, fold)

    def _on_browse_clicked(self):
        folder = self.dialogs.directory(self, "Folder to classify", self.folder_edit.text())
        if folder:
            self.folder_edit.setText(folder)

    # ----------------------------------------------------------------- job
    @property
    def is_running(self) -> bool:
        return self._worker is not None and self._worker.is_running

    def start(self) -> bool:
        """Start classifying; False (with a message) when the settings are incomplete."""
        from gusa_core.errors import GusaError
        from gusa_core.inference import collect_images

        if self.is_running:
            return False
        run_dir = self.run_chooser.run_dir()
        if not run_dir:
            self._warn("Choose a trained run first (train one with Model → Train…).")
            return False
        folder = self.folder_edit.text().strip()
        if not folder:
            self._warn("Choose a folder of images to classify.")
            return False
        try:
            paths = collect_images([folder], recursive=self.recursive_check.isChecked())
        except GusaError as exc:
            self._warn(str(exc))
            return False
        if not paths:
            self._warn(f"No images found in {folder}.")
            return False
        att_dir = self.attention_edit.text().strip() if self.attention_check.isChecked() else None
        if self.attention_check.isChecked() and not att_dir:
            self._warn("Choose the folder for the attention overlays, or untick the option.")
            return False
        self._total = len(paths)
        self.model.reset([])
        self.progress.setRange(0, self._total)
        self.progress.setValue(0)
        self.progress_label.setText("loading the model…")
        self._t0 = time.perf_counter()
        worker = Worker(classify_job, run_dir, self.run_chooser.fold(), paths, attention_dir=att_dir,
                        predictor_factory=self._predictor_factory)
        worker.yielded.connect(self._on_worker_yielded)
        worker.errored.connect(self._on_worker_errored)
        worker.finished.connect(self._on_worker_finished)
        self._worker = worker
        worker.start()
        self.classification_started.emit()
        self._update_buttons()
        return True

    def cancel(self) -> None:
        """Stop after the image being classified."""
        if self._worker is not None:
            self._worker.abort()
            self.progress_label.setText("cancelling…")

    def _on_worker_yielded(self, item):
        if isinstance(item, tuple) and item and item[0] == "classes":
            self.model.reset(item[1])
            self.attention_kind = item[2]
            self._fill_class_filter()
            self._t0 = time.perf_counter()
            return
        self.model.add(item)
        if self.model.rowCount() == 1:
            self.table.resizeColumnsToContents()
        done = len(self.model.records)
        self.progress.setValue(done)
        rate = item.get("images_per_s") or 0.0
        left = (self._total - done) / rate if rate > 0 else float("nan")
        eta = "" if left != left else f" · {int(left) // 60}:{int(left) % 60:02d} left"
        self.progress_label.setText(f"{done} of {self._total} · {rate:.2f} img/s{eta}")
        self._update_summary()
        self.record_added.emit(item)

    def _on_worker_errored(self, message: str, details: str):
        self._warn(f"Classification stopped: {message}", details)

    def _on_worker_finished(self):
        n = len(self.model.records)
        if self._worker is not None and self._worker.abort_requested:
            self.progress_label.setText(f"cancelled after {n} of {self._total}")
        elif n == self._total:
            secs = time.perf_counter() - self._t0
            self.progress_label.setText(f"{n} images in {secs:.1f} s")
        self._worker = None
        self._update_buttons()
        self.classification_finished.emit(n)

    # ------------------------------------------------------------- results
    def _fill_class_filter(self):
        self.class_filter.blockSignals(True)
        self.class_filter.clear()
        self.class_filter.addItem("all classes", None)
        for c in self.model.class_names:
            self.class_filter.addItem(c, c)
        self.class_filter.addItem("errors", "__errors__")
        self.class_filter.blockSignals(False)

    def _on_filter_changed(self, *_):
        self.proxy.set_filter(self.class_filter.currentData(), self.min_conf.value())
        self._update_summary()

    def _update_summary(self):
        recs = self.model.records
        errors = sum(1 for r in recs if r.get("error"))
        counts = {c: sum(1 for r in recs if r.get("predicted") == c) for c in self.model.class_names}
        text = ", ".join(f"{c} {n}" for c, n in counts.items())
        # the class counts add up to the classified files; the files that failed are counted apart
        failed = f", {errors} could not be classified" if errors else ""
        self.summary_label.setText(f"{len(recs)} file(s): {len(recs) - errors} classified ({text}){failed}; "
                                   f"showing {self.proxy.rowCount()}")

    def _record_at(self, proxy_index) -> dict | None:
        if not proxy_index.isValid():
            return None
        return self.model.records[self.proxy.mapToSource(proxy_index).row()]

    def _on_table_current_changed(self, current, _previous):
        rec = self._record_at(current)
        if rec is None:
            return
        if rec.get("error"):
            self.preview.setPixmap(QPixmap())
            self.preview.setText(f"{Path(rec['path']).name}\n\n{rec['error']}")
            return
        img = rec.get("preview")
        if img is not None:
            pix = QPixmap.fromImage(numpy_to_qimage(img))
            self.preview.setPixmap(pix.scaledToWidth(min(PREVIEW_WIDTH, max(200, self.preview.width() - 8)),
                                                     Qt.TransformationMode.SmoothTransformation))
            kind = "ỹ (RoI map)" if self.attention_kind == "roi" else "Grad-CAM"
            self.preview.setToolTip(f"{rec['path']}\n{rec['predicted']} — attention: {kind}")

    def _on_table_double_clicked(self, index):
        rec = self._record_at(index)
        if rec is not None:
            self.image_activated.emit(rec["path"])

    def _on_export_clicked(self):
        if not self.model.records:
            return
        path = self.dialogs.save_path(self, "Export predictions", "predictions.csv", "CSV (*.csv)")
        if path:
            self.export_csv(path)

    def export_csv(self, path) -> Path:
        """Write the results as ``gusa predict --csv`` does (same columns, same digits)."""
        from gusa_core.inference.outputs import write_predictions_csv

        ordered = sorted(self.model.records, key=lambda r: r["index"])
        return write_predictions_csv(path, ordered, self.model.class_names)

    def _on_add_clicked(self):
        n = self.add_to_project()
        if n:
            self.dialogs.inform(self, "Classify folder", f"{n} image(s) added to the project with their predicted class as a suggestion.")

    def add_to_project(self) -> int:
        """Add the classified images (not the errors) to the project with suggested classes."""
        if self.project is None:
            return 0
        from gusa_core.errors import GusaError

        known = {str(self.project.image_path(r.id).resolve()) for r in self.project.images}
        added = 0
        try:
            for rec in self.model.records:
                if rec.get("error") or str(Path(rec["path"]).resolve()) in known:
                    continue
                record = self.project.add_image(rec["path"])
                self.project.set_suggested(record.id, rec["predicted"])
                added += 1
            if added:
                self.project.save()
        except GusaError as exc:  # read-only, or another writer holds the project
            errors.show_error(self, "Cannot add to the project", errors.describe(exc))
        return added

    # ---------------------------------------------------------------- misc
    def _update_buttons(self):
        running = self.is_running
        self.start_button.setEnabled(not running and self.run_chooser.count() > 0)
        self.cancel_button.setEnabled(running)
        has = bool(self.model.records)
        self.export_button.setEnabled(has and not running)
        self.add_button.setEnabled(has and not running and self.project is not None)

    def _warn(self, text: str, details: str = "") -> None:
        from app.base.errors import show_warning

        show_warning(self, "Classify folder", text, details)

    def closeEvent(self, event):  # noqa: N802 - Qt API
        if self._worker is not None:
            self._worker.abort()
            self._worker.wait(30000)
        super().closeEvent(event)


def install(host: Host) -> None:
    """Add File/Model → Classify folder… (one dialog, made on first use; it follows the host's project)."""
    dialogs: list[ClassifyFolderDialog] = []

    def _open():
        if not dialogs:
            dialogs.append(ClassifyFolderDialog(host.project, host, dialogs=host.dialogs))
            dialogs[0].image_activated.connect(lambda path: _activate(host, path))
        else:
            dialogs[0].project = host.project
            dialogs[0].refresh_runs()
        dialogs[0].show()
        dialogs[0].raise_()

    for menu in (host.file_menu, host.model_menu):
        action = menu.addAction("Classify folder…")
        action.setObjectName("action_classify")
        action.triggered.connect(_open)
        if menu is host.file_menu:
            action.setShortcut("Ctrl+Shift+K")


def _activate(host: Host, path: str) -> None:
    """Show a double-clicked result: in the main window if the project holds it, else add it first (asking)."""
    project = host.project
    if project is None:
        return
    target = str(Path(path).resolve())
    image_id = next((r.id for r in project.images if str(project.image_path(r.id).resolve()) == target), None)
    if image_id is None:
        if not host.dialogs.question(host, "Review image", f"{Path(path).name} is not in the project. Add it to review it?"):
            return
        image_id = project.add_image(path).id
        project.save()
    host.select_image(image_id)
    host.show_dock("Review")
