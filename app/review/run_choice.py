"""Choose a trained run and a fold (or the ensemble of its folds): one widget for every dialog."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QPushButton, QWidget

from app.base.dialogs import Dialogs
from app.review.prediction_cache import fold_label, scan_runs, trained_run

__all__ = ["RunChooser"]


class RunChooser(QWidget):
    """A run combo (the project's runs, newest first), a fold combo and an optional "Other run…" button.

    Signals
    -------
    changed()
        The run or the fold changed.
    """

    changed = Signal()

    def __init__(self, parent=None, *, other_button: bool = False, dialogs: Dialogs | None = None):
        super().__init__(parent)
        self.dialogs = dialogs or Dialogs()
        self.run_combo = QComboBox()
        self.fold_combo = QComboBox()
        self.run_combo.currentIndexChanged.connect(self._on_run_combo_changed)
        self.fold_combo.currentIndexChanged.connect(lambda *_: self.changed.emit())
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.run_combo, 1)
        layout.addWidget(self.fold_combo)
        if other_button:
            other = QPushButton("Other run…")
            other.clicked.connect(self._on_other_clicked)
            layout.addWidget(other)

    # ---------------------------------------------------------------- API
    def refresh(self, project_folder) -> None:
        """List the runs of ``project_folder`` (None: no project), keeping the current choice if it is still there."""
        keep = self.run_dir()
        self.run_combo.blockSignals(True)
        self.run_combo.clear()
        if project_folder is not None:
            for info in scan_runs(project_folder):
                self.run_combo.addItem(info.title, (str(info.folder), info.folds))
        self.run_combo.blockSignals(False)
        if keep:
            self.set_run(keep)
        self._on_run_combo_changed()

    def count(self) -> int:
        return self.run_combo.count()

    def run_dir(self) -> str | None:
        data = self.run_combo.currentData()
        return data[0] if data else None

    def fold(self) -> int | None:
        """The chosen fold, or None for the ensemble of all folds."""
        return self.fold_combo.currentData()

    def set_run(self, run_dir, fold: int | None = None) -> None:
        """Choose ``run_dir`` (added to the list if it is not a run of the project) and ``fold``."""
        folder = str(Path(run_dir).resolve())
        index = next((i for i in range(self.run_combo.count()) if self.run_combo.itemData(i)[0] == folder), -1)
        if index < 0:
            info = trained_run(folder)
            self.run_combo.addItem(Path(folder).name, (folder, info.folds if info is not None else ()))
            index = self.run_combo.count() - 1
        self.run_combo.setCurrentIndex(index)
        self._on_run_combo_changed()
        for i in range(self.fold_combo.count()):
            if self.fold_combo.itemData(i) == fold:
                self.fold_combo.setCurrentIndex(i)

    # -------------------------------------------------------------- slots
    def _on_run_combo_changed(self, *_):
        self.fold_combo.blockSignals(True)
        self.fold_combo.clear()
        data = self.run_combo.currentData()
        if data:
            folds = data[1]
            if len(folds) != 1:
                self.fold_combo.addItem(fold_label(None, len(folds)), None)
            for k in folds:
                self.fold_combo.addItem(fold_label(k), k)
        self.fold_combo.blockSignals(False)
        self.changed.emit()

    def _on_other_clicked(self):
        folder = self.dialogs.directory(self, "Run folder (holds run.json and fold-k/)")
        if folder:
            self.set_run(folder)
