"""The image half of the main window: show an image with its mask, prefetch the next, label, edit.

A mixin of :class:`~app.shell.main_window.MainWindow`; it uses the window's
``project``, ``canvas``, ``image_list``, ``side_panel``, ``autosave`` and actions.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from app.base import errors

__all__ = ["WindowImagesMixin"]

EDITOR_CACHE = 8  # images whose undo history survives switching away
HISTORY_BYTES = 64 * 2**20  # undo history per image


class WindowImagesMixin:
    """Showing, labelling and editing images (see :class:`~app.shell.main_window.MainWindow`)."""

    _editors: OrderedDict

    # =============================================================== images
    def current_image_id(self) -> str | None:
        return self._current_id

    def current_image(self) -> np.ndarray | None:
        return self._image

    def select_image(self, image_id: str) -> None:
        """Show ``image_id`` (alias of :meth:`show_image`, for panels that jump to an image)."""
        self.show_image(image_id)

    def current_editor(self):
        return self.canvas.editor()

    def show_image(self, image_id: str) -> None:
        """Show ``image_id`` in the canvas with its mask; unreadable files give a banner."""
        from gusa_core.annotation import MaskEditor
        from gusa_core.errors import GusaError
        from gusa_core.imageio import read_image

        if self.project is None or image_id == self._current_id:
            return
        if self._is_slide_record(image_id):
            self.show_slide(image_id)
            return
        self._show_canvas_page()
        self._commit_notes()
        self._current_id = image_id
        self.image_list.select_image(image_id)
        path = self.project.image_path(image_id)
        editor = None
        try:
            image, bgra = self._take_prefetched(image_id)
            if image is None:
                image = read_image(path)
        except (GusaError, OSError) as exc:
            self._image = None
            self.canvas.set_editor(None)
            self.canvas.set_image(None)
            reason = getattr(exc, "reason", None) or str(exc)
            text = f"Cannot read image {path}: {reason}"
            self.canvas.set_placeholder("")
            self.canvas.show_banner(text)
            self.image_list.model.set_error(image_id, reason)
            self.show_status(text, 8000)
        else:
            self._image = image
            self.canvas.set_image(image, bgra=bgra)
            editor = self._editors.get(image_id)
            if editor is None or editor.mask.shape != image.shape[:2]:
                if self.autosave.is_pending(f"mask:{image_id}"):
                    self.autosave.flush()  # its last strokes are on their way to disk: read them back
                try:
                    mask = self.project.load_mask(image_id)
                except GusaError as exc:
                    mask = None
                    if image_id in self.project.missing_masks([image_id]):  # nothing left to keep: paint anew
                        self.canvas.show_banner(f"{errors.describe(exc)} — paint the RoI again to replace it.")
                        editor = MaskEditor(np.zeros(image.shape[:2], np.uint8), max_history_bytes=HISTORY_BYTES)
                        self._remember_editor(image_id, editor)
                    else:
                        self.canvas.show_banner(f"{errors.describe(exc)} — painting is disabled for this image so the file is kept as it is.")
                        editor = None
                else:
                    initial = mask if mask is not None else np.zeros(image.shape[:2], np.uint8)
                    editor = MaskEditor(initial, max_history_bytes=HISTORY_BYTES, label=self.project.image(image_id).label)
                    self._remember_editor(image_id, editor)
            else:
                self._editors.move_to_end(image_id)
                editor.sync_label(self.project.image(image_id).label)
            self.canvas.set_editor(editor)
            self.canvas.sync_cursor()
        self._update_side_panel()
        self._update_undo_state()
        self._update_enabled()
        h, w = (self._image.shape[:2] if self._image is not None else (0, 0))
        self._status_labels["size"].setText(f"{w} × {h} px" if self._image is not None else "")
        self.current_image_changed.emit(image_id)
        self._start_prefetch(self.image_list.neighbour_id(image_id, 1))

    def _start_prefetch(self, image_id: str | None) -> None:
        """Decode the next image in the background so that N / Page Down is instant."""
        if image_id is None or self.project is None or self._closing:
            return
        if self._prefetch is not None and self._prefetch[0] == image_id:
            return
        from gusa_core.imageio import read_image

        from app.workspace.canvas_image import rgb_to_bgra

        def decode(path):
            image = read_image(path)
            return image, rgb_to_bgra(image)

        if self._prefetcher is None:
            from app.base.workers import executor

            self._prefetcher = executor("gusa-prefetch")
        path = self.project.image_path(image_id)
        self._prefetch = (image_id, path, self._prefetcher.submit(decode, path))

    def _take_prefetched(self, image_id: str):
        """``(image, bgra)`` prefetched for ``image_id`` (waits for it) or ``(None, None)``.

        Errors are raised as by ``read_image``.
        """
        pre, self._prefetch = self._prefetch, None
        if pre is None or pre[0] != image_id or pre[1] != self.project.image_path(image_id):
            if pre is not None:
                pre[2].cancel()
            return None, None
        return pre[2].result()

    def _remember_editor(self, image_id: str, editor) -> None:
        self._editors[image_id] = editor
        self._editors.move_to_end(image_id)
        while len(self._editors) > EDITOR_CACHE:
            self._editors.popitem(last=False)

    def go_next(self, step: int = 1) -> None:
        """Show the next (``step=1``) or previous (``-1``) image in the list's order."""
        target = self.image_list.neighbour_id(self._current_id, step)
        if target is None:
            self.show_status("Last image" if step > 0 else "First image", 1500)
            return
        self.show_image(target)

    # =============================================================== labels
    def set_label(self, label: str | None) -> None:
        """Label the current image ``label`` (a class name or ``None``); saved in the background."""
        if self.project is None or self._current_id is None or self.refuse_if_read_only():
            return
        image_id = self._current_id
        if self._is_slide_record(image_id):  # a slide's classes are its painted regions (Shift+1..N)
            return
        editor = self.canvas.editor()
        if editor is not None:
            editor.set_label(label)  # one step of the image's undo history (Ctrl+Z takes it back)
            self._update_undo_state()
        self._store_label(image_id, label)
        self.show_status(f"{image_id}: {label or 'unlabelled'}", 2000)
        if self.advance_action.isChecked() and label is not None:
            self.go_next(1)

    def _store_label(self, image_id: str, label: str | None) -> None:
        if self.project.image(image_id).label != label:
            self.project.set_label(image_id, label)
            self.autosave.save_manifest(self.project)
            self._update_title()
        self.side_panel.set_current_label(label)

    # ================================================================ edits
    def set_tool(self, tool: str) -> None:
        self.canvas.set_tool(tool)

    def _set_mask_visible(self, visible: bool) -> None:
        self.canvas.set_mask_visible(visible)
        self.mask_action.setChecked(visible)
        self.side_panel.set_mask_visible(visible)
        self.slide_toolbar.regions_check.blockSignals(True)
        self.slide_toolbar.regions_check.setChecked(visible)  # a slide's regions are its mask
        self.slide_toolbar.regions_check.blockSignals(False)

    def _after_edit(self, rect) -> None:
        """Save what a stroke, fill, undo or redo changed: the image's RoI mask or the slide's regions."""
        editor = self.canvas.editor()
        if rect is None or editor is None or self.project is None or self._current_id is None:
            self._update_undo_state()
            return
        if self.refuse_if_read_only():  # a last stroke that raced the switch to read-only: not written
            self._update_undo_state()
            return
        if self.showing_slide():
            self._save_slide_regions_later(self._current_id)
        else:
            self.autosave.save_mask(self.project, self._current_id, editor.mask)
        self._update_title()
        self._update_undo_state()

    def undo(self) -> None:
        """Take back the current image's last stroke or label change."""
        editor = self.canvas.editor()
        if editor is not None and not self.refuse_if_read_only():
            self._after_history_step(editor, editor.undo())

    def redo(self) -> None:
        editor = self.canvas.editor()
        if editor is not None and not self.refuse_if_read_only():
            self._after_history_step(editor, editor.redo())

    def _after_history_step(self, editor, rect) -> None:
        if self._current_id is not None and self.project is not None and not self.showing_slide():
            if self.project.image(self._current_id).label != editor.label:
                self._store_label(self._current_id, editor.label)
                self.show_status(f"{self._current_id}: {editor.label or 'unlabelled'} (undo)", 2000)
        self._after_edit(rect)

    def fill_holes(self) -> None:
        editor = self.canvas.editor()
        if editor is not None and not self.refuse_if_read_only():
            self._after_edit(editor.fill_holes())

    def clear_mask(self) -> None:
        editor = self.canvas.editor()
        if editor is None or not editor.mask.any() or self.refuse_if_read_only():
            return
        if self.dialogs.confirm(self, "Clear mask", f"Erase the whole RoI of {self._current_id}? (Undo brings it back.)"):
            self._after_edit(editor.clear())

    def replace_mask(self, mask: np.ndarray, *, how: str = "union") -> None:
        """Put ``mask`` into the current image's RoI (``how``: ``"union"`` or ``"replace"``)."""
        editor = self.canvas.editor()
        if editor is None or self.refuse_if_read_only():
            return
        new = np.maximum(editor.mask, mask) if how == "union" else mask.astype(np.uint8)
        if hasattr(editor, "replace"):
            rect = editor.replace(new)
        else:
            # the core has no undoable whole-mask replacement yet: the history starts afresh
            editor.reset(new)
            rect = (0, 0) + tuple(new.shape)
            self.canvas.set_mask(editor.mask)
            self.show_status("Imported into the RoI (earlier strokes of this image can no longer be undone)", 5000)
        self._after_edit(rect)

    # ================================================================ state
    def _canvas_anchor(self):
        pos = self.canvas.cursor_widget_pos()
        return pos if pos is not None and self.canvas.rect().contains(pos.toPoint()) else None

    def _update_side_panel(self) -> None:
        if self.project is None or self._current_id is None:
            self.side_panel.set_image_info("No image", "")
            self.side_panel.set_current_label(None)
            self.side_panel.set_notes("")
            return
        rec = self.project.image(self._current_id)
        facts = []
        if self._image is not None:
            h, w = self._image.shape[:2]
            facts.append(f"{w} × {h} px")
        facts.append("RoI mask" if rec.mask else "no RoI yet")
        ids = self.image_list.visible_ids()
        if self._current_id in ids:
            facts.append(f"{ids.index(self._current_id) + 1} of {len(ids)}")
        self.side_panel.set_image_info(rec.id, " · ".join(facts))
        self.side_panel.set_notes(rec.notes or "")
        self.side_panel.set_current_label(rec.label)

    def _update_undo_state(self) -> None:
        editor = self.canvas.editor()
        can_undo = editor is not None and editor.can_undo
        can_redo = editor is not None and editor.can_redo
        self.undo_action.setEnabled(can_undo)
        self.redo_action.setEnabled(can_redo)
        self.side_panel.set_undo_state(can_undo, can_redo)

    def _update_enabled(self) -> None:
        has_project = self.project is not None
        has_image = self._current_id is not None
        writable = not self.is_read_only()
        slide = self.showing_slide()
        editable = self.canvas.editor() is not None and writable and not slide
        self.add_images_action.setEnabled(has_project and writable)
        for a in (self.import_geojson_action, self.import_mask_action, self.export_geojson_action, self.export_mask_action,
                  self.fill_holes_action, self.clear_mask_action):
            a.setEnabled(editable)
        for a in self.label_actions + [self.unlabel_action]:  # a slide's digits are its magnifications
            a.setEnabled(has_image and writable and not slide)
        for a in self.class_paint_actions:
            a.setEnabled(slide and writable)
        self.side_panel.set_classes_enabled(has_image and writable)
        self.side_panel.notes_edit.setEnabled(has_image)
        for name in ("fill_button", "clear_button"):
            getattr(self.side_panel, name).setEnabled(editable)

