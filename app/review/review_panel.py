"""Review dock: what a trained run predicts for the current image, and where it looked.

For the current image and a chosen run (one fold or the ensemble of all folds)
the panel shows the class probabilities as bars in the class colours, the
predicted class next to the pathologist's label (a disagreement is
highlighted), and draws the attention map over the image on the main canvas:
the RoI branch's output ỹ for attention models, Grad-CAM for the others (the
panel says which). Colour map, opacity and the threshold τ (with an optional
outline of ỹ > τ) change the overlay without predicting again; the
ground-truth RoI can be drawn at the same time.

Prediction runs in a worker (:mod:`app.base.workers`) and is cached per
``(image id, image mtime, run, fold)`` (:mod:`app.review.prediction_cache`), so
returning to an image shows its result at once. "Predict all" fills the image
list with each image's predicted class. Torch is imported only in workers.
The prediction jobs and the probability bars live in :mod:`app.review.review_widgets`
and are re-exported here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import logging
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from app.review.colormaps import COLORMAPS, DEFAULT_COLORMAP
from app.review.prediction_cache import (
    PredictionCache,
    PredictorCache,
    TrainedRun,
    fold_label,
    prediction_key,
    scan_runs,
    shared_prediction_cache,
    shared_predictor_cache,
)
from app.workspace.project_bridge import ProjectBridge
from app.review.review_field import ReviewFieldMixin
from app.review.review_overlay import ATTENTION_LAYER, ROI_LAYER, THRESHOLD_LAYER, ReviewOverlayMixin
from app.review.review_widgets import ProbabilityBarsWidget, predict_many, predict_one
from app.base.workers import Worker, run_in_thread
from gusa_core.project.slides import is_slide

if TYPE_CHECKING:
    from app.shell.host import Host

__all__ = [
    "ATTENTION_LAYER",
    "ROI_LAYER",
    "THRESHOLD_LAYER",
    "ProbabilityBarsWidget",
    "ReviewPanel",
    "predict_one",
    "predict_many",
    "install",
]

log = logging.getLogger(__name__)

_KEEP = object()



def _slider(minimum: int, maximum: int, value: int) -> QSlider:
    s = QSlider(Qt.Orientation.Horizontal)
    s.setRange(minimum, maximum)
    s.setValue(value)
    return s


class ReviewPanel(ReviewFieldMixin, ReviewOverlayMixin, QWidget):
    """The review dock: probabilities, predicted vs. pathologist's label, attention overlay.

    Parameters
    ----------
    project : gusa_core.project.Project or None
        The open project (its runs are listed by :mod:`gusa_core.runs`).
    canvas : object, optional
        The main canvas; needs ``set_overlay(name, rgba or None)``. Without
        one (tests, standalone use) the overlay is only kept in
        :attr:`overlay`.
    image_list : object, optional
        Needs ``set_predictions(dict id → (label, prob))`` for "Predict all".
    prediction_cache, predictor_cache : optional
        Default: the process-wide caches shared with the compare view.
    device : str
        Where models run (``"auto"``).

    Signals
    -------
    prediction_ready(str, object)
        ``(image id, Prediction)`` for the shown image (cached or new); for a
        field shown with :meth:`show_field`, ``(its title, Prediction)``.
    prediction_failed(str, str)
        ``(image id, message)``.
    overlay_changed(object)
        The attention RGBA layer (or ``None``) after every redraw.
    predictions_filled(object)
        The dict given to the image list after "Predict all".
    """

    prediction_ready = Signal(str, object)
    prediction_failed = Signal(str, str)
    overlay_changed = Signal(object)
    predictions_filled = Signal(object)

    def __init__(self, project=None, *, canvas=None, image_list=None,
                 prediction_cache: PredictionCache | None = None,
                 predictor_cache: PredictorCache | None = None,
                 device: str = "auto", parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("ReviewPanel")
        self.project = project
        self.canvas = canvas
        self.image_list = image_list
        self.device = device
        self.cache = prediction_cache if prediction_cache is not None else shared_prediction_cache()
        self.predictors = predictor_cache if predictor_cache is not None else shared_predictor_cache()
        self.image_id: str | None = None
        self.prediction: Any = None
        self.overlay: np.ndarray | None = None
        self.roi_overlay: np.ndarray | None = None
        self.roi_mask: np.ndarray | None = None
        self.threshold_polygons: list[np.ndarray] | None = None
        self.workers_started = 0
        self._worker: Worker | None = None
        self._worker_key = None
        self._queued = False
        self._all_worker: Worker | None = None
        self._all_results: dict[str, tuple[str, float]] = {}
        self._runs: list[TrainedRun] = []
        self._signatures: dict[str, tuple[int, ...]] = {}
        #: When True (set by :func:`install`), predict only while the panel is visible.
        self.only_when_visible = False
        self._stale = False
        self._build()
        self._connect_project()
        self.refresh_runs()

    # -- construction ------------------------------------------------------
    def _build(self) -> None:
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.run_combo = QComboBox()
        self.run_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.run_combo.setMinimumContentsLength(14)
        self.fold_combo = QComboBox()
        form.addRow("Run", self.run_combo)
        form.addRow("Model", self.fold_combo)
        layout.addLayout(form)

        self.status_label = QLabel("Choose a trained run.")
        self.status_label.setWordWrap(True)
        layout.addWidget(self.status_label)
        layout.addWidget(self._build_field_view())

        self.bars = ProbabilityBarsWidget()
        layout.addWidget(self.bars)

        self.predicted_label = QLabel("Predicted: –")
        self.truth_label = QLabel("Pathologist: –")
        self.agreement_label = QLabel("")
        for w in (self.predicted_label, self.truth_label, self.agreement_label):
            w.setTextFormat(Qt.TextFormat.RichText)
            layout.addWidget(w)

        self.kind_label = QLabel("")
        self.kind_label.setWordWrap(True)
        layout.addWidget(self.kind_label)

        display = QFormLayout()
        self.colormap_combo = QComboBox()
        self.colormap_combo.addItems(list(COLORMAPS))
        self.colormap_combo.setCurrentText(DEFAULT_COLORMAP)
        self.opacity_slider = _slider(0, 100, 45)
        self.threshold_slider = _slider(0, 100, 50)
        self.threshold_value = QLabel("τ = 0.50")
        tau_row = QHBoxLayout()
        tau_row.addWidget(self.threshold_slider, 1)
        tau_row.addWidget(self.threshold_value)
        self.heatmap_check = QCheckBox("Show attention map")
        self.heatmap_check.setToolTip("Colour the image by where the model looked (its RoI map, or Grad-CAM)")
        self.heatmap_check.setChecked(True)
        self.outline_check = QCheckBox("Outline ỹ > τ")
        self.outline_check.setToolTip("Draw the outline of the region where the attention exceeds the threshold τ")
        self.roi_check = QCheckBox("Show ground-truth RoI")
        self.roi_check.setToolTip("Show the RoI painted by the pathologist, to compare with the model's")
        display.addRow("Colour map", self.colormap_combo)
        display.addRow("Opacity", self.opacity_slider)
        display.addRow("Threshold", tau_row)
        layout.addLayout(display)
        layout.addWidget(self.heatmap_check)
        layout.addWidget(self.outline_check)
        layout.addWidget(self.roi_check)

        buttons = QHBoxLayout()
        self.predict_button = QPushButton("Predict")
        self.predict_button.setToolTip("Predict the current image again (normally automatic)")
        self.predict_all_button = QPushButton("Predict all")
        self.predict_all_button.setToolTip("Predict every image of the project and show the classes in the image list")
        buttons.addWidget(self.predict_button)
        buttons.addWidget(self.predict_all_button)
        layout.addLayout(buttons)
        self.progress_label = QLabel("")
        layout.addWidget(self.progress_label)
        layout.addStretch(1)

        self._restore_display_settings()
        self.run_combo.currentIndexChanged.connect(self._on_run_combo_changed)
        self.fold_combo.currentIndexChanged.connect(self._on_fold_combo_changed)
        self.colormap_combo.currentIndexChanged.connect(self._on_display_changed)
        self.opacity_slider.valueChanged.connect(self._on_display_changed)
        self.threshold_slider.valueChanged.connect(self._on_threshold_slider_changed)
        self.heatmap_check.toggled.connect(self._on_display_changed)
        self.outline_check.toggled.connect(self._on_display_changed)
        self.roi_check.toggled.connect(self._on_roi_check_toggled)
        self.predict_button.clicked.connect(self._on_predict_button_clicked)
        self.predict_all_button.clicked.connect(self._on_predict_all_button_clicked)

    # -- project -------------------------------------------------------------
    def _connect_project(self) -> None:
        # Through the Qt bridge: mask_changed comes from the autosave thread, and widgets live in the GUI's.
        self._bridge = None
        if getattr(self.project, "events", None) is None:
            return
        self._bridge = ProjectBridge(self.project, self)
        self._bridge.label_changed.connect(self._on_project_label_changed)
        self._bridge.mask_changed.connect(self._on_project_mask_changed)

    def _disconnect_project(self) -> None:
        bridge = getattr(self, "_bridge", None)
        if bridge is not None:
            bridge.disconnect_project()
            bridge.deleteLater()
            self._bridge = None

    def set_project(self, project) -> None:
        """Show another project (clears the image and lists its runs)."""
        self._disconnect_project()
        self.project = project
        self._connect_project()
        self._leave_field()
        self.image_id = None
        self._clear_result()
        self.refresh_runs()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().showEvent(event)
        if self._stale:
            self._on_selection_changed()

    def hideEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().hideEvent(event)
        if self.only_when_visible and self.canvas is not None:
            self._set_attention_overlay(None)  # a hidden panel leaves no overlay behind
            if self._canvas_has_outlines():
                self.canvas.set_outline(ROI_LAYER, None)
            else:
                self.canvas.set_overlay(ROI_LAYER, None)
            self._stale = True

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt API
        self._disconnect_project()
        super().closeEvent(event)

    # -- runs ----------------------------------------------------------------
    def refresh_runs(self, select: str | Path | None = None) -> None:
        """List the project's trained runs again; keep (or select) a run folder."""
        current = str(select) if select is not None else self.run_dir
        self._runs = scan_runs(self.project.folder) if self.project is not None else []
        for info in self._runs:  # a retrained run: forget its models and predictions
            key = str(info.folder)
            if key in self._signatures and self._signatures[key] != info.signature:
                self.cache.invalidate_run(key)
                self.predictors.invalidate_run(key)
            self._signatures[key] = info.signature
        self.run_combo.blockSignals(True)
        self.run_combo.clear()
        for info in self._runs:
            self.run_combo.addItem(f"{info.name} · {info.variant} · {info.status}", str(info.folder))
        index = 0
        if current:
            want = str(Path(current).resolve())
            for i, info in enumerate(self._runs):
                if str(info.folder) == want:
                    index = i
        self.run_combo.setCurrentIndex(index if self._runs else -1)
        self.run_combo.blockSignals(False)
        self._fill_folds()
        if not self._runs:
            self.status_label.setText("No trained run yet: train a model first (Model → Train).")
        self._on_selection_changed()

    def _fill_folds(self) -> None:
        info = self.run_info
        previous = self.fold_combo.currentData() if self.fold_combo.count() else None
        self.fold_combo.blockSignals(True)
        self.fold_combo.clear()
        if info is not None:
            if len(info.folds) > 1:
                self.fold_combo.addItem(fold_label(None, len(info.folds)), None)
            for k in info.folds:
                self.fold_combo.addItem(fold_label(k), k)
            i = self.fold_combo.findData(previous)
            self.fold_combo.setCurrentIndex(i if i >= 0 else 0)
        self.fold_combo.blockSignals(False)

    @property
    def run_info(self) -> TrainedRun | None:
        """The chosen run."""
        i = self.run_combo.currentIndex()
        return self._runs[i] if 0 <= i < len(self._runs) else None

    @property
    def run_dir(self) -> str | None:
        """The chosen run folder, or ``None``."""
        info = self.run_info
        return str(info.folder) if info is not None else None

    @property
    def fold(self) -> int | None:
        """The chosen fold; ``None`` is the ensemble of all folds (or the only fold)."""
        info = self.run_info
        data = self.fold_combo.currentData()
        if data is None and info is not None and len(info.folds) == 1:
            return info.folds[0]
        return data

    def set_run(self, run_dir: str | Path, fold: int | None | object = _KEEP) -> None:
        """Choose a run (listed again if new) and optionally a fold (``None`` = ensemble)."""
        self.refresh_runs(select=run_dir)
        if fold is not _KEEP:
            i = self.fold_combo.findData(fold)
            if i >= 0:
                self.fold_combo.setCurrentIndex(i)

    def _on_run_combo_changed(self, _index: int) -> None:
        self._fill_folds()
        self._on_selection_changed()

    def _on_fold_combo_changed(self, _index: int) -> None:
        self._on_selection_changed()

    def _on_active_run_changed(self, run_dir: str) -> None:
        if run_dir:
            self.set_run(run_dir)
        else:
            self.refresh_runs()

    # -- current image -------------------------------------------------------
    def set_image(self, image_id: str | None) -> None:
        """Review ``image_id`` (shows a cached result at once, else predicts in a worker)."""
        self._leave_field()
        self.image_id = image_id or None
        self._on_selection_changed()

    def _key(self):
        if self.project is None or self.image_id is None or self.run_dir is None:
            return None
        if self.image_id in self.project and is_slide(self.project.image(self.image_id)):
            return None  # a whole slide is reviewed in the Slide heatmap dock, field by field
        return prediction_key(self.image_id, self.project.image_path(self.image_id), self.run_dir, self.fold)

    def _on_selection_changed(self) -> None:
        if self.only_when_visible and not self.isVisible():
            self._stale = True  # nobody looks: predict when the panel is shown
            self._clear_result(keep_text=True)
            return
        self._stale = False
        self._update_truth()
        self._update_roi()
        if self.field is not None:
            self._predict_field()
            return
        key = self._key()
        if key is None:
            self._clear_result()
            return
        cached = self.cache.get(key)
        if cached is not None:
            self._show(cached)
            return
        self._clear_result(keep_text=True)
        self._start_prediction(key)

    def _start_prediction(self, key) -> None:
        if self._worker is not None and self._worker.is_running:
            self._queued = True  # one prediction at a time: the newest request runs next
            return
        self._queued = False
        self.status_label.setText(f"Predicting {key.image_id} with {self.run_info.name} ({fold_label(key.fold)})…")
        self._worker_key = key
        self.workers_started += 1
        self._worker = run_in_thread(
            predict_one, self.predictors, self.cache, key, self.project.image_path(key.image_id),
            key.run_dir, key.fold, self.device,
            on_result=self._on_worker_returned, on_error=self._on_worker_errored,
            on_finished=self._on_worker_finished,
        )

    def _on_worker_returned(self, result) -> None:
        key, prediction = result
        if key == self._key():
            self._show(prediction)

    def _on_worker_errored(self, message: str, details: str) -> None:
        key = self._worker_key
        log.warning("prediction failed: %s\n%s", message, details)
        if key is not None and key == self._key():
            self.status_label.setText(f"Prediction failed: {message}")
            self.prediction_failed.emit(key.image_id, message)

    def _on_worker_finished(self) -> None:
        self._worker = None
        if self._queued:
            self._queued = False
            key = self._key()
            if key is not None and self.cache.get(key) is None:
                self._start_prediction(key)
            elif key is not None:
                self._show(self.cache.get(key))

    def _on_predict_button_clicked(self) -> None:
        if self.field is not None:
            self._predict_field()
            return
        key = self._key()
        if key is None:
            return
        self._start_prediction(key)  # predicts again even when cached (e.g. after retraining in place)

    @property
    def busy(self) -> bool:
        """Whether a prediction worker is running."""
        return any(w is not None and w.is_running for w in (self._worker, self._all_worker, self._field_worker))

    # -- predict all -----------------------------------------------------------
    def _on_predict_all_button_clicked(self) -> None:
        if self._all_worker is not None and self._all_worker.is_running:
            self._all_worker.abort()
            return
        self.predict_all()

    def predict_all(self) -> Worker | None:
        """Predict every image of the project in a worker; fills the image list as results come."""
        if self.project is None or self.run_dir is None:
            return None
        run_dir, fold = self.run_dir, self.fold
        items = [(r.id, self.project.image_path(r.id), prediction_key(r.id, self.project.image_path(r.id), run_dir, fold))
                 for r in self.project.images]
        self._all_results = {}
        self._all_total = len(items)
        self._all_errors = 0
        self.predict_all_button.setText("Stop")
        self.progress_label.setText(f"Predicting 0 / {len(items)}…")
        self.workers_started += 1
        self._all_worker = run_in_thread(
            predict_many, self.predictors, self.cache, items, run_dir, fold, self.device,
            on_yield=self._on_all_yielded, on_error=self._on_all_errored, on_finished=self._on_all_finished,
        )
        return self._all_worker

    def _on_all_yielded(self, item) -> None:
        image_id, label, probs, error = item
        if error is not None:
            self._all_errors += 1
            log.warning("prediction of %s failed: %s", image_id, error)
        else:
            self._all_results[image_id] = (label, float(np.max(probs)))
        done = len(self._all_results) + self._all_errors
        self.progress_label.setText(f"Predicting {done} / {self._all_total}…")
        if self.image_list is not None and (done % 8 == 0):
            self.image_list.set_predictions(dict(self._all_results))

    def _on_all_errored(self, message: str, _details: str) -> None:
        self.progress_label.setText(f"Predict all failed: {message}")

    def _on_all_finished(self) -> None:
        self._all_worker = None
        self.predict_all_button.setText("Predict all")
        results = dict(self._all_results)
        if self.image_list is not None:
            self.image_list.set_predictions(results)
        disagree = 0
        if self.project is not None:
            for image_id, (label, _p) in results.items():
                try:
                    truth = self.project.image(image_id).label
                except Exception:  # noqa: BLE001
                    continue
                disagree += truth is not None and truth != label
        text = f"{len(results)} predicted, {disagree} disagree with the pathologist"
        if self._all_errors:
            text += f", {self._all_errors} failed"
        self.progress_label.setText(text)
        self.predictions_filled.emit(results)
        if self.image_id is not None and self.prediction is None:
            self._on_selection_changed()


# ------------------------------------------------------------------ main window wiring
def install(host: Host) -> ReviewPanel:
    """Add the Review dock (Model → Review) and follow the host's current image and active run.

    The panel predicts only while its dock is visible.
    """
    panel = ReviewPanel(host.project, canvas=host.canvas, image_list=host.image_list)
    panel.only_when_visible = True
    dock = host.add_dock(panel, "Review", Qt.DockWidgetArea.RightDockWidgetArea)
    dock.setObjectName("review_dock")
    action = host.model_menu.addAction("Review")
    action.setObjectName("action_review")
    action.triggered.connect(lambda: host.show_dock("Review"))
    dock.hide()

    host.current_image_changed.connect(panel.set_image)

    def follow_project(project) -> None:
        panel.set_project(project)
        if host.runs.active_run:  # the host's runs already follow the new project
            panel.set_run(host.runs.active_run)

    host.project_opened.connect(follow_project)
    host.runs.active_run_changed.connect(panel._on_active_run_changed)
    def on_runs_changed() -> None:
        panel.refresh_runs()
        panel._on_selection_changed()  # a run trained further: its predictions are redone, not shown stale

    host.runs.runs_changed.connect(on_runs_changed)
    if host.runs.active_run:
        panel.set_run(host.runs.active_run)
    current = host.current_image_id()
    if current is not None:
        panel.set_image(current)
    return panel
