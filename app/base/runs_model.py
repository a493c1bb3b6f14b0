"""The project's training runs as a shared service: the run list, the active run, the run being trained.

Features never ask each other about runs; they all hold the window's one
:class:`RunsModel` (``host.runs``) and subscribe to its signals. The runs are
read with :mod:`gusa_core.runs`, which reads JSON only, so refreshing never
imports torch in the GUI thread.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from PySide6.QtCore import QObject, Signal

__all__ = ["RunsModel"]


def _settings_key(project_folder) -> str:
    folder = str(Path(project_folder).resolve())
    return "active_run/" + hashlib.sha1(folder.encode("utf-8")).hexdigest()[:16]


class RunsModel(QObject):
    """The open project's runs (newest first), the active run and the run being trained.

    The active run is remembered per project folder in ``QSettings``. With no
    choice made yet, the newest finished run is active.

    Signals
    -------
    runs_changed()
        :attr:`runs` was re-read from disk.
    active_run_changed(str)
        The active run's folder ("" when none).
    training_changed(str)
        The folder of the run being trained ("" when none).
    resume_requested(str)
        Someone asked to resume the run folder (the training panel does it).
    """

    runs_changed = Signal()
    active_run_changed = Signal(str)
    training_changed = Signal(str)
    resume_requested = Signal(str)

    def __init__(self, project=None, parent: QObject | None = None):
        super().__init__(parent)
        self.project = None
        self.runs: list = []
        self._active = ""
        self._training = ""
        self.set_project(project)

    # ------------------------------------------------------------ project
    def set_project(self, project) -> None:
        """Follow ``project`` (or none): re-read its runs and restore its active run."""
        from gusa_core.runs import list_runs

        self.project = project
        self._active = ""
        if project is not None:
            name = self._settings().value(_settings_key(project.folder), "") or ""
            if name:
                match = [r for r in list_runs(project.folder) if r.name == name]
                self._active = str(match[0].folder) if match else ""
        self.refresh()
        self.active_run_changed.emit(self._active)

    def refresh(self) -> None:
        """Re-read the runs from disk (after training, deleting, ...); emits :attr:`runs_changed`."""
        from gusa_core.runs import list_runs

        self.runs = list_runs(self.project.folder) if self.project is not None else []
        folders = {str(r.folder) for r in self.runs}
        if self._active and self._active not in folders:
            self._active = ""
            self.active_run_changed.emit("")
        if not self._active:
            finished = [r for r in self.runs if r.status == "finished"]
            if finished:
                self._active = str(finished[0].folder)
                self.active_run_changed.emit(self._active)
        self.runs_changed.emit()

    def run(self, run_dir: str | os.PathLike):
        """The listed run of folder ``run_dir``, or ``None``."""
        target = Path(run_dir).resolve()
        return next((r for r in self.runs if r.folder.resolve() == target), None)

    # ------------------------------------------------------------ active run
    @property
    def active_run(self) -> str:
        """Folder of the active run, or ``""``."""
        return self._active

    def set_active_run(self, run_dir: str | os.PathLike | None) -> None:
        """Make ``run_dir`` the active run (``None`` or ``""`` for none) and remember it."""
        run_dir = str(Path(run_dir)) if run_dir else ""
        if self.project is not None:
            s = self._settings()
            s.setValue(_settings_key(self.project.folder), Path(run_dir).name if run_dir else "")
            s.sync()
        if run_dir == self._active:
            return
        self._active = run_dir
        self.active_run_changed.emit(run_dir)

    # ------------------------------------------------------------ training
    @property
    def training_run(self) -> str:
        """Folder of the run being trained now, or ``""``."""
        return self._training

    def set_training_run(self, run_dir: str | os.PathLike | None) -> None:
        """Announce the run being trained (``None`` when training ended); re-reads the runs."""
        self._training = str(Path(run_dir)) if run_dir else ""
        self.training_changed.emit(self._training)
        self.refresh()

    def is_training(self, run_dir: str | os.PathLike) -> bool:
        """Whether ``run_dir`` is being trained now."""
        return bool(self._training) and Path(self._training).resolve() == Path(run_dir).resolve()

    def request_resume(self, run_dir: str | os.PathLike) -> None:
        """Ask for ``run_dir`` to be resumed (emits :attr:`resume_requested`)."""
        self.resume_requested.emit(str(run_dir))

    @staticmethod
    def _settings():
        from app.base.settings import settings

        return settings()
