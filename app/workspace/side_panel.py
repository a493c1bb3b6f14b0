"""The side panel: class buttons, tools, layer controls and the current image's facts."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSlider,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.workspace.canvas_tools import MAX_BRUSH, MIN_BRUSH

__all__ = ["SidePanel"]

_TOOL_TEXT = {"brush": ("Brush", "B"), "eraser": ("Eraser", "E"), "lasso": ("Lasso / polygon", "L")}


def _text_color(rgb) -> str:
    r, g, b = rgb
    return "#000000" if (0.299 * r + 0.587 * g + 0.114 * b) > 160 else "#ffffff"


class SidePanel(QWidget):
    """Controls beside the canvas. It holds no state of its own beyond what it shows.

    Signals
    -------
    label_chosen(object)
        A class name, or ``None`` for "unlabelled".
    tool_chosen(str), brush_size_changed(int), mask_visible_changed(bool), opacity_changed(float)
    fill_holes_requested(), clear_mask_requested(), undo_requested(), redo_requested()
    """

    label_chosen = Signal(object)
    tool_chosen = Signal(str)
    brush_size_changed = Signal(int)
    mask_visible_changed = Signal(bool)
    opacity_changed = Signal(float)
    fill_holes_requested = Signal()
    clear_mask_requested = Signal()
    undo_requested = Signal()
    redo_requested = Signal()
    notes_edited = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._class_buttons: dict[str, QPushButton] = {}
        self._classes: list[str] = []
        self._colors: dict[str, tuple[int, int, int]] = {}

        # --- image facts
        self.image_title = QLabel("No image")
        f = self.image_title.font()
        f.setBold(True)
        f.setPointSizeF(f.pointSizeF() * 1.1)
        self.image_title.setFont(f)
        self.image_title.setWordWrap(True)
        self.image_title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.image_facts = QLabel("")
        self.image_facts.setWordWrap(True)
        self.image_facts.setStyleSheet("color: palette(dark);")

        # --- classes
        self.class_box = QGroupBox("Class")
        self._class_grid = QGridLayout(self.class_box)
        self._class_grid.setSpacing(4)
        self._class_group = QButtonGroup(self)
        self._class_group.setExclusive(False)

        # --- tools
        tools_box = QGroupBox("Tools")
        tools_layout = QVBoxLayout(tools_box)
        row = QHBoxLayout()
        self._tool_group = QButtonGroup(self)
        self.tool_buttons: dict[str, QToolButton] = {}
        for name, (text, key) in _TOOL_TEXT.items():
            b = QToolButton()
            b.setText(f"{text.split(' ')[0]} ({key})")
            b.setToolTip(f"{text} — key {key}")
            b.setCheckable(True)
            b.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
            b.setSizePolicy(b.sizePolicy().horizontalPolicy().Expanding, b.sizePolicy().verticalPolicy())
            self._tool_group.addButton(b)
            self.tool_buttons[name] = b
            row.addWidget(b)
            b.clicked.connect(lambda _=False, n=name: self.tool_chosen.emit(n))
        self.tool_buttons["brush"].setChecked(True)
        tools_layout.addLayout(row)

        size_row = QHBoxLayout()
        size_row.addWidget(QLabel("Size"))
        self.size_slider = QSlider(Qt.Orientation.Horizontal)
        self.size_slider.setRange(MIN_BRUSH, 300)
        self.size_spin = QSpinBox()
        self.size_spin.setRange(MIN_BRUSH, MAX_BRUSH)
        self.size_spin.setSuffix(" px")
        self.size_spin.setToolTip("Brush diameter in image pixels ([ and ], or Ctrl+wheel)")
        self.size_slider.setToolTip(self.size_spin.toolTip())
        size_row.addWidget(self.size_slider, 1)
        size_row.addWidget(self.size_spin)
        tools_layout.addLayout(size_row)
        self.size_slider.valueChanged.connect(self._on_size_slider_changed)
        self.size_spin.valueChanged.connect(self._on_size_spin_changed)

        edit_grid = QGridLayout()
        self.undo_button = QPushButton("Undo")
        self.undo_button.setToolTip("Undo the last stroke (Ctrl+Z)")
        self.redo_button = QPushButton("Redo")
        self.redo_button.setToolTip("Redo (Ctrl+Shift+Z or Ctrl+Y)")
        self.fill_button = QPushButton("Fill holes")
        self.fill_button.setToolTip("Fill every hole inside the RoI (one undo step)")
        self.clear_button = QPushButton("Clear mask…")
        self.clear_button.setToolTip("Erase the whole RoI of this image (asks first; undoable)")
        edit_grid.addWidget(self.undo_button, 0, 0)
        edit_grid.addWidget(self.redo_button, 0, 1)
        edit_grid.addWidget(self.fill_button, 1, 0)
        edit_grid.addWidget(self.clear_button, 1, 1)
        tools_layout.addLayout(edit_grid)
        self.undo_button.clicked.connect(self.undo_requested)
        self.redo_button.clicked.connect(self.redo_requested)
        self.fill_button.clicked.connect(self.fill_holes_requested)
        self.clear_button.clicked.connect(self.clear_mask_requested)

        # --- layers
        layers_box = QGroupBox("Layers")
        layers_form = QFormLayout(layers_box)
        self.mask_check = QCheckBox("Show RoI mask (M)")
        self.mask_check.setToolTip("Show or hide the painted RoI over the image (key M)")
        self.mask_check.setChecked(True)
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setValue(80)
        self.opacity_slider.setToolTip("Opacity of the RoI overlay")
        self.opacity_label = QLabel("80 %")
        op_row = QHBoxLayout()
        op_row.addWidget(self.opacity_slider, 1)
        op_row.addWidget(self.opacity_label)
        layers_form.addRow(self.mask_check)
        layers_form.addRow("Opacity", op_row)
        self.mask_check.toggled.connect(self.mask_visible_changed)
        self.opacity_slider.valueChanged.connect(self._on_opacity_slider_changed)

        # --- notes
        notes_box = QGroupBox("Notes")
        notes_layout = QVBoxLayout(notes_box)
        self.notes_edit = QPlainTextEdit()
        self.notes_edit.setPlaceholderText("Notes on this image (saved with the project)")
        self.notes_edit.setMaximumHeight(90)
        self.notes_edit.setTabChangesFocus(True)
        notes_layout.addWidget(self.notes_edit)
        self.notes_edit.textChanged.connect(self._on_notes_edit_changed)

        self.shortcuts = QLabel(
            "<small><b>Keys</b>: 1–4 class, 0 unlabel · N/P or PgDn/PgUp next/previous · "
            "B brush, E eraser, L lasso · [ ] size · Alt inverts · M mask · "
            "wheel zoom · space/middle-drag pan · Ctrl+0 fit · Ctrl+1 100 %</small>"
        )
        self.shortcuts.setWordWrap(True)
        self.shortcuts.setStyleSheet("color: palette(dark);")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.setSpacing(8)
        layout.addWidget(self.image_title)
        layout.addWidget(self.image_facts)
        layout.addWidget(self.class_box)
        layout.addWidget(tools_box)
        layout.addWidget(layers_box)
        layout.addWidget(notes_box)
        layout.addStretch(1)
        layout.addWidget(self.shortcuts)
        self.set_brush_size(40)

    # ---------------------------------------------------------- classes
    def set_classes(self, classes, colors) -> None:
        """Build one coloured button per class (keys 1..9) and an "Unlabelled" one (key 0)."""
        for b in list(self._class_buttons.values()):
            self._class_group.removeButton(b)
            b.deleteLater()
        self._class_buttons.clear()
        self._classes = list(classes)
        self._colors = dict(colors)
        for i, name in enumerate(self._classes):
            rgb = self._colors.get(name, (128, 128, 128))
            b = self._make_class_button(f"{i + 1}  {name}" if i < 9 else name, rgb)
            b.setToolTip(f"Label this image {name} (key {i + 1})" if i < 9 else f"Label this image {name}")
            b.clicked.connect(lambda _=False, n=name: self.label_chosen.emit(n))
            self._class_grid.addWidget(b, i // 2, i % 2)
            self._class_buttons[name] = b
        b = self._make_class_button("0  Unlabelled", (120, 120, 120))
        b.setToolTip("Remove this image's label (key 0)")
        b.clicked.connect(lambda _=False: self.label_chosen.emit(None))
        n = len(self._classes)
        self._class_grid.addWidget(b, (n + 1) // 2, 0, 1, 2)
        self._class_buttons[None] = b

    def _make_class_button(self, text: str, rgb) -> QPushButton:
        b = QPushButton(text)
        b.setCheckable(True)
        b.setMinimumHeight(30)
        c = QColor(*rgb)
        fg = _text_color(rgb)
        b.setStyleSheet(
            f"QPushButton {{ border: 1px solid {c.darker(140).name()}; border-radius: 4px; padding: 4px 8px;"
            f" text-align: left; background: {c.lighter(175).name()}; color: #202020; }}"
            f" QPushButton:hover {{ background: {c.lighter(150).name()}; }}"
            f" QPushButton:checked {{ background: {c.name()}; color: {fg}; font-weight: bold;"
            f" border: 2px solid {c.darker(170).name()}; }}"
        )
        self._class_group.addButton(b)
        return b

    def set_current_label(self, label: str | None) -> None:
        """Check the button of ``label`` (the others unchecked)."""
        for name, b in self._class_buttons.items():
            b.setChecked(name == label)

    def class_button(self, label: str | None) -> QPushButton | None:
        return self._class_buttons.get(label)

    def set_classes_enabled(self, enabled: bool) -> None:
        self.class_box.setEnabled(enabled)

    # ------------------------------------------------------------- image
    def set_image_info(self, title: str, facts: str) -> None:
        self.image_title.setText(title)
        self.image_facts.setText(facts)

    def set_notes(self, text: str) -> None:
        """Show ``text`` in the notes box (without emitting ``notes_edited``)."""
        if self.notes_edit.toPlainText() != text:
            self.notes_edit.blockSignals(True)
            self.notes_edit.setPlainText(text)
            self.notes_edit.blockSignals(False)

    def _on_notes_edit_changed(self) -> None:
        self.notes_edited.emit(self.notes_edit.toPlainText())

    # ------------------------------------------------------------- tools
    def set_tool(self, tool: str) -> None:
        b = self.tool_buttons.get(tool)
        if b is not None:
            b.setChecked(True)

    def set_brush_size(self, size: int) -> None:
        for w in (self.size_slider, self.size_spin):
            w.blockSignals(True)
        self.size_spin.setValue(size)
        self.size_slider.setValue(min(size, self.size_slider.maximum()))
        for w in (self.size_slider, self.size_spin):
            w.blockSignals(False)

    def set_undo_state(self, can_undo: bool, can_redo: bool) -> None:
        self.undo_button.setEnabled(can_undo)
        self.redo_button.setEnabled(can_redo)

    def set_mask_visible(self, visible: bool) -> None:
        self.mask_check.blockSignals(True)
        self.mask_check.setChecked(visible)
        self.mask_check.blockSignals(False)

    def set_opacity(self, opacity: float) -> None:
        self.opacity_slider.setValue(round(opacity * 100))

    def _on_size_slider_changed(self, value: int) -> None:
        self.size_spin.blockSignals(True)
        self.size_spin.setValue(value)
        self.size_spin.blockSignals(False)
        self.brush_size_changed.emit(value)

    def _on_size_spin_changed(self, value: int) -> None:
        self.size_slider.blockSignals(True)
        self.size_slider.setValue(min(value, self.size_slider.maximum()))
        self.size_slider.blockSignals(False)
        self.brush_size_changed.emit(value)

    def _on_opacity_slider_changed(self, value: int) -> None:
        self.opacity_label.setText(f"{value} %")
        self.opacity_changed.emit(value / 100)
