"""The panels of the compare window: graphics views that zoom and pan together, one per image or run."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QGraphicsPixmapItem,
    QGraphicsScene,
    QGraphicsView,
    QLabel,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from app.review.compare_figure import PanelContent, _qimage_rgb, _qimage_rgba
from app.review.prediction_cache import TrainedRun

__all__ = ["SyncedGraphicsView", "ViewSynchronizer", "ComparePanel"]


# ------------------------------------------------------------------ synchronised views
class SyncedGraphicsView(QGraphicsView):
    """A zoomable, pannable image view that reports every change of its view.

    Signals
    -------
    view_changed()
        The transform (zoom) or a scroll position changed.
    """

    view_changed = Signal()

    ZOOM_STEP = 1.25

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        self.setBackgroundBrush(QColor(40, 40, 40))
        self.setFrameShape(QFrame.Shape.NoFrame)
        self._image_item = QGraphicsPixmapItem()
        self._overlay_item = QGraphicsPixmapItem()
        self._image_item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self._overlay_item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self.scene().addItem(self._image_item)
        self.scene().addItem(self._overlay_item)
        self.horizontalScrollBar().valueChanged.connect(self._on_scrollbar_value_changed)
        self.verticalScrollBar().valueChanged.connect(self._on_scrollbar_value_changed)

    def set_image(self, rgb: np.ndarray | None) -> None:
        """Show an ``(H, W, 3)`` image (``None``: nothing)."""
        if rgb is None:
            self._image_item.setPixmap(QPixmap())
            return
        self._image_item.setPixmap(QPixmap.fromImage(_qimage_rgb(rgb)))
        self.scene().setSceneRect(QRectF(0, 0, rgb.shape[1], rgb.shape[0]))

    def set_overlay(self, rgba: np.ndarray | None) -> None:
        """Show an ``(H, W, 4)`` RGBA layer over the image (``None``: none)."""
        self._overlay_item.setPixmap(QPixmap() if rgba is None else QPixmap.fromImage(_qimage_rgba(rgba)))

    def has_overlay(self) -> bool:
        """Whether an overlay is shown."""
        return not self._overlay_item.pixmap().isNull()

    def zoom_by(self, factor: float) -> None:
        """Zoom by ``factor`` about the view's centre (or the mouse, for wheel events)."""
        self.scale(factor, factor)
        self.view_changed.emit()

    def zoom(self) -> float:
        """The current scale (screen pixels per image pixel)."""
        return self.transform().m11()

    def fit(self) -> None:
        """Fit the whole image into the view."""
        rect = self.scene().sceneRect()
        if not rect.isEmpty():
            self.fitInView(rect, Qt.AspectRatioMode.KeepAspectRatio)
        self.view_changed.emit()

    def visible_centre(self):
        """The scene point (image x, y) at the centre of the viewport."""
        return self.mapToScene(self.viewport().rect().center())

    def scroll_position(self) -> tuple[int, int]:
        """``(horizontal, vertical)`` scroll bar values."""
        return self.horizontalScrollBar().value(), self.verticalScrollBar().value()

    def wheelEvent(self, event) -> None:  # noqa: N802 - Qt API
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.zoom_by(self.ZOOM_STEP ** steps)
        event.accept()

    def _on_scrollbar_value_changed(self, _value: int) -> None:
        self.view_changed.emit()


class ViewSynchronizer:
    """Keeps views showing the same region: a change of one is copied to the others.

    Views of equal size with scenes of equal size then show exactly the same
    part of their images.
    """

    def __init__(self, views=()):
        self.views: list[SyncedGraphicsView] = []
        self._syncing = False
        for view in views:
            self.add(view)

    def add(self, view: SyncedGraphicsView) -> None:
        """Synchronise ``view`` with the others (it takes their current view)."""
        self.views.append(view)
        view.view_changed.connect(lambda v=view: self.sync_from(v))
        if len(self.views) > 1:
            self.sync_from(self.views[0])

    def remove(self, view: SyncedGraphicsView) -> None:
        """Stop synchronising ``view``."""
        if view in self.views:
            self.views.remove(view)
            try:
                view.view_changed.disconnect()
            except (RuntimeError, TypeError):
                pass

    def sync_from(self, source: SyncedGraphicsView) -> None:
        """Copy ``source``'s transform and scroll positions to every other view."""
        if self._syncing:
            return
        self._syncing = True
        try:
            transform = source.transform()
            h, v = source.scroll_position()
            for view in self.views:
                if view is source:
                    continue
                if view.transform() != transform:
                    view.setTransform(transform)
                # Same top-left corner (panels may differ in width by a pixel of layout rounding).
                view.horizontalScrollBar().setValue(h)
                view.verticalScrollBar().setValue(v)
        finally:
            self._syncing = False


class ComparePanel(QFrame):
    """One panel: a title, an optional run chooser and a synchronised view."""

    run_chosen = Signal(object)  # the run folder (str) or None

    def __init__(self, *, with_run_combo: bool, parent: QWidget | None = None):
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self.run_combo: QComboBox | None = None
        combo = QComboBox()
        if with_run_combo:
            self.run_combo = combo
            self.run_combo.currentIndexChanged.connect(self._on_run_combo_changed)
            layout.addWidget(self.run_combo)
        else:  # same header height as the other panels, so that all views are the same size
            header = QLabel("Ground truth")
            header.setAlignment(Qt.AlignmentFlag.AlignCenter)
            header.setFixedHeight(combo.sizeHint().height())
            layout.addWidget(header)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.title_label = QLabel("")
        self.title_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.title_label.setTextFormat(Qt.TextFormat.RichText)
        layout.addWidget(self.title_label)
        self.view = SyncedGraphicsView()
        layout.addWidget(self.view, 1)
        self.content = PanelContent("")
        self.prediction = None
        self.attention: np.ndarray | None = None

    def set_runs(self, runs: list[TrainedRun], select: str | None) -> None:
        """Fill the run chooser (no signal); ``select`` is a run folder."""
        if self.run_combo is None:
            return
        self.run_combo.blockSignals(True)
        self.run_combo.clear()
        self.run_combo.addItem("(no run)", None)
        for info in runs:
            self.run_combo.addItem(f"{info.name} · {info.variant}", str(info.folder))
        i = self.run_combo.findData(select) if select else 0
        self.run_combo.setCurrentIndex(max(0, i))
        self.run_combo.blockSignals(False)

    @property
    def run_dir(self) -> str | None:
        """The chosen run folder."""
        return None if self.run_combo is None else self.run_combo.currentData()

    def set_title(self, title: str, subtitle: str = "") -> None:
        """Set both title lines."""
        self.content.title, self.content.subtitle = title, subtitle
        self.title_label.setText(f"<b>{title}</b><br>{subtitle}" if subtitle else f"<b>{title}</b>")

    def _on_run_combo_changed(self, _index: int) -> None:
        self.run_chosen.emit(self.run_dir)
