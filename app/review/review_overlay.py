"""What the review panel draws: probability bars, prediction vs the pathologist, and the canvas overlays.

A mixin of :class:`~app.review.review_panel.ReviewPanel`: it turns a
prediction into the attention overlay (colour map, opacity, threshold τ and
its outline) and the ground-truth RoI outline on the main canvas (or, for a
field under review, into the panel's preview), and keeps the display settings.
"""

from __future__ import annotations

import numpy as np

from gusa_core import DEFAULT_CLASS_COLORS

from app.review.colormaps import COLORMAPS, DEFAULT_COLORMAP, attention_rgba, contour_polygons, mask_outline_rgba
from app.review.prediction_cache import fold_label

__all__ = ["ATTENTION_LAYER", "ROI_LAYER", "THRESHOLD_LAYER", "ReviewOverlayMixin"]

#: Canvas overlay names used by the panel.
ATTENTION_LAYER = "attention"
ROI_LAYER = "gt_roi"
THRESHOLD_LAYER = "attention_threshold"
ROI_COLOR = (0, 230, 0)
THRESHOLD_COLOR = (255, 255, 255)

_ATTENTION_TEXT = {
    "roi": "Attention: ỹ, the RoI branch's output (guided soft attention)",
    "gradcam": "Attention: Grad-CAM (this model has no RoI branch)",
}


class ReviewOverlayMixin:
    """Showing a prediction and the ground truth (see :class:`~app.review.review_panel.ReviewPanel`)."""

    # -- showing results -----------------------------------------------------
    def _clear_result(self, keep_text: bool = False) -> None:
        self.prediction = None
        self.bars.clear()
        self.predicted_label.setText("Predicted: –")
        self.agreement_label.setText("")
        self.kind_label.setText("")
        if not keep_text and self.run_dir is not None:
            self.status_label.setText("Choose an image." if self.image_id is None else "")
        self._set_attention_overlay(None)

    def _show(self, prediction) -> None:
        self.prediction = prediction
        colors = getattr(self.project, "class_colors", None) or DEFAULT_CLASS_COLORS
        probs = np.asarray(prediction.probs, dtype=float)
        index = int(getattr(prediction, "index", int(np.argmax(probs))))
        self.bars.set_probabilities(prediction.class_names, probs, colors, highlight=index)
        rgb = colors.get(prediction.label, (0, 0, 0))
        self.predicted_label.setText(
            f"Predicted: <b style='color: rgb{tuple(rgb)}'>{prediction.label}</b> ({100 * probs[index]:.1f}%)")
        self.kind_label.setText(_ATTENTION_TEXT.get(prediction.attention_kind, f"Attention: {prediction.attention_kind}"))
        self.outline_check.setText("Outline ỹ > τ" if prediction.attention_kind == "roi" else "Outline Grad-CAM > τ")
        info = self.run_info
        text = f"{info.name} · {info.variant} · {fold_label(self.fold, len(info.folds))}" if info else ""
        key = self._key()
        engine = None if key is None else self.predictors.engine_info(key.run_dir, key.fold, self.device)
        if engine is not None:  # which engine and precision ran, and why (e.g. bf16 after the agreement check)
            text += f" · {engine.backend} {engine.precision}"
        self.status_label.setText(text)
        self.status_label.setToolTip("" if engine is None else f"{engine.reason} ({engine.device})")
        self._update_truth()
        self._redraw_attention()
        self.prediction_ready.emit(self.image_id or (self.field.title if self.field is not None else ""), prediction)

    def _update_truth(self) -> None:
        truth = None
        if self.project is not None and self.image_id is not None:
            try:
                truth = self.project.image(self.image_id).label
            except Exception:  # noqa: BLE001 - image removed meanwhile
                truth = None
        self.truth_label.setText(f"Pathologist: <b>{truth}</b>" if truth else "Pathologist: <i>unlabelled</i>")
        if self.prediction is None or truth is None:
            self.agreement_label.setText("")
        elif truth == self.prediction.label:
            self.agreement_label.setText("<span style='color: #2e7d32'>✔ agrees with the pathologist</span>")
        else:
            self.agreement_label.setText(
                "<span style='color: white; background-color: #c62828'>&nbsp;✘ disagrees with the pathologist&nbsp;</span>")

    @property
    def disagrees(self) -> bool | None:
        """Whether the shown prediction differs from the pathologist's label (``None``: unknown)."""
        if self.prediction is None or self.project is None or self.image_id is None:
            return None
        truth = self.project.image(self.image_id).label
        return None if truth is None else truth != self.prediction.label

    @property
    def threshold(self) -> float:
        """τ in [0, 1]."""
        return self.threshold_slider.value() / 100.0

    def _on_threshold_slider_changed(self, value: int) -> None:
        self.threshold_value.setText(f"τ = {value / 100:.2f}")
        self._redraw_attention()

    def _on_display_changed(self, *_args) -> None:
        self._redraw_attention()
        self._save_display_settings()

    def _restore_display_settings(self) -> None:
        try:
            from app.base.settings import settings

            s = settings()
            name = str(s.value("review/colormap", DEFAULT_COLORMAP))
            if name in COLORMAPS:
                self.colormap_combo.setCurrentText(name)
            self.opacity_slider.setValue(int(s.value("review/opacity", 45)))
        except (TypeError, ValueError):
            pass

    def _save_display_settings(self) -> None:
        from app.base.settings import settings

        s = settings()
        s.setValue("review/colormap", self.colormap_combo.currentText())
        s.setValue("review/opacity", self.opacity_slider.value())

    def _redraw_attention(self) -> None:
        p = self.prediction
        if p is None or getattr(p, "attention", None) is None:
            self._set_attention_overlay(None)
            return
        outline = self.outline_check.isChecked()
        if not self.heatmap_check.isChecked() and not outline:
            self._set_attention_overlay(None)
            return
        # The canvas draws outlines as crisp vectors; without one the outline is rasterised into the layer.
        vector = self._canvas_has_outlines()
        rgba = attention_rgba(
            p.attention, colormap=self.colormap_combo.currentText(), opacity=self.opacity_slider.value() / 100.0,
            threshold=self.threshold, outline=outline and not vector, heatmap=self.heatmap_check.isChecked(),
            outline_color=THRESHOLD_COLOR,
        )
        polygons = contour_polygons(p.attention > self.threshold) if (outline and vector) else None
        self._set_attention_overlay(rgba, polygons)

    def _canvas_has_outlines(self) -> bool:
        return self.canvas is not None and hasattr(self.canvas, "set_outline") and self.field is None

    def _set_attention_overlay(self, rgba, polygons=None) -> None:
        self.overlay = rgba
        self.threshold_polygons = polygons
        on_canvas = rgba
        if self.field is not None:  # a field is drawn in the panel's preview, not over the canvas's image
            self._paint_field(rgba)
            on_canvas = None
        if self.canvas is not None:
            self.canvas.set_overlay(ATTENTION_LAYER, on_canvas)
            if self._canvas_has_outlines():
                self.canvas.set_outline(THRESHOLD_LAYER, polygons, color=THRESHOLD_COLOR)
            elif hasattr(self.canvas, "set_outline"):
                self.canvas.set_outline(THRESHOLD_LAYER, None, color=THRESHOLD_COLOR)
        self.overlay_changed.emit(rgba)

    # -- ground truth ----------------------------------------------------------
    def _on_roi_check_toggled(self, _checked: bool) -> None:
        self._update_roi()

    def _update_roi(self) -> None:
        mask = None
        if self.roi_check.isChecked() and self.project is not None and self.image_id is not None:
            try:
                mask = self.project.load_mask(self.image_id)
            except Exception as exc:  # noqa: BLE001 - a broken mask must not break review
                self.status_label.setText(str(exc))
        self.roi_mask = mask
        if self._canvas_has_outlines():
            self.canvas.set_outline(ROI_LAYER, contour_polygons(mask) if mask is not None else None, color=ROI_COLOR)
            self.roi_overlay = None
        else:
            self.roi_overlay = mask_outline_rgba(mask, color=ROI_COLOR, fill_alpha=0.0) if mask is not None else None
            if self.canvas is not None:
                self.canvas.set_overlay(ROI_LAYER, self.roi_overlay)

    def _on_project_label_changed(self, image_id, _label=None) -> None:
        if image_id == self.image_id:
            self._update_truth()

    def _on_project_mask_changed(self, image_id) -> None:
        if image_id == self.image_id and self.roi_check.isChecked():
            self._update_roi()
