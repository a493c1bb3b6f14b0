"""The settings form of the training panel: variant, folds, epochs, input size, device, weights, run name.

A mixin of :class:`~app.training.training_panel.TrainingPanel`: it builds the
form's widgets and turns them into the keyword arguments of the trainer
(:meth:`config_kwargs`). The device list is detected in a worker the first
time the panel is shown.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QToolButton,
    QWidget,
)

from app.base.workers import run_in_thread
from app.training.training_job import (
    INPUT_SIZE_PRESETS,
    TRAINING_PRESETS,
    _detect_devices,
    default_run_name,
    imagenet_weights_path,
    parse_input_size,
)
from gusa_core.models_registry import DEFAULT_VARIANT, DESCRIPTIONS, VARIANT_NAMES
from gusa_core.training.precision import choose_train_precision

__all__ = ["TrainingFormMixin"]


def _breakable(path) -> str:
    """``path`` with a line-break opportunity after each separator: a long path wraps in a narrow dock."""
    return str(path).replace("/", "/\u200b").replace("\\", "\\\u200b")


class TrainingFormMixin:
    """The settings form (see :class:`~app.training.training_panel.TrainingPanel`)."""

    def _build_form(self) -> QWidget:
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
        self.choose_weights_button.setToolTip("Start from a DenseNet-169 weights file (.safetensors, .pth or .pt)")
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
        self.advanced_button.setToolTip("Learning rate, RoI loss weight, accepted suggestions, class weights, seed, "
                                        "precision and slide field")
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
        self.suggested_combo = QComboBox()
        for text, value in (("include", "include"), ("weigh ×0.5", "weight"), ("exclude", "exclude")):
            self.suggested_combo.addItem(text, value)
        self.suggested_combo.setToolTip("Masks accepted from a model's suggestion without an edit: train on them, "
                                        "weigh their dice term by 0.5, or leave them out (edited ones count as painted)")
        adv.addRow("Accepted suggestions", self.suggested_combo)
        self.class_weights_combo = QComboBox()
        self.class_weights_combo.addItem("equal (the paper)", "none")
        self.class_weights_combo.addItem("balanced by class counts", "balanced")
        self.class_weights_combo.setToolTip("Balanced: each class's cross-entropy weighs n / (k · n_class) over the "
                                            "training images, so a project of mostly Normal images does not teach "
                                            "the network that most images are Normal")
        adv.addRow("Class weights", self.class_weights_combo)
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.seed_spin.setValue(0)
        adv.addRow("Seed", self.seed_spin)
        self.precision_combo = QComboBox()
        self.precision_combo.addItem("Automatic (by the hardware)", "auto")
        self.precision_combo.addItem("fp32", "fp32")
        self.precision_combo.addItem("bf16 autocast", "bf16")
        self.precision_combo.setToolTip(_precision_tip())
        adv.addRow("Precision", self.precision_combo)
        self.field_mpp_spin = QDoubleSpinBox()
        self.field_mpp_spin.setDecimals(3)
        self.field_mpp_spin.setRange(0.05, 20.0)
        self.field_mpp_spin.setSingleStep(0.05)
        self.field_mpp_spin.setValue(0.42)
        self.field_mpp_spin.setSuffix(" µm/px")
        self.field_mpp_spin.setToolTip("Slides train through 2048x1536 fields at this pixel size (BACH: 0.42 µm/px, "
                                       "about 20x), resized to the input size; 0.84 is about 10x")
        adv.addRow("Slide field", self.field_mpp_spin)
        self.advanced_box.setVisible(False)
        form.addRow(self.advanced_button)
        form.addRow(self.advanced_box)
        return form_box

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
            "suggested_masks": self.suggested_combo.currentData() or "include",
            "class_weights": self.class_weights_combo.currentData() or "none",
            "input_size": parse_input_size(self.input_size_combo.currentText()),
            "device": self.device_combo.currentData() or "auto",
            "pretrained": self.pretrained_combo.currentData() or "auto",
            "seed": self.seed_spin.value(),
            "precision": self.precision_combo.currentData() or "auto",
            "field_mpp": round(self.field_mpp_spin.value(), 4),
        }
    def _update_weights_status(self, *_args) -> None:
        choice = self.pretrained_combo.currentData()
        if choice == "none":
            self.weights_status.setText("Random initialisation (no pretrained weights).")
        elif choice == "auto":
            path = imagenet_weights_path()
            if path.is_file():
                self.weights_status.setText(f"ImageNet weights found at {_breakable(path)}")
            else:
                self.weights_status.setText(f"ImageNet weights not found (looked for {_breakable(path)}) → random initialisation. "
                                            "Choose a file, or put densenet169 weights there.")
        else:
            exists = Path(choice).is_file()
            self.weights_status.setText(f"Weights file {_breakable(choice)}" + ("" if exists else " (missing!)"))

    def _set_pretrained_file(self, path: str) -> None:
        index = self.pretrained_combo.findData(path)
        if index < 0:
            self.pretrained_combo.addItem(f"File: {Path(path).name}", path)
            index = self.pretrained_combo.count() - 1
            self.pretrained_combo.setItemData(index, path, Qt.ItemDataRole.ToolTipRole)
        self.pretrained_combo.setCurrentIndex(index)
        self._update_weights_status()

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
        path = self.dialogs.open_path(self, "Choose DenseNet-169 weights",
                                              "Weights (*.safetensors *.pth *.pt);;All files (*)")
        if path:
            self._set_pretrained_file(path)


def _precision_tip() -> str:
    """What "Automatic" means on this computer's CPU (reads /proc/cpuinfo once; no torch)."""
    used, reason = choose_train_precision("auto", "cpu")
    return ("What the network computes in; the weights stay fp32. Automatic: bf16 on CPUs with AVX-512 BF16 or AMX, "
            f"fp16 on CUDA GPUs, fp32 elsewhere. bf16 on a GPU: Ampere and later.\nOn this computer's CPU: {used} ({reason}).")
