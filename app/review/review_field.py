"""Reviewing an image that is not a project image: a slide's field, from the Slide heatmap dock.

A mixin of :class:`~app.review.review_panel.ReviewPanel`. :meth:`show_field`
puts the panel in *field mode*: the image array is predicted with the chosen
run (the same cached predictors as project images) and shown, with the
attention overlay composited over it, in the panel's own preview, since the
main canvas shows a project image. Choosing a project image again
(:meth:`~app.review.review_panel.ReviewPanel.set_image`) leaves field mode.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QLabel

from app.base.workers import Worker, run_in_thread

__all__ = ["ReviewField", "ReviewFieldMixin", "predict_field"]

#: Width of the field preview in the panel, in pixels.
PREVIEW_WIDTH = 320


@dataclass(frozen=True, eq=False)
class ReviewField:
    """An image under review that is not a project image."""

    image: np.ndarray
    title: str


def predict_field(predictors, image: np.ndarray, run_dir: str, fold, device: str = "auto"):
    """Worker job: predict one image array with the cached predictor of ``run_dir`` / ``fold``."""
    return predictors.get(run_dir, fold, device).predict_image(image)


def composite(image: np.ndarray, rgba: np.ndarray | None) -> np.ndarray:
    """``image`` (H, W, 3) uint8 with the RGBA layer blended over it (resized to the image if needed)."""
    out = np.asarray(image, dtype=np.float32)
    if rgba is not None:
        if rgba.shape[:2] != image.shape[:2]:
            import cv2

            rgba = cv2.resize(rgba, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
        alpha = rgba[..., 3:4].astype(np.float32) / 255.0
        out = out * (1.0 - alpha) + rgba[..., :3].astype(np.float32) * alpha
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


class ReviewFieldMixin:
    """Field mode of the review panel (see :class:`~app.review.review_panel.ReviewPanel`)."""

    def _build_field_view(self) -> QLabel:
        self.field: ReviewField | None = None
        self._field_worker: Worker | None = None
        self._field_queued = False
        self.field_view = QLabel()
        self.field_view.setObjectName("review_field_view")
        self.field_view.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.field_view.setVisible(False)
        return self.field_view

    def show_field(self, image: np.ndarray, title: str, *, run_dir=None, fold=None) -> None:
        """Review an image array that is not a project image (e.g. a slide's field).

        Parameters
        ----------
        image : ndarray of shape (H, W, 3), uint8
            What the model sees; pass it at the run's input size to get the
            same prediction as a slide sweep.
        title : str
            Shown above the preview and sent with :attr:`prediction_ready`.
        run_dir : path-like, optional
            Review with this run (default: the chosen one).
        fold : int or None
            With ``run_dir``: this fold; ``None`` is the ensemble, as a sweep uses.
        """
        image = np.ascontiguousarray(image, dtype=np.uint8)
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"show_field needs an (H, W, 3) image, got shape {image.shape}")
        self.image_id = None
        self.field = ReviewField(image, str(title))
        self._clear_result(keep_text=True)
        self.field_view.setVisible(True)
        self.field_view.setToolTip(self.field.title)
        self._paint_field(None)
        if run_dir is not None:
            self.set_run(run_dir, fold)  # predicts through _on_selection_changed
        else:
            self._on_selection_changed()

    def _leave_field(self) -> None:
        if self.field is not None:
            self.field = None
            self.field_view.clear()
            self.field_view.setVisible(False)

    def _predict_field(self) -> None:
        if self.run_dir is None:
            self._clear_result()
            return
        if self._field_worker is not None and self._field_worker.is_running:
            self._field_queued = True  # one at a time: the newest request runs next
            return
        self._field_queued = False
        field, run_dir, fold = self.field, self.run_dir, self.fold
        self.status_label.setText(f"Predicting {field.title} with {self.run_info.name}…")
        self.workers_started += 1

        def returned(prediction):
            if self.field is field and (self.run_dir, self.fold) == (run_dir, fold):
                self._show(prediction)

        def failed(message: str, _details: str):
            if self.field is field:
                self.status_label.setText(f"Prediction failed: {message}")
                self.prediction_failed.emit(field.title, message)

        def finished():
            self._field_worker = None
            if self._field_queued and self.field is not None:
                self._predict_field()

        self._field_worker = run_in_thread(
            predict_field, self.predictors, field.image, run_dir, fold, self.device,
            on_result=returned, on_error=failed, on_finished=finished,
        )

    def _paint_field(self, rgba: np.ndarray | None) -> None:
        """Draw the field with ``rgba`` (the attention layer, or ``None``) into the preview."""
        if self.field is None:
            return
        rgb = composite(self.field.image, rgba)
        h, w = rgb.shape[:2]
        qimage = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
        pixmap = QPixmap.fromImage(qimage)
        if w > PREVIEW_WIDTH or w < PREVIEW_WIDTH // 2:
            pixmap = pixmap.scaledToWidth(PREVIEW_WIDTH, Qt.TransformationMode.SmoothTransformation)
        self.field_view.setPixmap(pixmap)
        self.field_rgb = rgb
