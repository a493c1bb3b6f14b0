"""The training panel: settings, Start / Stop / Resume, progress, live curves and a log.

Training runs :class:`gusa_core.training.Trainer` in a :class:`app.base.workers.Worker`;
the trainer's callbacks become Qt signals delivered in the GUI thread, so the
window keeps painting (and the user keeps painting masks) while it runs.
The worker-side code (the job, its bridge and stop control) and the pure
helpers live in :mod:`app.training.training_job`; the public helpers are re-exported
here. Nothing here imports torch at import time: ``gusa_core.training`` is
imported inside the worker, and the device list is detected in a worker the
first time the panel is shown.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QGroupBox,
    QHBoxLayout,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.base.dialogs import Dialogs
from app.base.workers import Worker
from app.training.training_form import TrainingFormMixin
from app.training.training_job import (
    INPUT_SIZE_PRESETS,
    _Control,
    _train_job,
    _TrainingBridge,
    default_run_name,
    imagenet_weights_path,
    parse_input_size,
)
from app.training.training_plots import EtaEstimator
from app.training.training_progress import TrainingProgressMixin
from gusa_core.runs import read_run_meta, runs_dir

if TYPE_CHECKING:
    from app.shell.host import Host

__all__ = [
    "TrainingPanel",
    "INPUT_SIZE_PRESETS",
    "parse_input_size",
    "imagenet_weights_path",
    "default_run_name",
    "install",
]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


# ------------------------------------------------------------------- the panel
class TrainingPanel(TrainingFormMixin, TrainingProgressMixin, QWidget):
    """Train a model on the project's labelled images without blocking the GUI.

    Parameters
    ----------
    project : gusa_core.project.Project
    parent : QWidget, optional
    dialogs : Dialogs, optional

    The settings form lives in :mod:`app.training.training_form`, the progress
    display in :mod:`app.training.training_progress` (mixins); the job that
    runs in the worker in :mod:`app.training.training_job`.

    Signals
    -------
    training_started()
    epoch_finished(dict)
        The trainer's epoch record.
    training_finished(dict)
        The run summary; ``summary["status"]`` is ``"finished"`` or ``"stopped"``.
    training_failed(str)
        A one-line message naming the problem.
    batch_finished(dict)
        Every training batch record (for progress listeners and tests).
    """

    training_started = Signal()
    epoch_finished = Signal(object)
    training_finished = Signal(object)
    training_failed = Signal(str)
    batch_finished = Signal(object)

    def __init__(self, project=None, parent: QWidget | None = None, *, dialogs: Dialogs | None = None):
        super().__init__(parent)
        self.project = project
        self.dialogs = dialogs or Dialogs()
        self._worker: Worker | None = None
        self._control: _Control | None = None
        self._bridge = _TrainingBridge(self)
        self._bridge.event.connect(self._on_trainer_event)
        self._devices_requested = False
        self._run_name_edited = False
        self._pretrained_file: str | None = None
        self._run_dir: Path | None = None
        self._estimator: EtaEstimator | None = None
        self._pending_signal = None
        self._config: dict = {}
        self._reset_progress_state()
        self._build_ui()
        self._update_weights_status()
        self._update_buttons()

    # ------------------------------------------------------------------ UI
    def _build_ui(self) -> None:
        form_box = self._build_form()
        self._build_progress()

        self.start_button = QPushButton("Start")
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(self._on_start_button_clicked)
        self.stop_button = QPushButton("Stop")
        self.stop_button.clicked.connect(self._on_stop_button_clicked)
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Continue the stopped or interrupted run named above")
        self.resume_button.clicked.connect(self._on_resume_button_clicked)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.stop_button)
        buttons.addWidget(self.resume_button)


        settings_group = QGroupBox("Settings")
        sg = QVBoxLayout(settings_group)
        sg.setContentsMargins(4, 4, 4, 4)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setWidget(form_box)
        sg.addWidget(scroll)

        progress = QWidget()
        pl = QVBoxLayout(progress)
        pl.setContentsMargins(0, 0, 0, 0)
        pl.addLayout(buttons)
        pl.addWidget(self.status_label)
        pl.addWidget(self.epoch_bar)
        pl.addWidget(self.overall_bar)
        pl.addWidget(self.eta_label)

        self.splitter = QSplitter(Qt.Orientation.Vertical)
        top = QWidget()
        tl = QVBoxLayout(top)
        tl.setContentsMargins(0, 0, 0, 0)
        tl.addWidget(settings_group, 1)
        tl.addWidget(progress)
        self.splitter.addWidget(top)
        self.splitter.addWidget(self.curves)
        self.splitter.addWidget(self.log_view)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 3)
        self.splitter.setStretchFactor(2, 1)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.splitter)
        self._on_folds_spin_changed(self.folds_spin.value())
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)

    # ----------------------------------------------------------- settings
    def set_project(self, project) -> None:
        """Show another project (refused while training runs)."""
        if self.is_running:
            raise RuntimeError("cannot change the project while training runs")
        self.project = project
        self._update_buttons()

    def run_dir(self) -> Path | None:
        """The folder of the run named in the panel."""
        if self.project is None:
            return None
        name = self.run_name_edit.text().strip()
        return runs_dir(self.project.folder) / name if name else None

    @property
    def is_running(self) -> bool:
        return self._worker is not None and self._worker.is_running

    # ------------------------------------------------------------- actions
    def start(self) -> bool:
        """Start a new run with the panel's settings; False (with a message) if refused."""
        if self.is_running:
            return False
        if self.project is None:
            return self._refuse("Open a project first.")
        name = self.run_name_edit.text().strip()
        if not _NAME_RE.match(name):
            return self._refuse(f"Run name {name!r} is not usable as a folder name: use letters, digits, '.', '-', '_' or '+'.")
        try:
            config = self.config_kwargs()
        except ValueError as exc:
            return self._refuse(str(exc))
        run_dir = self.run_dir()
        if run_dir.exists() and any(run_dir.iterdir()):
            return self._refuse(f"A run named {name!r} already exists in {run_dir.parent}: choose another name, or Resume it.")
        labelled = self._labelled_count()
        if labelled < 2:
            return self._refuse(f"Training needs labelled images or painted slide regions: the project has {labelled} "
                                "labelled image(s) and field(s). Label images or paint class regions on a slide first.")
        self._launch(run_dir, config, resume=False)
        return True

    def resume(self, run_dir: str | os.PathLike | None = None) -> bool:
        """Continue the stopped or interrupted run ``run_dir`` (default: the one named in the panel)."""
        if self.is_running:
            return False
        if self.project is None:
            return self._refuse("Open a project first.")
        run_dir = Path(run_dir) if run_dir is not None else self.run_dir()
        meta = read_run_meta(run_dir) if run_dir is not None else None
        if meta is None:
            return self._refuse(f"There is no run to resume at {run_dir}.")
        if meta.get("status") == "finished":
            return self._refuse(f"Run {run_dir.name!r} has already finished; start a new run instead.")
        self.run_name_edit.setText(run_dir.name)
        self._run_name_edited = True
        config = self._config_from_run(meta)
        self._launch(run_dir, config, resume=True)
        return True

    def stop(self) -> None:
        """Ask the run to stop; it ends within one batch and keeps its last completed epoch."""
        if self._worker is None or not self._worker.is_running:
            return
        self._worker.abort()
        self.stop_button.setEnabled(False)
        self._set_status("Stopping after the current batch…")
        self._log("stop requested: the current batch finishes, the last completed epoch is kept")

    def _config_from_run(self, meta: dict) -> dict:
        settings = meta.get("training") or meta.get("config") or meta.get("settings") or {}
        try:
            config = self.config_kwargs()
        except ValueError:
            config = {}
        config.update({k: v for k, v in settings.items() if v is not None})
        for key in ("variant", "folds", "input_size"):
            if key in meta and key not in settings:
                config[key] = meta[key]
        if "input_size" in config:
            config["input_size"] = tuple(int(v) for v in config["input_size"])
        return config

    def _launch(self, run_dir: Path, config: dict, *, resume: bool) -> None:
        try:
            if getattr(self.project, "dirty", False):
                self.project.save()
        except Exception as exc:  # saving is a courtesy; the trainer reads the model in memory
            self._log(f"could not save the project before training: {exc}")
        self._run_dir = Path(run_dir)
        self._config = dict(config)
        self._reset_progress_state()
        if not resume:
            self.curves.clear()
        self._estimator = EtaEstimator(
            folds=int(config.get("folds", 1)),
            epochs=int(config.get("epochs", 1)),
            batch_size=int(config.get("batch_size", 1)),
            val_images=self._expected_val_images(config),
        )
        self._control = _Control()
        self._worker = Worker(_train_job, self.project, self._run_dir, config, self._bridge, self._control, resume,
                              on_abort=self._control.request_stop)
        self._worker.returned.connect(self._on_worker_returned)
        self._worker.errored.connect(self._on_worker_errored)
        self._worker.finished.connect(self._on_worker_finished)
        self.epoch_bar.setRange(0, 0)  # busy until the first batch
        self.overall_bar.setRange(0, 0)
        self.eta_label.setText("estimating…")
        verb = "Resuming" if resume else "Starting"
        self._set_status(f"{verb} {self._run_dir.name} ({config.get('variant')}, "
                         f"{config['input_size'][0]}x{config['input_size'][1]})…")
        self._log(f"{verb.lower()} run {self._run_dir.name} in {self._run_dir}")
        self._worker.start()
        self._update_buttons()
        self.training_started.emit()

    def _refuse(self, message: str) -> bool:
        self._set_status(message)
        from app.base.errors import show_warning

        show_warning(self, "Training", message)
        return False

    def _labelled_count(self) -> int:
        """Labelled images, plus the fields the painted slides give at the form's settings."""
        from gusa_core.project.slides import is_slide, project_fields, slide_ids

        if self.project is None:
            return 0
        images = [r for r in getattr(self.project, "images", []) if getattr(r, "label", None) and not is_slide(r)]
        n = len(images)
        if slide_ids(self.project):
            try:
                n += len(project_fields(self.project, field_mpp=self.field_mpp_spin.value()))
            except Exception:  # unreadable regions: the run reports them by name
                pass
        return n

    def _expected_val_images(self, config: dict) -> int:
        n = self._labelled_count()
        folds = int(config.get("folds", 1))
        if folds > 1:
            return max(1, round(n / folds))
        return max(1, round(n * float(config.get("val_fraction", 0.25))))

    # ----------------------------------------------------- worker results
    def _on_worker_returned(self, summary) -> None:
        summary = dict(summary or {})
        self.summary = summary
        status = summary.get("status", "finished")
        if status == "stopped":
            self._set_status(f"Stopped: {self._run_dir.name} keeps its last completed epoch; Resume continues it.")
            self.eta_label.setText("stopped")
        else:
            self._set_status(f"Finished: {self._run_dir.name}")
            self.eta_label.setText("done")
            self.epoch_bar.setRange(0, max(1, self._batches))
            self.epoch_bar.setValue(self.epoch_bar.maximum())
            self.overall_bar.setRange(0, 1)
            self.overall_bar.setValue(1)
        self._log(f"run {status}: {summary.get('run_dir', self._run_dir)}")
        self._pending_signal = ("finished", summary)

    def _on_worker_errored(self, message: str, details: str) -> None:
        self._set_status(f"Training failed: {message}")
        self.eta_label.setText("failed")
        self._log(f"training failed: {message}")
        self._pending_signal = ("failed", message, details)

    def _on_worker_finished(self) -> None:
        self.epoch_bar.setFormat("epoch: %v / %m batches")
        if self.epoch_bar.maximum() == 0:
            self.epoch_bar.setRange(0, 1)
        if self.overall_bar.maximum() == 0:
            self.overall_bar.setRange(0, 1)
        pending = getattr(self, "_pending_signal", None)
        self._pending_signal = None
        self._update_buttons()
        if pending is None:
            return
        if pending[0] == "finished":
            self.training_finished.emit(pending[1])
        else:
            self.training_failed.emit(pending[1])
            from app.base.errors import show_error

            show_error(self, "Training failed", pending[1], pending[2])

    # ------------------------------------------------------------- helpers
    def _update_buttons(self) -> None:
        running = self.is_running
        has_project = self.project is not None
        self.start_button.setEnabled(has_project and not running)
        self.stop_button.setEnabled(running and not (self._worker and self._worker.abort_requested))
        resumable = False
        if has_project and not running:
            run_dir = self.run_dir()
            meta = read_run_meta(run_dir) if run_dir is not None else None
            resumable = meta is not None and meta.get("status") != "finished"
        self.resume_button.setEnabled(resumable)
        for w in (self.preset_button, self.variant_combo, self.folds_spin, self.val_fraction_spin, self.epochs_spin,
                  self.input_size_combo, self.batch_spin, self.device_combo, self.pretrained_combo,
                  self.choose_weights_button, self.run_name_edit, self.advanced_box):
            w.setEnabled(not running)

    # ----------------------------------------------------------------- slots
    def showEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().showEvent(event)
        self.detect_devices()

    def _on_start_button_clicked(self) -> None:
        self.start()

    def _on_stop_button_clicked(self) -> None:
        self.stop()

    def _on_resume_button_clicked(self) -> None:
        self.resume()

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt API
        if self.is_running:
            self.stop()
            self._worker.wait(60000)
        super().closeEvent(event)


# ------------------------------------------------------------------ install
class _StopOnClose(QObject):
    """Event filter on the main window: a close stops training and waits for the batch to end."""

    def __init__(self, panel: TrainingPanel, parent: QObject):
        super().__init__(parent)
        self._panel = panel

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt API
        if event.type() == QEvent.Type.Close and event.isAccepted() and self._panel.is_running:
            self._panel.stop()
            self._panel._worker.wait(300000)
        return False


def install(host: Host) -> TrainingPanel:
    """Add the training dock and the Model ▸ Train… action; announce the run being trained to ``host.runs``."""
    panel = TrainingPanel(host.project, dialogs=host.dialogs)
    dock = host.add_dock(panel, "Training", Qt.DockWidgetArea.RightDockWidgetArea)
    dock.setObjectName("training_dock")
    dock.hide()
    action = QAction("Train…", host)
    action.setObjectName("action_train")
    action.setShortcut("Ctrl+T")

    def show():
        if panel.project is not host.project and not panel.is_running:
            panel.set_project(host.project)
        host.show_dock("Training")
        panel.show()

    def resume(run_dir: str) -> None:
        host.show_dock("Training")
        panel.resume(run_dir)

    action.triggered.connect(show)
    host.model_menu.addAction(action)
    runs = host.runs
    panel.training_started.connect(lambda: runs.set_training_run(panel._run_dir))
    panel.training_finished.connect(lambda *_: runs.set_training_run(None))
    panel.training_failed.connect(lambda *_: runs.set_training_run(None))
    runs.resume_requested.connect(resume)
    # Closing the window stops the run (within one batch) so no thread outlives the app.
    panel._close_guard = _StopOnClose(panel, host)
    host.installEventFilter(panel._close_guard)
    host.project_opened.connect(lambda *_: (not panel.is_running) and panel.set_project(host.project))
    return panel
