"""Model → Predict slide…: the active run's heatmaps over the shown slide, as an overlay of the slide viewer.

The sweep (:func:`gusa_core.inference.slide.iter_predict_slide`) runs in a :class:`Worker` with
progress and cancel (stopped within one batch of fields). Its result stays with the panel: the
class map, each class's probability and the attention map are drawn over the slide viewer
with a colour map, an opacity and the τ outline, classes toggled one by one; clicking a field
with the pan tool shows its probabilities, and Open in Review shows that field, read from the slide at the
run's input size, in the Review dock with its prediction and attention map; Add fields as suggestions puts the most probable
fields of each class (``p >= τ``) into the project as images whose suggested class is the
prediction, for review; Save outputs… writes the heatmaps, fields and summary that
``gusa predict-slide`` writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from app.base import errors
from app.base.workers import Worker, run_in_thread
from app.review.colormaps import COLORMAPS
from app.slides.heatmap_overlay import ATTENTION, CLASS_MAP, HEATMAP_LAYER, field_at, heatmap_rgba

if TYPE_CHECKING:
    from app.shell.host import Host

__all__ = ["SlidePredictPanel", "predict_slide_job", "install"]

DOCK_TITLE = "Slide heatmap"


def predict_slide_job(run_dir: str, slide_path: str, *, batch_size: int = 8, overlap: float = 0.5):
    """Worker job: load the run and sweep the slide, yielding the sweep's records (the last has the result)."""
    from gusa_core.inference import Predictor
    from gusa_core.inference.slide import SlideOptions, iter_predict_slide

    predictor = Predictor.from_run(run_dir)
    yield {"stage": "loaded", "settings": None}
    yield from iter_predict_slide(predictor, slide_path, options=SlideOptions(batch_size=batch_size, overlap=overlap))


class SlidePredictPanel(QWidget):
    """The dock: start and cancel a sweep, choose what the overlay shows, read a clicked field."""

    def __init__(self, host: Host, parent: QWidget | None = None):
        super().__init__(parent)
        self.host = host
        self.result = None
        self.result_run: str | None = None  # the run that swept the shown result
        self.field = None  # the clicked field (a FieldResult of the result)
        self._slide_id: str | None = None
        self._worker: Worker | None = None
        self.run_label = QLabel()
        self.run_label.setWordWrap(True)
        self.predict_button = QPushButton("Predict slide")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.predict_button.setToolTip("Sweep the shown slide's tissue with the active run: class and attention heatmaps")
        self.cancel_button.setToolTip("Stop the sweep after the fields in flight")
        self.progress = QProgressBar()
        self.progress.setFormat("%v / %m fields")
        self.mode_combo = QComboBox()
        self.colormap_combo = QComboBox()
        self.colormap_combo.addItems(list(COLORMAPS))
        self.colormap_combo.setCurrentText("viridis")
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setValue(50)
        self.tau_spin = QDoubleSpinBox()
        self.tau_spin.setRange(0.0, 1.0)
        self.tau_spin.setSingleStep(0.05)
        self.tau_spin.setValue(0.5)
        self.outline_check = QCheckBox("τ outline")
        self.outline_check.setChecked(True)
        self.outline_check.setToolTip("Outline where the shown map exceeds τ")
        self.visible_check = QCheckBox("Show overlay")
        self.visible_check.setChecked(True)
        self.visible_check.setToolTip("Draw the heatmap over the slide")
        self.class_list = QListWidget()
        self.class_list.setMaximumHeight(110)
        self.field_label = QLabel("Click a field (pan tool) to read its probabilities.")
        self.field_label.setWordWrap(True)
        self.field_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.review_button = QPushButton("Open in Review")
        self.review_button.setToolTip("Show the clicked field in the Review dock with the run's attention map over it")
        self.review_button.setEnabled(False)
        self.summary_label = QLabel()
        self.summary_label.setWordWrap(True)
        self.save_button = QPushButton("Save outputs…")
        self.save_button.setEnabled(False)
        self.save_button.setToolTip("Write what gusa predict-slide writes: heatmap PNGs and TIFFs, fields GeoJSON and CSV, summary")
        self.suggest_button = QPushButton("Add fields as suggestions")
        self.suggest_button.setToolTip("Add the most probable fields of each class (p ≥ τ) to the project, "
                                       "their predicted class as the suggestion")
        self.suggest_button.setEnabled(False)

        buttons = QHBoxLayout()
        buttons.addWidget(self.predict_button)
        buttons.addWidget(self.cancel_button)
        form = QFormLayout()
        form.addRow("Show", self.mode_combo)
        form.addRow("Colour map", self.colormap_combo)
        form.addRow("Opacity", self.opacity_slider)
        form.addRow("τ", self.tau_spin)
        layout = QVBoxLayout(self)
        layout.addWidget(self.run_label)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.visible_check)
        layout.addLayout(form)
        layout.addWidget(self.outline_check)
        layout.addWidget(QLabel("Classes on the class map"))
        layout.addWidget(self.class_list)
        layout.addWidget(self.field_label)
        layout.addWidget(self.review_button)
        layout.addWidget(self.summary_label)
        layout.addWidget(self.suggest_button)
        layout.addWidget(self.save_button)
        layout.addStretch(1)

        self.predict_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.save_button.clicked.connect(self.save_outputs)
        self.suggest_button.clicked.connect(self.add_suggestions)
        self.review_button.clicked.connect(self.open_in_review)
        for signal in (self.mode_combo.currentIndexChanged, self.colormap_combo.currentIndexChanged,
                       self.opacity_slider.valueChanged, self.tau_spin.valueChanged, self.outline_check.toggled,
                       self.visible_check.toggled, self.class_list.itemChanged):
            signal.connect(self._on_style_changed)
        host.canvas.clicked.connect(self._on_view_clicked)
        host.slide_shown.connect(self._on_host_slide_shown)
        host.runs.active_run_changed.connect(self._refresh_run)
        self._refresh_run()

    # ------------------------------------------------------------------ state
    def _refresh_run(self, *_):
        run = self.host.runs.active_run
        self.run_label.setText(f"Run: {Path(run).name}" if run else "No active run: train or choose one in Runs.")
        self.predict_button.setEnabled(bool(run) and not self.is_running())

    def is_running(self) -> bool:
        return self._worker is not None and self._worker.is_running

    # ------------------------------------------------------------------ sweep
    def start(self) -> bool:
        """Sweep the shown slide with the active run; False when there is no slide or run."""
        slide = self.host.current_slide()
        run = self.host.runs.active_run
        if slide is None or not run or self.is_running():
            self.host.show_status("Show a slide and choose a run first" if not self.is_running() else "A slide is being predicted")
            return False
        self._slide_id, path = slide
        self.result = None
        self.result_run = str(run)
        self.host.canvas.set_overlay(HEATMAP_LAYER, None)
        self.progress.setRange(0, 0)
        self.predict_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.save_button.setEnabled(False)
        self.suggest_button.setEnabled(False)
        worker = Worker(predict_slide_job, run, str(path))
        worker.yielded.connect(self._on_worker_yielded)
        worker.errored.connect(self._on_worker_errored)
        worker.finished.connect(self._on_worker_finished)
        self._worker = worker
        worker.start()
        return True

    def cancel(self) -> None:
        if self._worker is not None:
            self._worker.abort()

    def _on_worker_yielded(self, rec) -> None:
        stage = rec.get("stage")
        if stage == "tissue":
            self.progress.setRange(0, max(1, rec["fields"]))
            self.progress.setValue(0)
        elif stage == "fields":
            self.progress.setValue(rec["done"])
            self.host.show_status(f"Predicting slide: {rec['done']}/{rec['total']} fields, {rec['fields_per_s']:.1f}/s", 2000)
        elif stage == "done":
            self.set_result(rec["result"], self._slide_id)

    def _on_worker_errored(self, message: str, details: str) -> None:
        errors.show_error(self.host, "Slide prediction failed", message, details)

    def _on_worker_finished(self) -> None:
        aborted = self._worker is not None and self._worker.abort_requested and self.result is None
        self._worker = None
        self.cancel_button.setEnabled(False)
        if self.progress.maximum() == 0:
            self.progress.setRange(0, 1)
        self._refresh_run()
        if aborted:
            self.host.show_status("Slide prediction cancelled", 4000)

    # ---------------------------------------------------------------- overlay
    def set_result(self, result, slide_id: str | None) -> None:
        """Show ``result`` (a :class:`~gusa_core.inference.slide.SlideResult`) over slide ``slide_id``."""
        self.result, self._slide_id = result, slide_id
        self.field = None
        self.review_button.setEnabled(False)
        self.mode_combo.blockSignals(True)
        self.mode_combo.clear()
        self.mode_combo.addItems([CLASS_MAP, *result.class_names, ATTENTION])
        self.mode_combo.blockSignals(False)
        self.class_list.blockSignals(True)
        self.class_list.clear()
        for name in result.class_names:
            item = QListWidgetItem(name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked)
            self.class_list.addItem(item)
        self.class_list.blockSignals(False)
        s = result.summary()
        areas = ", ".join(f"{k} {v:.2f}" for k, v in s["area_mm2"].items())
        st = result.settings
        field = f"{st.size[0]}x{st.size[1]} px at {st.mpp:g} µm/px" + (" (BACH field assumed)" if st.source == "default" else "")
        self.summary_label.setText(f"{s['fields']} fields of {field}.<br>Area (mm²): {areas}.<br>"
                                   f"Predicted: <b>{s['predicted'] or '-'}</b>")
        self.save_button.setEnabled(True)
        self.suggest_button.setEnabled(self.host.project is not None)
        self.apply_overlay()

    def _class_colors(self):
        project = self.host.project
        colors = project.class_colors if project is not None else {}
        return [tuple(colors.get(name, (200, 200, 200))) for name in self.result.class_names]

    def apply_overlay(self) -> None:
        """Redraw the overlay from the panel's settings (nothing when the result is another slide's)."""
        view = self.host.canvas
        current = self.host.current_slide()
        if self.result is None or not self.visible_check.isChecked() or current is None or current[0] != self._slide_id:
            view.set_overlay(HEATMAP_LAYER, None)
            return
        visible = [self.class_list.item(i).checkState() == Qt.CheckState.Checked for i in range(self.class_list.count())]
        rgba = heatmap_rgba(self.result, self.mode_combo.currentText() or CLASS_MAP,
                            colormap=self.colormap_combo.currentText(), opacity=self.opacity_slider.value() / 100,
                            tau=self.tau_spin.value(), outline=self.outline_check.isChecked(), visible=visible,
                            class_colors=self._class_colors())
        view.set_overlay(HEATMAP_LAYER, rgba, downsample=self.result.downsample)

    def _on_style_changed(self, *_):
        self.apply_overlay()

    def _on_host_slide_shown(self, _slide_id: str) -> None:
        self.apply_overlay()

    def _on_view_clicked(self, x: float, y: float) -> None:
        if self.result is None:
            return
        f = field_at(self.result, x, y)
        self.field = f
        self.review_button.setEnabled(f is not None)
        if f is None:
            self.field_label.setText(f"No field at ({x:.0f}, {y:.0f}).")
            return
        probs = " · ".join(f"{n} {p:.3f}" for n, p in zip(self.result.class_names, f.probs))
        fx, fy, fw, fh = f.box
        self.field_label.setText(f"Field at ({fx}, {fy}), {fw}×{fh} px: <b>{self.result.class_names[f.index]}</b><br>{probs}"
                                 f"<br>tissue {f.tissue:.2f}, attention {f.attention:.2f}")

    def open_in_review(self) -> Worker | None:
        """Read the clicked field at the run's input size (in the background) and review it in the Review dock."""
        run = self.result_run or self.host.runs.active_run
        if self.result is None or self.field is None or not run:
            return None
        box = tuple(self.field.box)
        title = f"{Path(self.result.path).name}, field at ({box[0]}, {box[1]})"

        def show(image):
            if not self.host.review_field(image, title, run_dir=run, fold=None):
                self.host.show_status("The Review dock is not available", 4000)

        return run_in_thread(_read_field_job, run, str(self.result.path), box, on_result=show,
                             on_error=lambda m, d: errors.show_error(self.host, "Cannot read the field", m, d))

    def add_suggestions(self) -> Worker | None:
        """Read the suggested fields in the background, then add them to the project (copied into it)."""
        from gusa_core.inference.slide_outputs import suggestion_fields

        if self.result is None or self.host.project is None:
            return None
        fields = suggestion_fields(self.result, tau=self.tau_spin.value())
        if not fields:
            self.host.show_status(f"No field has a class probability of at least τ = {self.tau_spin.value():.2f}", 5000)
            return None
        self.suggest_button.setEnabled(False)
        return run_in_thread(_field_images_job, self.result, fields, on_result=self._on_field_images_written,
                             on_error=lambda m, d: errors.show_error(self.host, "Cannot read the fields", m, d),
                             on_finished=lambda: self.suggest_button.setEnabled(self.result is not None))

    def _on_field_images_written(self, written) -> None:
        import shutil

        project = self.host.project
        if project is None:
            return
        for path, label in written:
            rec = project.add_image(path, copy=True)
            if rec.label is None:
                project.set_suggested(rec.id, label)
        if written:
            shutil.rmtree(written[0][0].parent, ignore_errors=True)
        self.host.show_status(f"{len(written)} field(s) added to the project with their predicted class as suggestion", 5000)

    def save_outputs(self, folder=None) -> bool:
        """Write heatmaps (PNG, pyramidal TIFF), fields (GeoJSON, CSV) and the summary into a folder."""
        if self.result is None:
            return False
        folder = folder or self.host.dialogs.directory(self.host, "Save the slide's heatmaps and fields")
        if not folder:
            return False
        from gusa_core.inference.slide_outputs import write_slide_outputs

        target = Path(folder) / Path(self.result.path).stem
        run_in_thread(write_slide_outputs, self.result, target,
                      on_result=lambda _s: self.host.show_status(f"Slide outputs saved to {target}", 5000),
                      on_error=lambda m, d: errors.show_error(self.host, "Cannot save the slide outputs", m, d))
        return True


def _read_field_job(run_dir: str, slide_path: str, box):
    """The field at ``box`` (level-0 pixels) read at the run's input size, as the sweep read it."""
    from gusa_core.runs import Run
    from gusa_core.slides import open_slide

    size = Run(run_dir).input_size
    with open_slide(slide_path) as slide:
        return slide.read_field(box, size)


def _field_images_job(result, fields):
    import tempfile

    from gusa_core.inference.slide_outputs import write_field_images

    return write_field_images(result, fields, tempfile.mkdtemp(prefix="gusa-fields-"))


def install(host: Host) -> SlidePredictPanel:
    """Add the Slide heatmap dock and Model → Predict slide…."""
    panel = SlidePredictPanel(host)
    host.add_dock(panel, DOCK_TITLE)
    action = host.model_menu.addAction("Predict slide…")
    action.setObjectName("action_predict_slide")

    def _start():
        host.show_dock(DOCK_TITLE)
        panel.start()

    action.triggered.connect(_start)
    return panel
