"""The panels of the compare window: canvases that zoom and pan together, one per image or run."""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtWidgets import QComboBox, QFrame, QLabel, QSizePolicy, QVBoxLayout, QWidget

from app.review.compare_figure import PanelContent
from app.review.prediction_cache import TrainedRun
from app.workspace.canvas_view import CanvasView

__all__ = ["PANEL_LAYER", "SyncedCanvasView", "ViewSynchronizer", "ComparePanel"]


# ------------------------------------------------------------------ synchronised views
#: The canvas overlay of a panel (the ground-truth RoI or a run's attention map).
PANEL_LAYER = "compare"


class SyncedCanvasView(CanvasView):
    """A read-only canvas (the one canvas of the workspace, without tools): wheel zooms about the
    cursor, a drag pans; every change of its view is reported by ``view_changed``."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setMinimumSize(120, 90)
        self.setCursor(Qt.CursorShape.OpenHandCursor)
        self._drag: QPointF | None = None

    def has_overlay(self) -> bool:
        """Whether an overlay is shown."""
        return PANEL_LAYER in self.overlay_names()

    def wheelEvent(self, event) -> None:  # noqa: N802 - Qt API
        dy = event.angleDelta().y()
        if dy:
            self.zoom_by(math.pow(2.0, dy / 360.0), event.position())
        event.accept()

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt API
        self._drag = event.position()
        self.setCursor(Qt.CursorShape.ClosedHandCursor)
        event.accept()

    def mouseMoveEvent(self, event) -> None:  # noqa: N802 - Qt API
        if self._drag is not None:
            d = event.position() - self._drag
            self._drag = event.position()
            self.pan_by(d.x(), d.y())
        event.accept()

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802 - Qt API
        self._drag = None
        self.setCursor(Qt.CursorShape.OpenHandCursor)
        event.accept()


class ViewSynchronizer:
    """Keeps views showing the same region: a change of one is copied to the others.

    Views of equal size showing images of equal size then show exactly the same
    part of their images.
    """

    def __init__(self, views=()):
        self.views: list[SyncedCanvasView] = []
        self._syncing = False
        for view in views:
            self.add(view)

    def add(self, view: SyncedCanvasView) -> None:
        """Synchronise ``view`` with the others (it takes their current view)."""
        self.views.append(view)
        view.view_changed.connect(lambda v=view: self.sync_from(v))
        if len(self.views) > 1:
            self.sync_from(self.views[0])

    def remove(self, view: SyncedCanvasView) -> None:
        """Stop synchronising ``view``."""
        if view in self.views:
            self.views.remove(view)
            try:
                view.view_changed.disconnect()
            except (RuntimeError, TypeError):
                pass

    def sync_from(self, source: SyncedCanvasView) -> None:
        """Copy ``source``'s zoom and offset to every other view."""
        if self._syncing:
            return
        self._syncing = True
        try:
            for view in self.views:
                if view is not source:
                    view.set_view(source.zoom(), source.offset())
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
        self.view = SyncedCanvasView()
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
