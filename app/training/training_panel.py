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
from datetime import datetime
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QSplitter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from gusa_core.models_registry import DEFAULT_VARIANT, DESCRIPTIONS, VARIANT_NAMES

from app.training.training_job import (
    _RUN_FILE,
    INPUT_SIZE_PRESETS,
    TRAINING_PRESETS,
    _Control,
    _detect_devices,
    _read_json,
    _train_job,
    _TrainingBridge,
    default_run_name,
    imagenet_weights_path,
    parse_input_size,
)
from app.training.training_plots import EtaEstimator, TrainingCurvesWidget, format_duration
from app.base.workers import Worker, run_in_thread

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
class TrainingPanel(QWidget):
    """Train a model on the project's labelled images without blocking the GUI.

    Parameters
    ----------
    project : gusa_core.project.Project
    parent : QWidget, optional

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

    def __init__(self, project=None, parent: QWidget | None = None):
        super().__init__(parent)
        self.project = project
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
        form_box = QWidget()
        form = QFormLayout(form_box)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.ExpandingFieldsGrow)

        # A menu, not a combo: a preset fills the fields in; it is not a state the panel is in.
        self.preset_button = QToolButton()
        self.preset_button.setText("Apply a preset")
        self.preset_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.preset_button.setToolTip("Fill in the settings below in one click; each can still be changed")
        preset_menu = QMenu(self.preset_button)
        self.preset_actions = []
        for label, tip, values in TRAINING_PRESETS:
            action = preset_menu.addAction(label)
            action.setToolTip(tip)
            action.triggered.connect(lambda _checked=False, v=values: self.apply_preset(v))
            self.preset_actions.append(action)
        preset_menu.setToolTipsVisible(True)
        self.preset_button.setMenu(preset_menu)
        form.addRow("Preset", self.preset_button)

        self.variant_combo = QComboBox()
        for i, name in enumerate(VARIANT_NAMES):
            self.variant_combo.addItem(name, name)
            self.variant_combo.setItemData(i, DESCRIPTIONS.get(name, name), Qt.ItemDataRole.ToolTipRole)
        self.variant_combo.setCurrentIndex(VARIANT_NAMES.index(DEFAULT_VARIANT))
        self.variant_combo.currentIndexChanged.connect(self._on_variant_combo_changed)
        self.variant_label = QLabel(DESCRIPTIONS.get(DEFAULT_VARIANT, ""))
        self.variant_label.setWordWrap(True)
        self.variant_label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.variant_label.setStyleSheet("color: palette(mid);")
        form.addRow("Variant", self.variant_combo)
        form.addRow("", self.variant_label)

        self.folds_spin = QSpinBox()
        self.folds_spin.setRange(1, 10)
        self.folds_spin.setValue(4)
        self.folds_spin.setToolTip("Stratified k-fold cross-validation; 1 = one fixed validation split")
        self.folds_spin.valueChanged.connect(self._on_folds_spin_changed)
        self.val_fraction_spin = QDoubleSpinBox()
        self.val_fraction_spin.setRange(0.05, 0.5)
        self.val_fraction_spin.setSingleStep(0.05)
        self.val_fraction_spin.setValue(0.25)
        self.val_fraction_spin.setToolTip("Share of the labelled images kept for validation")
        folds_row = QHBoxLayout()
        folds_row.addWidget(self.folds_spin)
        self.val_fraction_label = QLabel("validation fraction")
        folds_row.addWidget(self.val_fraction_label)
        folds_row.addWidget(self.val_fraction_spin)
        folds_row.addStretch(1)
        form.addRow("Folds", folds_row)

        self.epochs_spin = QSpinBox()
        self.epochs_spin.setRange(1, 1000)
        self.epochs_spin.setValue(30)
        form.addRow("Epochs", self.epochs_spin)

        self.input_size_combo = QComboBox()
        self.input_size_combo.setEditable(True)
        self.input_size_combo.addItems(INPUT_SIZE_PRESETS)
        self.input_size_combo.setToolTip("Network input WIDTHxHEIGHT (multiples of 16); images are resized to it")
        self.input_size_combo.currentTextChanged.connect(self._on_input_size_changed)
        self.input_size_error = QLabel("")
        self.input_size_error.setStyleSheet("color: #c0392b;")
        self.input_size_error.setVisible(False)
        form.addRow("Input size", self.input_size_combo)
        form.addRow("", self.input_size_error)

        self.batch_spin = QSpinBox()
        self.batch_spin.setRange(1, 256)
        self.batch_spin.setValue(5)
        form.addRow("Batch size", self.batch_spin)

        self.device_combo = QComboBox()
        self.device_combo.addItem("Automatic (best available)", "auto")
        self.device_combo.setToolTip("Detecting devices…")
        form.addRow("Device", self.device_combo)

        self.pretrained_combo = QComboBox()
        self.pretrained_combo.addItem("ImageNet (if found)", "auto")
        self.pretrained_combo.addItem("None (random init)", "none")
        self.pretrained_combo.currentIndexChanged.connect(self._update_weights_status)
        self.choose_weights_button = QPushButton("Choose file…")
        self.choose_weights_button.clicked.connect(self._on_choose_weights_clicked)
        weights_row = QHBoxLayout()
        weights_row.addWidget(self.pretrained_combo, 1)
        weights_row.addWidget(self.choose_weights_button)
        form.addRow("Weights", weights_row)
        self.weights_status = QLabel("")
        self.weights_status.setWordWrap(True)
        self.weights_status.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.weights_status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form.addRow("", self.weights_status)

        self.run_name_edit = QLineEdit(default_run_name(DEFAULT_VARIANT))
        self.run_name_edit.textEdited.connect(self._on_run_name_edited)
        form.addRow("Run name", self.run_name_edit)

        # Advanced settings, collapsed by default.
        self.advanced_button = QToolButton()
        self.advanced_button.setText("Advanced")
        self.advanced_button.setCheckable(True)
        self.advanced_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.advanced_button.setArrowType(Qt.ArrowType.RightArrow)
        self.advanced_button.setAutoRaise(True)
        self.advanced_button.toggled.connect(self._on_advanced_button_toggled)
        self.advanced_box = QWidget()
        adv = QFormLayout(self.advanced_box)
        adv.setContentsMargins(12, 0, 0, 0)
        self.lr_spin = QDoubleSpinBox()
        self.lr_spin.setDecimals(7)
        self.lr_spin.setRange(1e-7, 1.0)
        self.lr_spin.setSingleStep(1e-5)
        self.lr_spin.setValue(5e-5)
        adv.addRow("Learning rate", self.lr_spin)
        self.dice_spin = QDoubleSpinBox()
        self.dice_spin.setRange(0.0, 100.0)
        self.dice_spin.setSingleStep(0.1)
        self.dice_spin.setValue(1.0)
        self.dice_spin.setToolTip("λ: weight of the RoI dice loss (eq. 8); ignored by variants without an RoI branch")
        adv.addRow("Dice weight λ", self.dice_spin)
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.seed_spin.setValue(0)
        adv.addRow("Seed", self.seed_spin)
        self.advanced_box.setVisible(False)
        form.addRow(self.advanced_button)
        form.addRow(self.advanced_box)

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

        self.status_label = QLabel("Ready")
        self.status_label.setWordWrap(True)
        self.epoch_bar = QProgressBar()
        self.epoch_bar.setFormat("epoch: %v / %m batches")
        self.epoch_bar.setValue(0)
        self.overall_bar = QProgressBar()
        self.overall_bar.setFormat("overall: %p%")
        self.overall_bar.setValue(0)
        self.eta_label = QLabel("")

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

        self.curves = TrainingCurvesWidget()
        self.curves.setMinimumHeight(160)
        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(5000)
        self.log_view.setPlaceholderText("Training messages and epoch summaries appear here.")

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

    def set_input_size(self, width: int, height: int) -> None:
        self.input_size_combo.setCurrentText(f"{int(width)}x{int(height)}")

    def set_variant(self, variant: str) -> None:
        self.variant_combo.setCurrentIndex(VARIANT_NAMES.index(variant))

    def set_pretrained(self, value: str) -> None:
        """``"auto"``, ``"none"`` or a weights file path."""
        if value in ("auto", "none"):
            self.pretrained_combo.setCurrentIndex(self.pretrained_combo.findData(value))
        else:
            self._set_pretrained_file(value)

    def apply_preset(self, values: dict) -> None:
        """Set folds, epochs, input size, batch size and learning rate from a preset."""
        self.folds_spin.setValue(int(values["folds"]))
        self.epochs_spin.setValue(int(values["epochs"]))
        self.input_size_combo.setCurrentText(str(values["input_size"]))
        self.batch_spin.setValue(int(values["batch_size"]))
        self.lr_spin.setValue(float(values["lr"]))

    def config_kwargs(self) -> dict:
        """The settings as :class:`gusa_core.training.TrainConfig` keyword arguments.

        Raises
        ------
        ValueError
            A setting is invalid (the message says which).
        """
        return {
            "variant": self.variant_combo.currentData(),
            "folds": self.folds_spin.value(),
            "val_fraction": round(self.val_fraction_spin.value(), 4),
            "epochs": self.epochs_spin.value(),
            "batch_size": self.batch_spin.value(),
            "lr": self.lr_spin.value(),
            "dice_weight": self.dice_spin.value(),
            "input_size": parse_input_size(self.input_size_combo.currentText()),
            "device": self.device_combo.currentData() or "auto",
            "pretrained": self.pretrained_combo.currentData() or "auto",
            "seed": self.seed_spin.value(),
        }

    def run_dir(self) -> Path | None:
        """The folder of the run named in the panel."""
        if self.project is None:
            return None
        name = self.run_name_edit.text().strip()
        return Path(self.project.folder) / "runs" / name if name else None

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
            return self._refuse(f"Training needs labelled images: the project has {labelled}. Label some images first.")
        self._launch(run_dir, config, resume=False)
        return True

    def resume(self, run_dir: str | os.PathLike | None = None) -> bool:
        """Continue the stopped or interrupted run ``run_dir`` (default: the one named in the panel)."""
        if self.is_running:
            return False
        if self.project is None:
            return self._refuse("Open a project first.")
        run_dir = Path(run_dir) if run_dir is not None else self.run_dir()
        meta = _read_json(run_dir / _RUN_FILE) if run_dir is not None else None
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
        try:
            return len(self.project.labelled())
        except Exception:
            return sum(1 for r in getattr(self.project, "images", []) if getattr(r, "label", None))

    def _expected_val_images(self, config: dict) -> int:
        n = self._labelled_count()
        folds = int(config.get("folds", 1))
        if folds > 1:
            return max(1, round(n / folds))
        return max(1, round(n * float(config.get("val_fraction", 0.25))))

    # --------------------------------------------------- trainer → GUI
    def _reset_progress_state(self) -> None:
        self._t_last = None           # time of the last trainer event
        self._last_kind = None
        self._folds = 1
        self._fold = 0
        self._epoch_key = None        # (fold, epoch) of the batches being counted
        self._batch_in_epoch = 0
        self._epochs_done = 0         # epochs completed in this session (for the overall bar)
        self._batches_done = 0
        self._vals_done = 0
        self._batches = 0
        self._epochs = 1
        self._last_epoch_rec: dict | None = None
        self.batch_count = 0          # batch records received in this session (tests read it)
        self.summary: dict | None = None

    def _on_trainer_event(self, event) -> None:
        kind, payload, t = event
        handler = getattr(self, f"_on_trainer_{kind}", None)
        if handler is not None:
            handler(payload, t)
        self._t_last = t
        self._last_kind = kind

    def _on_trainer_run_start(self, info: dict, t: float) -> None:
        self._folds = int(info.get("folds") or self._config.get("folds") or 1)
        if self._estimator is not None:
            self._estimator.folds = self._folds
            n_val = info.get("n_val")
            if isinstance(n_val, (list, tuple)) and n_val:
                n_val = sum(n_val) / len(n_val)
            if isinstance(n_val, (int, float)) and n_val > 0:
                self._estimator.val_images = int(round(n_val))
        device = info.get("device")
        if "n_labelled" in info:
            self._log(f"training {info.get('variant', '')} on {device}: {info['n_labelled']} labelled images "
                      f"({info.get('n_masked', '?')} with RoI masks), {self._folds} fold(s), "
                      f"{info.get('epochs', '?')} epochs")
        if device:
            self._set_status(f"Training on {device}…")

    def _on_trainer_fold_start(self, payload, t: float) -> None:
        fold, folds = payload
        self._fold, self._folds = fold, folds
        if self._estimator is not None:
            self._estimator.folds = folds
        self._log(f"fold {fold + 1} of {folds}")

    def _position(self, rec: dict) -> tuple[int, int]:
        """(epochs completed in the run before this record's epoch, epochs per fold).

        Records count folds from 0 and epochs from 1 (as ``gusa train`` prints them).
        """
        fold = int(rec.get("fold", self._fold))
        epochs = int(rec.get("epochs", self._epochs) or 1)
        epoch_index = max(0, int(rec.get("epoch", 1)) - 1)
        return fold * epochs + epoch_index, epochs

    def _on_trainer_batch_end(self, rec: dict, t: float) -> None:
        self.batch_count += 1
        key = (rec.get("fold"), rec.get("epoch"))
        if key != self._epoch_key:
            self._epoch_key = key
            self._batch_in_epoch = 0
        self._batch_in_epoch += 1
        batches = int(rec.get("batches") or max(1, self._batch_in_epoch))
        self._batches = batches
        self._epochs = int(rec.get("epochs") or self._config.get("epochs", 1))
        epochs_before, epochs = self._position(rec)
        done = epochs_before * batches + self._batch_in_epoch
        # A batch's own time is measurable unless the fold (or the run) just began.
        seconds = None
        if self._t_last is not None and self._last_kind in ("batch_end", "epoch_end"):
            seconds = t - self._t_last
        est = self._estimator
        if est is not None:
            est.epochs = epochs
            est.add_batch(done, seconds, batches=batches)
            est.add_validation(epochs_before, None)  # a resumed run starts with validations done
        self.epoch_bar.setRange(0, batches)
        self.epoch_bar.setValue(min(self._batch_in_epoch, batches))
        self.epoch_bar.setFormat(f"fold {int(rec.get('fold', 0)) + 1}/{self._folds}, "
                                 f"epoch {epochs_before % epochs + 1}/{epochs}: %v / %m batches")
        total = max(1, self._folds * epochs * batches)
        self.overall_bar.setRange(0, total)
        self.overall_bar.setValue(min(done, total))
        self._update_eta()
        loss = rec.get("loss")
        if loss is not None:
            self._set_status(f"Training: batch {self._batch_in_epoch}/{batches}, loss {float(loss):.4f}")
        self.batch_finished.emit(rec)
        if self._batch_in_epoch >= batches:
            self.epoch_bar.setFormat("validating…")

    def _on_trainer_epoch_end(self, rec: dict, t: float) -> None:
        self._last_epoch_rec = rec
        seconds = None
        if self._t_last is not None and self._last_kind == "batch_end":
            seconds = t - self._t_last
        epochs_before, epochs = self._position(rec)
        if self._estimator is not None:
            self._estimator.add_validation(epochs_before + 1, seconds)
        self.curves.add_epoch(rec)
        self._log(self._epoch_summary(rec, epochs_before % epochs + 1, epochs))
        self._update_eta()
        self.epoch_finished.emit(rec)

    def _epoch_summary(self, rec: dict, epoch: int, epochs: int) -> str:
        def fmt(key, spec=".3f"):
            v = rec.get(key)
            return "–" if v is None else format(float(v), spec)

        text = (f"fold {int(rec.get('fold', 0)) + 1} epoch {epoch}/{epochs}: "
                f"train loss {fmt('train_loss')} acc {fmt('train_acc')} | "
                f"val loss {fmt('val_loss')} acc {fmt('val_acc')} AUC {fmt('val_auc')} RoI IoU {fmt('val_miou')}")
        if rec.get("seconds") is not None:
            text += f" | {format_duration(float(rec['seconds']))}"
        if rec.get("best"):
            text += " ★ best, saved"
        return text

    def _on_trainer_fold_end(self, payload, t: float) -> None:
        fold, metrics = payload
        acc = metrics.get("val_acc") if isinstance(metrics, dict) else None
        best = metrics.get("best") if isinstance(metrics, dict) else None
        if acc is None and isinstance(best, dict):
            acc = best.get("val_acc")
        self._log(f"fold {fold + 1} finished" + (f": best val acc {float(acc):.3f}" if acc is not None else ""))

    def _on_trainer_log(self, message: str, t: float) -> None:
        self._log(message)

    def _on_trainer_run_end(self, summary: dict, t: float) -> None:
        pass  # reported when the worker returns (after every other event)

    def _update_eta(self) -> None:
        if self._estimator is not None:
            self.eta_label.setText(self._estimator.text())

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
    def _set_status(self, text: str) -> None:
        self.status_label.setText(text)

    def _log(self, text: str) -> None:
        self.log_view.appendPlainText(f"{datetime.now():%H:%M:%S}  {text}")

    def _update_buttons(self) -> None:
        running = self.is_running
        has_project = self.project is not None
        self.start_button.setEnabled(has_project and not running)
        self.stop_button.setEnabled(running and not (self._worker and self._worker.abort_requested))
        resumable = False
        if has_project and not running:
            run_dir = self.run_dir()
            meta = _read_json(run_dir / _RUN_FILE) if run_dir is not None else None
            resumable = meta is not None and meta.get("status") != "finished"
        self.resume_button.setEnabled(resumable)
        for w in (self.preset_button, self.variant_combo, self.folds_spin, self.val_fraction_spin, self.epochs_spin,
                  self.input_size_combo, self.batch_spin, self.device_combo, self.pretrained_combo,
                  self.choose_weights_button, self.run_name_edit, self.advanced_box):
            w.setEnabled(not running)

    def _update_weights_status(self, *_args) -> None:
        choice = self.pretrained_combo.currentData()
        if choice == "none":
            self.weights_status.setText("Random initialisation (no pretrained weights).")
        elif choice == "auto":
            path = imagenet_weights_path()
            if path.is_file():
                self.weights_status.setText(f"ImageNet weights found at {path}")
            else:
                self.weights_status.setText(f"ImageNet weights not found (looked for {path}) → random initialisation. "
                                            "Choose a file, or put densenet169 weights there.")
        else:
            exists = Path(choice).is_file()
            self.weights_status.setText(f"Weights file {choice}" + ("" if exists else " (missing!)"))

    def _set_pretrained_file(self, path: str) -> None:
        index = self.pretrained_combo.findData(path)
        if index < 0:
            self.pretrained_combo.addItem(f"File: {Path(path).name}", path)
            index = self.pretrained_combo.count() - 1
            self.pretrained_combo.setItemData(index, path, Qt.ItemDataRole.ToolTipRole)
        self.pretrained_combo.setCurrentIndex(index)
        self._update_weights_status()

    # ----------------------------------------------------------------- slots
    def showEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().showEvent(event)
        self.detect_devices()

    def detect_devices(self) -> None:
        """List the real devices (in a worker: it imports torch); once."""
        if self._devices_requested:
            return
        self._devices_requested = True
        run_in_thread(_detect_devices, on_result=self._on_devices_detected,
                      on_error=lambda message, details: self.device_combo.setToolTip(f"Device detection failed: {message}"))

    def _on_devices_detected(self, devices) -> None:
        current = self.device_combo.currentData()
        self.device_combo.clear()
        self.device_combo.addItem("Automatic (best available)", "auto")
        for ident, label in devices:
            self.device_combo.addItem(f"{label} [{ident}]", ident)
        index = self.device_combo.findData(current)
        self.device_combo.setCurrentIndex(max(0, index))
        self.device_combo.setToolTip("Devices found: " + ", ".join(label for _i, label in devices))

    def _on_variant_combo_changed(self, _index: int) -> None:
        variant = self.variant_combo.currentData()
        self.variant_label.setText(DESCRIPTIONS.get(variant, ""))
        if not self._run_name_edited:
            self.run_name_edit.setText(default_run_name(variant))
            self._update_buttons()

    def _on_folds_spin_changed(self, value: int) -> None:
        single = value == 1
        self.val_fraction_spin.setVisible(single)
        self.val_fraction_label.setVisible(single)

    def _on_input_size_changed(self, text: str) -> None:
        try:
            parse_input_size(text)
        except ValueError as exc:
            self.input_size_error.setText(str(exc))
            self.input_size_error.setVisible(True)
        else:
            self.input_size_error.setVisible(False)

    def _on_run_name_edited(self, _text: str) -> None:
        self._run_name_edited = True
        self._update_buttons()

    def _on_advanced_button_toggled(self, checked: bool) -> None:
        self.advanced_box.setVisible(checked)
        self.advanced_button.setArrowType(Qt.ArrowType.DownArrow if checked else Qt.ArrowType.RightArrow)

    def _on_choose_weights_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose DenseNet-169 weights", "",
                                              "Weights (*.safetensors *.pth *.pt);;All files (*)")
        if path:
            self._set_pretrained_file(path)

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


def _project_of(window):
    return getattr(window, "project", None)


def install(window) -> None:
    """Add the training dock and the Model ▸ Train… action to the main window.

    The panel is kept as ``window.training_panel``.
    """
    panel = TrainingPanel(_project_of(window))
    window.training_panel = panel
    dock = window.add_dock(panel, "Training", Qt.DockWidgetArea.RightDockWidgetArea)
    if isinstance(dock, QDockWidget):
        dock.setObjectName("training_dock")
        dock.hide()
    action = QAction("Train…", window)
    action.setObjectName("action_train")
    action.setShortcut("Ctrl+T")

    def show():
        if panel.project is not _project_of(window) and not panel.is_running:
            panel.set_project(_project_of(window))
        if isinstance(dock, QDockWidget):
            dock.show()
            dock.raise_()
        panel.show()

    action.triggered.connect(show)
    window.model_menu.addAction(action)
    window.train_action = action
    # Closing the window stops the run (within one batch) so no thread outlives the app.
    panel._close_guard = _StopOnClose(panel, window)
    window.installEventFilter(panel._close_guard)
    changed = getattr(window, "project_opened", None)
    if changed is not None:
        changed.connect(lambda *_: (not panel.is_running) and panel.set_project(_project_of(window)))
