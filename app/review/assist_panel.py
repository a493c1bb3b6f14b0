"""Model → Assisted annotation: suggested RoIs to accept or correct, and what to annotate next (feature).

A scan runs every fold model of the active run over the project in a worker
(:func:`gusa_core.assist.scan_project`, aborted between images). Then:

- an image without a mask shows the ensemble's ỹ, thresholded at τ (the
  run's validated ``roi_tau`` by default) and cleaned, as a **dashed
  outline**: Enter (or the Accept button) makes it the mask in one undo step
  and marks it "accepted" in the project; Delete rejects it (both keys only
  while the canvas or this panel has the focus, never in its list or field,
  another dock's text field or a dialog); a brush, eraser
  or lasso stroke on it accepts it first and then edits it ("edited");
- the **queue** ranks images by what the models least know, in turns from
  each predicted class (:func:`gusa_core.assist.annotation_queue`); the image list shows the rank
  in its "Next" column and Shift+N jumps to the next image in the queue.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np
from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.base.workers import Worker
from gusa_core.errors import GusaError
from gusa_core.runs import read_run_meta, stored_roi_tau, stored_temperature

if TYPE_CHECKING:
    from app.shell.host import Host

__all__ = ["AssistPanel", "install", "OUTLINE", "MIN_SUGGEST_SIZE"]

#: The canvas outline name of the suggestion.
OUTLINE = "suggestion"
#: Below this input size the RoI map is too coarse for suggestions worth correcting (benchmarks/roi_quality.py).
MIN_SUGGEST_SIZE = (256, 192)
_COLOR = (255, 196, 0)
_EDIT_TOOLS = ("brush", "eraser", "lasso")


def _scan_job(run_dir, project, temperature):
    """The worker's generator: one scan record per image (aborted between images).

    The RoI map is shift-and-stitched to stride 8, as ``gusa suggest`` does by
    default: four network passes an image, for suggestions of which 0.84-1.00
    rather than 0.72 reach IoU 0.7 on the demo (``benchmarks/roi_quality.py``).
    """
    from gusa_core.assist import scan_project

    yield from scan_project(run_dir, project, temperature=temperature, stitch=True)


def mask_polygons(mask: np.ndarray) -> list[np.ndarray]:
    """Outer and hole contours of a mask as ``(N, 2)`` (row, col) arrays, on pixel corners."""
    contours, _ = cv2.findContours((mask > 0).astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    return [c.reshape(-1, 2)[:, ::-1].astype(float) + 0.5 for c in contours if len(c) >= 2]


class AssistPanel(QWidget):
    """The Assist dock: scan, τ, the queue, accept / reject / next.

    Signals
    -------
    scan_finished(int)
        A scan ended with this many images scanned.
    suggestion_changed(object)
        The image whose suggestion is shown (its id), or None.
    """

    scan_finished = Signal(int)
    suggestion_changed = Signal(object)

    def __init__(self, host: Host, parent: QWidget | None = None):
        super().__init__(parent)
        self.host = host
        self.run_dir: str | None = None
        self.records: dict[str, dict] = {}
        self.queue: list = []
        self.rejected: set[str] = set()
        self.visited: set[str] = set()
        self.pending: tuple[str, np.ndarray] | None = None
        self._worker: Worker | None = None

        self.run_label = QLabel("No run")
        self.run_label.setWordWrap(True)
        self.warning = QLabel("")
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet("color: #b26a00")
        self.warning.hide()
        self.tau = QDoubleSpinBox()
        self.tau.setRange(0.05, 0.95)
        self.tau.setSingleStep(0.05)
        self.tau.setDecimals(2)
        self.tau.setValue(0.5)
        self.tau.setToolTip("Threshold of the RoI map ỹ; the run's validated value by default")
        self.tau.valueChanged.connect(lambda _v: self.update_suggestion())
        self.scan_button = QPushButton("Scan images")
        self.scan_button.setToolTip("Predict every image with the active run: suggested RoIs and the annotate-next queue")
        self.scan_button.clicked.connect(self._on_scan_button_clicked)
        self.progress = QProgressBar()
        self.progress.setFormat("%v of %m images")
        self.queue_list = QListWidget()
        self.queue_list.itemActivated.connect(self._on_queue_item_activated)
        self.queue_list.itemClicked.connect(self._on_queue_item_activated)
        self.accept_button = QPushButton("Accept (Enter)")
        self.accept_button.setToolTip("Make the suggested RoI this image's mask (one undo step)")
        self.accept_button.clicked.connect(self.accept)
        self.reject_button = QPushButton("Reject (Delete)")
        self.reject_button.setToolTip("Drop the suggestion for this image")
        self.reject_button.clicked.connect(self.reject)
        self.next_button = QPushButton("Next to annotate (Shift+N)")
        self.next_button.setToolTip("Go to the image the model knows least about")
        self.next_button.clicked.connect(self.next_to_annotate)

        tau_row = QHBoxLayout()
        tau_row.addWidget(QLabel("Suggestion threshold τ"))
        tau_row.addWidget(self.tau)
        scan_row = QHBoxLayout()
        scan_row.addWidget(self.scan_button)
        scan_row.addWidget(self.progress, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.accept_button)
        buttons.addWidget(self.reject_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.run_label)
        layout.addWidget(self.warning)
        layout.addLayout(tau_row)
        layout.addLayout(scan_row)
        layout.addLayout(buttons)
        queue_label = QLabel("Next to annotate (what the model least knows first)")
        queue_label.setToolTip("Most uncertain first, in turns from each class the model predicts,\n"
                               "so each handful covers every kind of field (gusa rank --by-score: score alone)")
        layout.addWidget(queue_label)
        layout.addWidget(self.queue_list, 1)
        layout.addWidget(self.next_button)

        self.accept_action = self._action("Accept suggested RoI", self.accept, ["Return", "Enter"], "action_accept_suggestion",
                                          scoped=True)
        self.reject_action = self._action("Reject suggested RoI", self.reject, ["Delete"], "action_reject_suggestion",
                                          scoped=True)
        for w in (self.tau, self.queue_list):  # they keep their own Enter and Delete
            w.installEventFilter(self)
        self.next_action = self._action("Next to annotate", self.next_to_annotate, ["Shift+N"], "action_next_to_annotate")
        host.canvas.installEventFilter(self)
        host.canvas.stroke_finished.connect(self._on_canvas_stroke_finished)
        host.current_image_changed.connect(lambda _id: self.update_suggestion())
        self._update_buttons()

    def _action(self, text: str, slot, keys: list[str], name: str, *, scoped: bool = False) -> QAction:
        a = QAction(text, self.host)
        a.setObjectName(name)
        a.setShortcuts([QKeySequence(k) for k in keys])
        a.triggered.connect(slot)
        if scoped:  # keys of the canvas and this panel only: a text field, list or dialog keeps Enter and Delete
            a.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            self.host.canvas.addAction(a)
            self.addAction(a)
        else:
            self.host.addAction(a)  # shortcuts work with the menu bar hidden
        self.host.image_menu.addAction(a)
        return a

    # ------------------------------------------------------------ run
    def set_run(self, run_dir) -> None:
        """Follow a run: forget the previous scan, take its τ; scan again with :meth:`start_scan`."""
        self.abort()
        self.run_dir = str(run_dir) if run_dir else None
        self.records.clear()
        self.queue = []
        self.queue_list.clear()
        self.host.image_list.set_queue(None)
        meta = read_run_meta(self.run_dir) if self.run_dir else None
        if meta is None:
            self.run_label.setText("No finished run: train one, then scan.")
            self.warning.hide()
        else:
            size = meta.get("input_size") or [0, 0]
            self.run_label.setText(f"Run {meta.get('name') or self.run_dir.rsplit('/', 1)[-1]} ({meta.get('variant')}, {size[0]}×{size[1]})")
            small = size[0] < MIN_SUGGEST_SIZE[0] or size[1] < MIN_SUGGEST_SIZE[1]
            self.warning.setText(f"Trained at {size[0]}×{size[1]}: below {MIN_SUGGEST_SIZE[0]}×{MIN_SUGGEST_SIZE[1]} the RoI map "
                                 "is too coarse for good suggestions.")
            self.warning.setVisible(small)
            self.tau.blockSignals(True)
            self.tau.setValue(stored_roi_tau(self.run_dir) or 0.5)
            self.tau.blockSignals(False)
        self.update_suggestion()

    def start_scan(self) -> bool:
        """Scan every image of the project with the run's folds, in a worker; False when it cannot start."""
        project = self.host.project
        if project is None or not self.run_dir or self.is_running():
            return False
        self.records.clear()
        self.progress.setRange(0, max(1, len(project.images)))
        self.progress.setValue(0)
        w = Worker(_scan_job, self.run_dir, project, stored_temperature(self.run_dir))
        w.yielded.connect(self._on_worker_yielded)
        w.errored.connect(self._on_worker_errored)
        w.finished.connect(self._on_worker_finished)
        self._worker = w
        w.start()
        self._update_buttons()
        return True

    def is_running(self) -> bool:
        return self._worker is not None and self._worker.is_running

    def abort(self) -> None:
        if self._worker is not None and self._worker.is_running:
            self._worker.abort()

    def _on_scan_button_clicked(self) -> None:
        if self.is_running():
            self.abort()
        else:
            self.start_scan()

    def _on_worker_yielded(self, rec: dict) -> None:
        self.progress.setMaximum(rec["total"])
        self.progress.setValue(rec["done"])
        if rec.get("error") is None:
            self.records[rec["id"]] = rec

    def _on_worker_errored(self, message: str, details: str) -> None:
        self.host.show_status(f"Scan failed: {message}", 8000)

    def _on_worker_finished(self) -> None:
        self._worker = None
        self.refresh_queue()
        self.update_suggestion()
        self._update_buttons()
        self.scan_finished.emit(len(self.records))

    # ---------------------------------------------------------- queue
    def refresh_queue(self) -> None:
        """Rank the scanned images again (labels and masks may have changed since the scan)."""
        from gusa_core.assist import annotation_queue

        project = self.host.project
        records = [r for i, r in self.records.items() if project is not None and i in project]
        self.queue = annotation_queue(records, project) if records else []
        self.queue_list.clear()
        for rank, it in enumerate(self.queue, 1):
            item = QListWidgetItem(f"{rank}. {it.id} — {it.reason} ({it.score:.2f})")
            item.setData(Qt.ItemDataRole.UserRole, it.id)
            self.queue_list.addItem(item)
        self.host.image_list.set_queue([(it.id, it.score, it.reason) for it in self.queue] or None)

    def next_to_annotate(self) -> str | None:
        """Show the best-ranked queued image not visited yet (the current one counts as visited); its id, or None."""
        current = self.host.current_image_id()
        if current is not None:
            self.visited.add(current)
        for it in self.queue:
            if it.id != current and it.id not in self.visited:
                self.visited.add(it.id)
                self.host.select_image(it.id)
                return it.id
        self.host.show_status("Nothing left in the queue" if self.queue else "Scan the images first", 3000)
        return None

    def _on_queue_item_activated(self, item) -> None:
        image_id = item.data(Qt.ItemDataRole.UserRole)
        self.visited.add(image_id)
        self.host.select_image(image_id)

    # ----------------------------------------------------- suggestions
    def update_suggestion(self) -> None:
        """Show the current image's suggestion (an image without a mask, scanned, not rejected)."""
        from gusa_core.assist import suggestion

        self.pending = None
        project, image_id = self.host.project, self.host.current_image_id()
        rec = self.records.get(image_id) if image_id is not None else None
        if project is not None and rec is not None and image_id in project and not project.image(image_id).mask \
                and image_id not in self.rejected:
            mask = suggestion(rec, tau=self.tau.value())
            if mask is not None and mask.any() and mask.shape == tuple(self.host.canvas.image_shape() or ()):
                self.pending = (image_id, mask)
        if self.pending is None:
            self.host.canvas.set_outline(OUTLINE, None)
        else:
            self.host.canvas.set_outline(OUTLINE, mask_polygons(self.pending[1]), color=_COLOR, dashed=True)
        self._update_buttons()
        self.suggestion_changed.emit(None if self.pending is None else self.pending[0])

    def accept(self) -> bool:
        """Make the shown suggestion the image's mask (one undo step, marked "accepted")."""
        if self.pending is None or self.pending[0] != self.host.current_image_id() or self.host.project is None:
            return False
        image_id, mask = self.pending
        self.host.project.set_mask_source(image_id, "accepted")
        self.host.replace_mask(mask, how="union")
        self.pending = None
        self.host.canvas.set_outline(OUTLINE, None)
        self._update_buttons()
        self.suggestion_changed.emit(None)
        self.host.show_status(f"{image_id}: suggested RoI accepted (Ctrl+Z undoes)", 3000)
        return True

    def reject(self) -> bool:
        """Drop the shown suggestion, recorded in the project for this run's weights (it stays rejected after a restart)."""
        if self.pending is None:
            return False
        image_id = self.pending[0]
        self.rejected.add(image_id)
        rec, project = self.records.get(image_id), self.host.project
        status = "Suggestion rejected"
        if rec is not None and rec.get("suggester") and project is not None and image_id in project:
            rec["rejected"] = True
            try:
                project.reject_suggestion(image_id, rec["suggester"])
            except GusaError as exc:  # read-only or unwritable: hidden for this session only
                status = f"Suggestion hidden for this session; not recorded: {exc}"
        self.update_suggestion()
        self.host.show_status(status, 4000)
        return True

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        if (event.type() == QEvent.Type.ShortcutOverride and watched in (self.tau, self.queue_list)
                and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Delete)):
            event.accept()  # the key goes to the field or the list, not to accept / reject
            return True
        # an edit accepts the suggestion first, then the stroke corrects it
        if (watched is self.host.canvas and event.type() == QEvent.Type.MouseButtonPress
                and event.button() == Qt.MouseButton.LeftButton and self.pending is not None
                and self.host.canvas.tool() in _EDIT_TOOLS
                and not event.modifiers() & Qt.KeyboardModifier.ControlModifier):
            self.accept()
        return False

    def _on_canvas_stroke_finished(self, rect) -> None:
        project, image_id = self.host.project, self.host.current_image_id()
        if project is not None and image_id in project and project.image(image_id).mask_source == "accepted":
            project.set_mask_source(image_id, "edited")

    def _update_buttons(self) -> None:
        running = self.is_running()
        self.scan_button.setText("Stop scan" if running else "Scan images")
        self.scan_button.setEnabled(bool(self.run_dir) and self.host.project is not None)
        has = self.pending is not None
        for w in (self.accept_button, self.reject_button, self.accept_action, self.reject_action):
            w.setEnabled(has)
        self.next_button.setEnabled(bool(self.queue))

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt API
        self.abort()
        super().closeEvent(event)


def install(host: Host) -> AssistPanel:
    """Add the Assist dock (Model → Assisted annotation) following the host's project and active run."""
    panel = AssistPanel(host)
    dock = host.add_dock(panel, "Assist", Qt.DockWidgetArea.RightDockWidgetArea)
    dock.setObjectName("assist_dock")
    action = host.model_menu.addAction("Assisted annotation")
    action.setObjectName("action_assist")
    action.triggered.connect(lambda: host.show_dock("Assist"))
    dock.hide()

    def follow_project(project) -> None:
        panel.rejected.clear()
        panel.visited.clear()
        panel.set_run(host.runs.active_run or None)

    host.project_opened.connect(follow_project)
    host.runs.active_run_changed.connect(lambda run: panel.set_run(run or None))
    panel.set_run(host.runs.active_run or None)
    return panel
