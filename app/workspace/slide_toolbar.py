"""The slide toolbar over the one canvas: tools, the class painted, brush size in µm, magnifications, GeoJSON.

It is shown above the canvas while a slide is; the slide is opened (and its overview thumbnail
read) in a worker, so a large slide never stalls the window, and
:attr:`SlideToolbarWidget.slide_shown` fires when it is on screen. The class picker's keys are
Shift+1..N (the window's actions, :meth:`SlideToolbarWidget.set_class_index`).
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QSlider,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.base.workers import run_in_thread
from app.workspace.scale_bar import format_length
from app.workspace.canvas_tools import MAGNIFICATIONS, SCREEN_BRUSH

__all__ = ["SlideToolbarWidget", "open_with_thumbnail", "class_key"]

_THUMB = 1024
_TOOL_TEXT = {"brush": ("Brush", "B"), "eraser": ("Eraser", "E"), "lasso": ("Lasso", "L"), "pan": ("Pan", "H")}


def open_with_thumbnail(path):
    """Runs in a worker: open a slide and read its overview thumbnail."""
    from gusa_core.slides import open_slide

    slide = open_slide(path)
    try:
        return slide, slide.get_thumbnail(_THUMB)
    except Exception:
        slide.close()
        raise


def class_key(index: int) -> str | None:
    """The key that picks class ``index`` for painting on a slide (``"Shift+1"``...), or None past the ninth."""
    return f"Shift+{index + 1}" if index < 9 else None


def _swatch(rgb) -> QIcon:
    pm = QPixmap(14, 14)
    pm.fill(QColor(*rgb))
    return QIcon(pm)


class SlideToolbarWidget(QWidget):
    """The toolbar of a slide shown on ``view`` (the window's :class:`~app.workspace.canvas_tools.AnnotationView`).

    Signals
    -------
    slide_shown(str)
        The slide (its id) is open and drawn.
    slide_failed(str, str)
        ``(slide id, message)``: the slide could not be opened.
    import_requested(), export_requested()
        The GeoJSON buttons (the window asks for the file).
    """

    slide_shown = Signal(str)
    slide_failed = Signal(str, str)
    import_requested = Signal()
    export_requested = Signal()

    def __init__(self, view, parent: QWidget | None = None):
        super().__init__(parent)
        self.view = view
        self._slide_id: str | None = None
        self._pending: tuple | None = None
        self._job = 0
        self._colors: list[tuple[int, int, int]] = []
        bar = QHBoxLayout()
        bar.setContentsMargins(6, 4, 6, 4)
        self.tool_buttons: dict[str, QToolButton] = {}
        group = QButtonGroup(self)
        for tool, (text, key) in _TOOL_TEXT.items():
            b = QToolButton()
            b.setText(text)
            b.setCheckable(True)
            b.setToolTip(f"{text} ({key})")
            b.clicked.connect(lambda _=False, t=tool: self.view.set_tool(t))
            group.addButton(b)
            bar.addWidget(b)
            self.tool_buttons[tool] = b
        self.tool_buttons["brush"].setChecked(True)
        self.class_combo = QComboBox()
        self.class_combo.setToolTip("Class painted by the brush and the lasso (Shift+1, Shift+2, …)")
        self.class_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.class_combo.currentIndexChanged.connect(lambda i: self.view.set_class_value(i + 1))
        bar.addWidget(self.class_combo)
        self.brush_slider = QSlider(Qt.Orientation.Horizontal)
        self.brush_slider.setRange(SCREEN_BRUSH[0], 200)
        self.brush_slider.setFixedWidth(90)
        self.brush_slider.setValue(40)
        self.brush_slider.setToolTip("Brush diameter on screen ([ and ])")
        self.brush_slider.valueChanged.connect(self.view.set_brush_size)
        bar.addWidget(self.brush_slider)
        self.brush_label = QLabel()
        self.brush_label.setMinimumWidth(80)
        bar.addWidget(self.brush_label)
        bar.addStretch(1)
        # a second row: in one row the bar alone was 880 px wide, past a laptop's canvas (1366 px minus two docks)
        bar2 = QHBoxLayout()
        bar2.setContentsMargins(6, 0, 6, 4)
        self.mag_buttons: dict[int, QToolButton] = {}
        for i, mag in enumerate(MAGNIFICATIONS, start=1):
            b = QToolButton()
            b.setText(f"{mag}x")
            b.setToolTip(f"Magnification {mag}x (key {i})")
            b.clicked.connect(lambda _=False, m=mag: self.view.set_magnification(m))
            bar2.addWidget(b)
            self.mag_buttons[mag] = b
        fit = QToolButton()
        fit.setText("Fit")
        fit.setToolTip("The whole slide (F)")
        fit.clicked.connect(self.view.fit)
        bar2.addWidget(fit)
        self.regions_check = QCheckBox("Regions")
        self.regions_check.setToolTip("Show or hide the painted class regions")
        self.regions_check.setChecked(True)
        self.regions_check.toggled.connect(self.view.set_mask_visible)
        bar2.addWidget(self.regions_check)
        for text, tip, signal in (("Import…", "Import regions from QuPath GeoJSON (level-0 coordinates)", self.import_requested),
                                  ("Export…", "Export the regions as QuPath GeoJSON (level-0 coordinates)", self.export_requested)):
            b = QToolButton()
            b.setText(text)
            b.setToolTip(tip)
            b.clicked.connect(signal.emit)
            bar2.addWidget(b)
        bar2.addStretch(1)
        self.status_label = QLabel()
        bar2.addWidget(self.status_label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(bar)
        layout.addLayout(bar2)
        v = self.view
        v.zoom_changed.connect(self._on_view_zoom_changed)
        v.brush_size_changed.connect(self._on_view_brush_size_changed)
        v.tool_changed.connect(self._on_view_tool_changed)
        self._refresh_labels()

    # ------------------------------------------------------------------- api
    def slide_id(self) -> str | None:
        return self._slide_id

    def set_classes(self, classes, colors: dict) -> None:
        """The classes offered for painting (value ``k`` is ``classes[k - 1]``) and their colours."""
        current = max(0, self.class_combo.currentIndex())
        self.class_combo.blockSignals(True)
        self.class_combo.clear()
        for i, name in enumerate(classes):
            self.class_combo.addItem(_swatch(colors.get(name, (200, 0, 0))), name)
            key = class_key(i)
            tip = f"Paint {name} ({key})" if key else f"Paint {name}"
            self.class_combo.setItemData(i, tip, Qt.ItemDataRole.ToolTipRole)
        self.class_combo.setCurrentIndex(min(current, len(classes) - 1))
        self.class_combo.blockSignals(False)
        self.view.set_class_value(self.class_combo.currentIndex() + 1)
        self._colors = [tuple(int(c) for c in colors.get(n, (200, 0, 0))) for n in classes]
        if self.view.is_slide() and self.view.editor() is not None:
            self.view.set_mask_colors(self._colors)

    def set_class_index(self, index: int | None) -> None:
        """Paint class ``index`` (the window's Shift+1..N land here); None picks the eraser."""
        if index is None:
            self.view.set_tool("eraser")
        else:
            self.class_combo.setCurrentIndex(index)
            if self.view.tool() == "eraser":
                self.view.set_tool("brush")

    def show_slide(self, slide_id: str, path, editor, downsample: float) -> None:
        """Open ``path`` in a worker and show it with ``editor`` (a MaskEditor over its label mask)."""
        self.close_slide()
        self._slide_id = slide_id
        self._job += 1
        job = self._job
        self._pending = (editor, downsample)
        run_in_thread(
            open_with_thumbnail,
            path,
            on_result=lambda res: self._on_opened(job, res),
            on_error=lambda msg, details: self._on_open_failed(job, msg),
        )

    def close_slide(self) -> None:
        """Stop showing the slide and close its file."""
        slide = self.view.slide()
        if slide is not None:
            self.view.set_editor(None)
            self.view.set_slide(None)
            slide.close()
        self._slide_id = None
        self._pending = None

    def shutdown(self) -> None:
        self.close_slide()
        self.view.shutdown()

    # ------------------------------------------------------------- callbacks
    def _on_opened(self, job: int, result) -> None:
        slide, thumb = result
        if job != self._job or self._pending is None:
            slide.close()  # another slide was asked for meanwhile
            return
        editor, downsample = self._pending
        self._pending = None
        self.view.set_slide(slide, thumb)
        self.view.set_editor(editor, downsample=downsample, colors=self._colors)
        self._refresh_labels()
        self.slide_shown.emit(self._slide_id)

    def _on_open_failed(self, job: int, message: str) -> None:
        if job == self._job:
            self.view.set_slide(None)
            self.slide_failed.emit(self._slide_id or "", message)

    def _on_view_zoom_changed(self, zoom: float) -> None:
        self._refresh_labels()

    def _on_view_brush_size_changed(self, px: int) -> None:
        if not self.view.is_slide():
            return
        self.brush_slider.blockSignals(True)
        self.brush_slider.setValue(px)
        self.brush_slider.blockSignals(False)
        self._refresh_labels()

    def _on_view_tool_changed(self, tool: str) -> None:
        self.tool_buttons[tool].setChecked(True)

    def _refresh_labels(self) -> None:
        um = self.view.brush_um()
        self.brush_label.setText(f"⌀ {format_length(round(um, 1 if um < 10 else 0))}" if um else f"⌀ {self.view.brush_size()} px")
        slide = self.view.slide()
        if slide is None:
            self.status_label.setText("")
            return
        mag = self.view.magnification()
        upp = self.view.um_per_screen_px()
        text = f"{mag:.1f}x · {upp:.2f} µm/px" if mag else "uncalibrated"
        self.status_label.setText(f"{text} · level {self.view.current_level()}")
