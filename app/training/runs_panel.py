"""The runs panel: a table view of the :class:`~app.base.runs_model.RunsModel`; pick the active run.

The model lists the runs (JSON only, never torch in the GUI thread),
remembers the active run and knows the run being trained; this panel shows
them, sets the active run, asks the model to resume a run and deletes runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import os
import shutil
from datetime import datetime
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.base.dialogs import Dialogs
from app.base.runs_model import RunsModel

if TYPE_CHECKING:
    from app.shell.host import Host

__all__ = ["RunsPanel", "install"]

COLUMNS = ("Name", "Variant", "Folds", "Status", "Val acc", "AUC", "mIoU", "Date")


def _date_text(created: str) -> str:
    try:
        return datetime.fromisoformat(created.replace("Z", "+00:00")).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return created[:16]


class RunsPanel(QWidget):
    """Table of the project's runs (a view of a :class:`RunsModel`); the user picks the active run.

    Parameters
    ----------
    project : gusa_core.project.Project or None
        Followed by a private model when ``model`` is not given.
    parent : QWidget, optional
    model : RunsModel, optional
        The shared runs service (``host.runs``).
    dialogs : Dialogs, optional
    """

    def __init__(self, project=None, parent: QWidget | None = None, *, model: RunsModel | None = None,
                 dialogs: Dialogs | None = None):
        super().__init__(parent)
        self.model = model if model is not None else RunsModel(project, self)
        self.dialogs = dialogs or Dialogs()
        self.runs: list = []  # the model's gusa_core.runs.Run list, as shown

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.itemDoubleClicked.connect(self._on_table_double_clicked)
        self.table.itemSelectionChanged.connect(self._update_buttons)

        self.active_label = QLabel("Active run: none")
        self.use_button = QPushButton("Use this run")
        self.use_button.setToolTip("Make the selected run the one used for review and classification")
        self.use_button.clicked.connect(self._on_use_button_clicked)
        self.resume_button = QPushButton("Resume")
        self.resume_button.clicked.connect(self._on_resume_button_clicked)
        self.delete_button = QPushButton("Delete…")
        self.delete_button.clicked.connect(self._on_delete_button_clicked)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.clicked.connect(self.refresh)
        buttons = QHBoxLayout()
        for b in (self.use_button, self.resume_button, self.delete_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(self.refresh_button)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.active_label)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        self.model.runs_changed.connect(self._on_model_runs_changed)
        self.model.active_run_changed.connect(lambda *_: self._fill_table())
        self.model.training_changed.connect(lambda *_: self._update_buttons())
        self._on_model_runs_changed()

    # ---------------------------------------------------------------- model
    @property
    def project(self):
        return self.model.project

    def set_project(self, project) -> None:
        """Show ``project``'s runs and restore its active run."""
        self.model.set_project(project)

    @property
    def active_run_dir(self) -> str:
        """Folder of the active run, or ``""``."""
        return self.model.active_run

    def set_active_run(self, run_dir: str | os.PathLike | None) -> None:
        """Make ``run_dir`` the active run (``None`` or ``""`` for none) and remember it."""
        self.model.set_active_run(run_dir)

    def refresh(self) -> None:
        """Re-read the runs from disk."""
        self.model.refresh()

    def selected_run(self):
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        if not rows:
            return None
        row = rows[0].row()
        return self.runs[row] if 0 <= row < len(self.runs) else None

    def select_run(self, name: str) -> None:
        for row, run in enumerate(self.runs):
            if run.name == name:
                self.table.selectRow(row)
                return

    def delete_run(self, run_dir: str | os.PathLike, *, confirm: bool = True) -> bool:
        """Delete a run folder (after asking when ``confirm``); True if deleted."""
        run_dir = Path(run_dir)
        if self.model.is_training(run_dir):
            self.dialogs.inform(self, "Delete run", f"Run {run_dir.name!r} is training now: stop it first.")
            return False
        if confirm and not self.dialogs.question(
                self, "Delete run",
                f"Delete run {run_dir.name!r} and its trained models?\n{run_dir}\n\nThis cannot be undone.",
                default_no=True):
            return False
        # Rename first, so that a half-deleted run is never listed.
        trash = run_dir.with_name(f".deleting-{run_dir.name}")
        try:
            if trash.exists():
                shutil.rmtree(trash, ignore_errors=True)
            os.replace(run_dir, trash)
            shutil.rmtree(trash, ignore_errors=True)
        except OSError as exc:
            from app.base.errors import show_error

            show_error(self, "Delete run", f"Could not delete {run_dir}: {exc.strerror or exc}")
            return False
        if str(run_dir) == self.model.active_run:
            self.set_active_run(None)
        self.refresh()
        return True

    # ---------------------------------------------------------------- view
    def _on_model_runs_changed(self) -> None:
        self.runs = list(self.model.runs)
        self._fill_table()

    def _fill_table(self) -> None:
        selected = self.selected_run()
        selected_name = selected.name if selected else None
        self.table.setRowCount(len(self.runs))
        bold = QFont(self.font())
        bold.setBold(True)
        for row, run in enumerate(self.runs):
            active = str(run.folder) == self.model.active_run
            s = run.summary()
            values = (
                ("● " if active else "") + run.name,
                run.variant,
                str(run.folds) if run.folds else "",
                run.status,
                _fmt(s["mean_val_acc"]),
                _fmt(s["mean_val_auc"]),
                _fmt(s["mean_val_miou"]),
                _date_text(str(run.meta.get("created", ""))),
            )
            for col, text in enumerate(values):
                item = QTableWidgetItem(text)
                if col >= 4 and col <= 6:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if active:
                    item.setFont(bold)
                item.setToolTip(str(run.folder))
                self.table.setItem(row, col, item)
        if selected_name:
            self.select_run(selected_name)
        active_name = Path(self.model.active_run).name if self.model.active_run else "none"
        self.active_label.setText(f"Active run: {active_name}")
        self._update_buttons()

    def _update_buttons(self) -> None:
        run = self.selected_run()
        self.use_button.setEnabled(run is not None and bool(run.folder) and str(run.folder) != self.model.active_run)
        self.delete_button.setEnabled(run is not None)
        self.resume_button.setEnabled(run is not None and run.status not in ("finished",) and not self.model.is_training(run.folder))

    # ---------------------------------------------------------------- slots
    def _on_table_double_clicked(self, item) -> None:
        run = self.runs[item.row()]
        self.set_active_run(run.folder)

    def _on_use_button_clicked(self) -> None:
        run = self.selected_run()
        if run is not None:
            self.set_active_run(run.folder)

    def _on_resume_button_clicked(self) -> None:
        run = self.selected_run()
        if run is not None:
            self.model.request_resume(run.folder)

    def _on_delete_button_clicked(self) -> None:
        run = self.selected_run()
        if run is not None:
            self.delete_run(run.folder)


def _fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:.3f}"


def install(host: Host) -> RunsPanel:
    """Add the runs dock and the Model ▸ Runs action (a view of ``host.runs``)."""
    panel = RunsPanel(model=host.runs, dialogs=host.dialogs)
    dock = host.add_dock(panel, "Runs", Qt.DockWidgetArea.RightDockWidgetArea)
    dock.setObjectName("runs_dock")
    dock.hide()
    action = QAction("Runs", host)
    action.setObjectName("action_runs")

    def show():
        panel.refresh()
        host.show_dock("Runs")

    action.triggered.connect(show)
    host.model_menu.addAction(action)
    return panel
