"""Compare models side by side: the paper's Fig. 6 for any image.

:class:`CompareView` is a window of 2 to 4 synchronised panels (zoom and pan
together): panel 1 is the image with the ground-truth RoI, panels 2..N the
attention maps of chosen runs (ỹ for attention models, Grad-CAM for the
others), each titled with the run, its variant, the predicted class and its
probability. The images of the project are browsed from within the window,
and "Export PNG…" writes the comparison as one figure.

The exported figure is drawn by :mod:`app.review.compare_figure` (fixed
layout, so figures of different images line up), the synchronised panels
live in :mod:`app.review.compare_panels`; this module is the window that
predicts and fills them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import logging
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QImage
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.review.colormaps import COLORMAPS, DEFAULT_COLORMAP, attention_rgba, mask_outline_rgba
from app.review.prediction_cache import (
    PredictionCache,
    PredictorCache,
    TrainedRun,
    default_fold,
    prediction_key,
    scan_runs,
    shared_prediction_cache,
    shared_predictor_cache,
)
from app.review.compare_figure import export_size, render_comparison, save_png
from app.review.compare_panels import PANEL_LAYER, ComparePanel, ViewSynchronizer
from app.review.review_panel import predict_one
from app.base.dialogs import Dialogs
from app.base.workers import run_in_thread

if TYPE_CHECKING:
    from app.shell.host import Host

__all__ = ["CompareView", "install"]

log = logging.getLogger(__name__)

MAX_PANELS = 4
MIN_PANELS = 2
ROI_COLOR = (0, 230, 0)

_KIND = {"roi": "ỹ (RoI branch)", "gradcam": "Grad-CAM"}


class CompareView(QDialog):
    """Side-by-side comparison of the attention maps of several runs on one image.

    Parameters
    ----------
    project : gusa_core.project.Project
    image_id : str, optional
        The image shown first (default: the first of the project).
    runs : list of path-like, optional
        Run folders for panels 2..N (default: the newest runs of the project).
    n_panels : int
        2 to 4 (image + 1..3 attention maps).
    prediction_cache, predictor_cache : optional
        Default: the process-wide caches shared with the review panel.
    device : str

    Signals
    -------
    image_changed(str)
        The shown image.
    predictions_done(str)
        Every attention panel of this image has its prediction (or failed).
    """

    image_changed = Signal(str)
    predictions_done = Signal(str)

    def __init__(self, project, image_id: str | None = None, runs=None, *, n_panels: int = 3,
                 prediction_cache: PredictionCache | None = None, predictor_cache: PredictorCache | None = None,
                 device: str = "auto", parent: QWidget | None = None, dialogs: Dialogs | None = None):
        super().__init__(parent)
        self.dialogs = dialogs or Dialogs()
        self.setWindowTitle("Compare models")
        self.setObjectName("CompareView")
        self.setWindowFlag(Qt.WindowType.WindowMaximizeButtonHint, True)
        self.project = project
        self.device = device
        self.cache = prediction_cache if prediction_cache is not None else shared_prediction_cache()
        self.predictors = predictor_cache if predictor_cache is not None else shared_predictor_cache()
        self.image_id: str | None = None
        self.image: np.ndarray | None = None
        self.mask: np.ndarray | None = None
        self.panels: list[ComparePanel] = []
        self.sync = ViewSynchronizer()
        self._pending: set[int] = set()
        self._runs = scan_runs(project.folder) if project is not None else []
        self.workers_started = 0
        self._shown_once = False
        initial_runs = [str(Path(r).resolve()) for r in runs] if runs else [str(r.folder) for r in self._runs]
        self._build(max(MIN_PANELS, min(MAX_PANELS, int(n_panels))), initial_runs)
        self.resize(1200, 560)
        first = image_id
        if first is None and project is not None and project.images:
            first = project.images[0].id
        if first is not None:
            self.set_image(first)

    # -- construction ------------------------------------------------------
    def _build(self, n_panels: int, runs: list[str]) -> None:
        layout = QVBoxLayout(self)
        bar = QHBoxLayout()
        self.prev_button = QPushButton("◀ Previous")
        self.image_combo = QComboBox()
        self.image_combo.setMinimumContentsLength(16)
        for record in getattr(self.project, "images", []):
            self.image_combo.addItem(record.id, record.id)
        self.next_button = QPushButton("Next ▶")
        self.panel_spin = QSpinBox()
        self.panel_spin.setRange(MIN_PANELS, MAX_PANELS)
        self.panel_spin.setValue(n_panels)
        self.panel_spin.setPrefix("Panels: ")
        self.colormap_combo = QComboBox()
        self.colormap_combo.addItems(list(COLORMAPS))
        self.colormap_combo.setCurrentText(DEFAULT_COLORMAP)
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setValue(50)
        self.opacity_slider.setMaximumWidth(120)
        self.fit_button = QPushButton("Fit")
        self.export_button = QPushButton("Export PNG…")
        for w in (self.prev_button, self.image_combo, self.next_button, self.panel_spin):
            bar.addWidget(w)
        bar.addStretch(1)
        bar.addWidget(QLabel("Colour map"))
        bar.addWidget(self.colormap_combo)
        bar.addWidget(QLabel("Opacity"))
        bar.addWidget(self.opacity_slider)
        bar.addWidget(self.fit_button)
        bar.addWidget(self.export_button)
        layout.addLayout(bar)
        self.grid = QHBoxLayout()
        layout.addLayout(self.grid, 1)
        self.status_label = QLabel("")
        layout.addWidget(self.status_label)

        self.prev_button.clicked.connect(self.previous_image)
        self.next_button.clicked.connect(self.next_image)
        self.image_combo.currentIndexChanged.connect(self._on_image_combo_changed)
        self.panel_spin.valueChanged.connect(self.set_panel_count)
        self.colormap_combo.currentIndexChanged.connect(self._on_display_changed)
        self.opacity_slider.valueChanged.connect(self._on_display_changed)
        self.fit_button.clicked.connect(self.fit)
        self.export_button.clicked.connect(self._on_export_button_clicked)
        self._initial_runs = runs
        self.set_panel_count(n_panels)

    def set_panel_count(self, n: int) -> None:
        """Show ``n`` panels (2..4): the image and ``n - 1`` attention maps."""
        n = max(MIN_PANELS, min(MAX_PANELS, int(n)))
        if self.panel_spin.value() != n:
            self.panel_spin.setValue(n)  # comes back here
            return
        while len(self.panels) > n:
            panel = self.panels.pop()
            self.sync.remove(panel.view)
            self.grid.removeWidget(panel)
            panel.deleteLater()
        while len(self.panels) < n:
            i = len(self.panels)
            panel = ComparePanel(with_run_combo=i > 0)
            if i > 0:
                runs = self._initial_runs
                panel.set_runs(self._runs, runs[i - 1] if i - 1 < len(runs) else None)
                panel.run_chosen.connect(lambda _run, k=i: self._on_panel_run_chosen(k))
            self.panels.append(panel)
            self.grid.addWidget(panel, 1)
            self.sync.add(panel.view)
            if self.image is not None:
                panel.view.set_image(self.image)
                self._update_panel(i)
        if self.image is not None:
            self.fit()

    # -- images ----------------------------------------------------------------
    def set_image(self, image_id: str) -> None:
        """Show ``image_id`` in every panel and predict it with every chosen run."""
        from gusa_core.imageio import read_image

        self.image_id = image_id
        i = self.image_combo.findData(image_id)
        if i >= 0 and i != self.image_combo.currentIndex():
            self.image_combo.blockSignals(True)
            self.image_combo.setCurrentIndex(i)
            self.image_combo.blockSignals(False)
        try:
            self.image = read_image(self.project.image_path(image_id))
        except Exception as exc:  # noqa: BLE001 - shown, not raised
            self.image = None
            self.status_label.setText(f"Cannot show {image_id}: {exc}")
            return
        try:
            self.mask = self.project.load_mask(image_id)
        except Exception as exc:  # noqa: BLE001
            self.mask = None
            self.status_label.setText(str(exc))
        for panel in self.panels:
            panel.view.set_image(self.image)
        self._pending.clear()
        for k in range(len(self.panels)):
            self._update_panel(k)
        self.fit()
        self.prev_button.setEnabled(self._image_index() > 0)
        self.next_button.setEnabled(self._image_index() < len(self.project.images) - 1)
        self.image_changed.emit(image_id)
        if not self._pending:
            self.predictions_done.emit(image_id)

    def _image_index(self) -> int:
        ids = [r.id for r in self.project.images]
        return ids.index(self.image_id) if self.image_id in ids else -1

    def next_image(self) -> None:
        """Show the next image of the project."""
        i = self._image_index()
        if 0 <= i < len(self.project.images) - 1:
            self.set_image(self.project.images[i + 1].id)

    def previous_image(self) -> None:
        """Show the previous image of the project."""
        i = self._image_index()
        if i > 0:
            self.set_image(self.project.images[i - 1].id)

    def _on_image_combo_changed(self, _index: int) -> None:
        image_id = self.image_combo.currentData()
        if image_id and image_id != self.image_id:
            self.set_image(image_id)

    def showEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().showEvent(event)
        if not self._shown_once:  # fitted to the panels' real size, once the window is laid out
            self._shown_once = False
            QTimer.singleShot(0, self.fit)

    def fit(self) -> None:
        """Fit the image into the panels (all of them follow the first)."""
        if self.panels:
            self.panels[0].view.fit()

    # -- panel contents --------------------------------------------------------
    def _run_info(self, run_dir: str | None) -> TrainedRun | None:
        for info in self._runs:
            if str(info.folder) == run_dir:
                return info
        return None

    def _update_panel(self, k: int) -> None:
        panel = self.panels[k]
        if self.image_id is None:
            return
        if k == 0:
            label = self.project.image(self.image_id).label
            panel.set_title("Image · ground-truth RoI", f"pathologist: {label}" if label else "unlabelled")
            overlay = mask_outline_rgba(self.mask, color=ROI_COLOR, fill_alpha=0.25) if self.mask is not None else None
            if self.mask is None:
                panel.set_title("Image (no RoI painted)", f"pathologist: {label}" if label else "unlabelled")
            panel.content.overlay = overlay
            panel.view.set_overlay(PANEL_LAYER, overlay)
            return
        info = self._run_info(panel.run_dir)
        panel.prediction = None
        panel.attention = None
        panel.content.overlay = None
        panel.view.set_overlay(PANEL_LAYER, None)
        if info is None:
            panel.set_title("(choose a run)")
            return
        fold = default_fold(info)
        key = prediction_key(self.image_id, self.project.image_path(self.image_id), info.folder, fold)
        cached = self.cache.get(key)
        if cached is not None:
            self._show_prediction(k, cached)
            return
        panel.set_title(info.name if info.name == info.variant else f"{info.name} ({info.variant})", "predicting…")
        self._pending.add(k)
        self.workers_started += 1
        run_in_thread(
            predict_one, self.predictors, self.cache, key, self.project.image_path(self.image_id),
            key.run_dir, fold, self.device,
            on_result=lambda result, k=k: self._on_panel_returned(k, result),
            on_error=lambda message, _details, k=k, key=key: self._on_panel_errored(k, key, message),
        )

    def _on_panel_returned(self, k: int, result) -> None:
        key, prediction = result
        if k >= len(self.panels) or key.image_id != self.image_id:
            return
        info = self._run_info(self.panels[k].run_dir)
        if info is None or str(info.folder) != key.run_dir:
            return
        self._show_prediction(k, prediction)
        self._finish_pending(k)

    def _on_panel_errored(self, k: int, key, message: str) -> None:
        if k < len(self.panels) and key.image_id == self.image_id:
            self.panels[k].set_title(self.panels[k].content.title, f"failed: {message}")
            self.status_label.setText(message)
            self._finish_pending(k)

    def _finish_pending(self, k: int) -> None:
        if k in self._pending:
            self._pending.discard(k)
            if not self._pending and self.image_id is not None:
                self.predictions_done.emit(self.image_id)

    def _show_prediction(self, k: int, prediction) -> None:
        panel = self.panels[k]
        info = self._run_info(panel.run_dir)
        panel.prediction = prediction
        panel.attention = prediction.attention
        p = float(np.asarray(prediction.probs)[prediction.index])
        kind = _KIND.get(prediction.attention_kind, prediction.attention_kind)
        name = (info.name if info.name == info.variant else f"{info.name} ({info.variant})") if info else "model"
        panel.set_title(name, f"{prediction.label} p={p:.2f} · {kind}")
        self._draw_attention(k)

    def _draw_attention(self, k: int) -> None:
        panel = self.panels[k]
        if panel.attention is None:
            return
        rgba = attention_rgba(panel.attention, colormap=self.colormap_combo.currentText(),
                              opacity=self.opacity_slider.value() / 100.0)
        panel.content.overlay = rgba
        panel.view.set_overlay(PANEL_LAYER, rgba)

    def _on_display_changed(self, *_args) -> None:
        for k in range(1, len(self.panels)):
            self._draw_attention(k)

    def _on_panel_run_chosen(self, k: int) -> None:
        self._update_panel(k)

    def set_runs(self, runs) -> None:
        """Choose the runs of panels 2..N (run folders, in order)."""
        self._runs = scan_runs(self.project.folder)
        runs = [str(Path(r).resolve()) for r in runs]
        self._initial_runs = runs
        self.set_panel_count(len(runs) + 1)
        for k, panel in enumerate(self.panels[1:], start=1):
            panel.set_runs(self._runs, runs[k - 1] if k - 1 < len(runs) else None)
        if self.image_id is not None:
            self.set_image(self.image_id)

    @property
    def busy(self) -> bool:
        """Whether a panel is still waiting for its prediction."""
        return bool(self._pending)

    # -- export ------------------------------------------------------------------
    def render(self) -> QImage:
        """The comparison figure of the current image (see :func:`render_comparison`)."""
        if self.image is None:
            raise ValueError("no image to export")
        kinds = {p.prediction.attention_kind for p in self.panels[1:] if p.prediction is not None}
        label = "attention: " + " / ".join(_KIND.get(k, k) for k in sorted(kinds, reverse=True)) if kinds else "attention"
        return render_comparison(self.image, [p.content for p in self._export_panels()],
                                 colormap=self.colormap_combo.currentText(), colorbar_label=label)

    def export_png(self, path: str | Path) -> Path:
        """Write the comparison figure of the current image to ``path`` (PNG, atomic)."""
        path = save_png(path, self.render())
        self.status_label.setText(f"Saved {path}")
        return path

    def export_size(self) -> tuple[int, int]:
        """Size of the exported figure for the current image and panel count."""
        h, w = self.image.shape[:2]
        return export_size(len(self._export_panels()), (w, h))

    def _export_panels(self) -> list:
        """The image panel and the panels that show a prediction (a panel with no run chosen is left out)."""
        return self.panels[:1] + [p for p in self.panels[1:] if p.prediction is not None]

    def _on_export_button_clicked(self) -> None:
        if self.image is None:
            return
        if self.busy:
            self.status_label.setText("Wait until every panel shows its prediction, then export.")
            return
        suggested = str(Path(self.project.folder) / f"{self.image_id}_compare.png")
        path = self.dialogs.save_path(self, "Export comparison", suggested, "PNG image (*.png)")
        if not path:
            return
        if not path.lower().endswith(".png"):
            path += ".png"
        try:
            self.export_png(path)
        except Exception as exc:  # noqa: BLE001 - shown to the user
            from app.base.errors import show_error

            show_error(self, "Export failed", f"Could not write {path}: {exc}")


# ------------------------------------------------------------------ main window wiring
def install(host: Host) -> None:
    """Add Model → "Compare models…" (opens a :class:`CompareView` of the current image)."""
    views: list[CompareView] = []

    def open_compare() -> None:
        project = host.project
        if project is None:
            return
        for previous in views:
            try:
                previous.close()
            except RuntimeError:  # already deleted (closed by the user)
                pass
        views.clear()
        runs = [str(r.folder) for r in scan_runs(project.folder)]
        chosen = host.runs.active_run
        if chosen and str(Path(chosen).resolve()) in runs:  # the active run last, beside the others (Fig. 6 order)
            chosen = str(Path(chosen).resolve())
            runs = [r for r in runs if r != chosen][:2] + [chosen]
        view = CompareView(project, host.current_image_id(), runs[:3] or None,
                           n_panels=max(2, min(3, len(runs)) + 1) if runs else 2, parent=host, dialogs=host.dialogs)
        view.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        views.append(view)
        view.show()

    action = host.model_menu.addAction("Compare models…")
    action.setObjectName("action_compare_models")
    action.triggered.connect(open_compare)
