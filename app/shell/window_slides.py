"""The slide half of the main window: a slide record opens in the slide workspace instead of the canvas.

A mixin of :class:`~app.shell.main_window.MainWindow`. The central widget is a stack of the
image canvas and the :class:`~app.workspace.slide_panel.SlideWorkspaceWidget`; class regions
are saved in the background after every stroke (one ``regions:<id>`` autosave key, newest
version only) and exported to / imported from QuPath GeoJSON in level-0 coordinates.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
from PySide6.QtWidgets import QStackedWidget

from app.base import errors
from app.workspace.slide_panel import SlideWorkspaceWidget

__all__ = ["WindowSlidesMixin"]

_HISTORY_BYTES = 64 * 2**20
_EDITORS = 4  # slides whose undo history survives switching away


class WindowSlidesMixin:
    """Showing and annotating slides (see :class:`~app.shell.main_window.MainWindow`)."""

    def _build_slide_workspace(self) -> QStackedWidget:
        """The central stack: page 0 the canvas, page 1 the slide workspace."""
        self.slide_workspace = SlideWorkspaceWidget()
        self._slide_editors: OrderedDict[str, object] = OrderedDict()
        stack = QStackedWidget()
        stack.addWidget(self.canvas)
        stack.addWidget(self.slide_workspace)
        self.central_stack = stack
        sw = self.slide_workspace
        sw.regions_edited.connect(self._on_slide_workspace_regions_edited)
        sw.slide_failed.connect(self._on_slide_workspace_slide_failed)
        sw.export_requested.connect(self.export_slide_geojson)
        sw.import_requested.connect(self.import_slide_geojson)
        sw.view.zoom_changed.connect(self._on_slide_view_zoom_changed)
        sw.view.brush_changed.connect(self._on_slide_view_brush_changed)
        self._side_panel_was_visible: bool | None = None
        return stack

    def _on_slide_view_zoom_changed(self, _zoom: float) -> None:
        view = self.slide_workspace.view
        mag = view.magnification()
        self._status_labels["zoom"].setText(f"{mag:.1f}x" if mag else f"{view.zoom() * 100:.1f} %")
        self._on_slide_view_brush_changed(view.brush_size())

    def _on_slide_view_brush_changed(self, px: int) -> None:
        um = self.slide_workspace.view.brush_um()
        self._status_labels["brush"].setText(f"brush {um:.0f} µm" if um else f"brush {px} px")

    def _set_slide_page(self, slide: bool) -> None:
        """Switch the central page; the image Annotate dock (labels, RoI tools) steps aside for a slide."""
        if slide == self.showing_slide():
            return
        if slide:
            self._side_panel_was_visible = self.side_panel_dock.isVisible()
            self.side_panel_dock.hide()
            self.central_stack.setCurrentWidget(self.slide_workspace)
        else:
            self.slide_workspace.close_slide()
            self.central_stack.setCurrentWidget(self.canvas)
            if self._side_panel_was_visible:
                self.side_panel_dock.show()
            self._on_canvas_zoom_changed(self.canvas.zoom())
            self._on_canvas_brush_size_changed(self.canvas.brush_size())

    def showing_slide(self) -> bool:
        return self.central_stack.currentWidget() is self.slide_workspace

    def _is_slide_record(self, image_id: str) -> bool:
        from gusa_core.project.slides import is_slide

        return self.project is not None and image_id in self.project and is_slide(self.project.image(image_id))

    def _show_canvas_page(self) -> None:
        self._set_slide_page(False)

    def show_slide(self, image_id: str) -> None:
        """Show slide ``image_id`` with its class regions (the file opens in the background)."""
        from gusa_core.annotation import MaskEditor
        from gusa_core.errors import GusaError
        from gusa_core.project.slides import load_regions, slide_info

        self._commit_notes()
        self._current_id = image_id
        self._image = None
        self.canvas.set_editor(None)
        self.canvas.set_image(None)
        self.image_list.select_image(image_id)
        info = slide_info(self.project, image_id)
        editor = self._slide_editors.get(image_id)
        if editor is None:
            if self.autosave.is_pending(f"regions:{image_id}"):
                self.autosave.flush()
            try:
                labels = load_regions(self.project, image_id)
            except GusaError as exc:
                errors.show_error(self, "Cannot read the slide's regions", errors.describe(exc))
                labels = None
            if labels is not None:
                editor = MaskEditor(labels, max_history_bytes=_HISTORY_BYTES)
                self._slide_editors[image_id] = editor
                while len(self._slide_editors) > _EDITORS:
                    self._slide_editors.popitem(last=False)
        else:
            self._slide_editors.move_to_end(image_id)
        self.slide_workspace.set_classes(self.project.classes, self.project.class_colors)
        self._set_slide_page(True)
        self.slide_workspace.show_slide(image_id, self.project.image_path(image_id), editor, info.downsample)
        w, h = info.dimensions
        self._status_labels["size"].setText(f"{w} × {h} px slide")
        self._update_side_panel()
        self._update_enabled()
        self.current_image_changed.emit(image_id)

    def current_slide_editor(self):
        """The MaskEditor of the shown slide's regions, or None."""
        return self.slide_workspace.view.editor() if self.showing_slide() else None

    def _save_slide_regions_later(self, image_id: str) -> None:
        from gusa_core.project.slides import save_regions

        editor = self._slide_editors.get(image_id)
        if editor is None or self.project is None:
            return
        project, snapshot = self.project, np.array(editor.mask, copy=True)
        self.autosave.schedule(f"regions:{image_id}", lambda: save_regions(project, image_id, snapshot))
        self._update_title()

    def _on_slide_workspace_regions_edited(self, image_id: str) -> None:
        self._save_slide_regions_later(image_id)

    def _on_slide_workspace_slide_failed(self, image_id: str, message: str) -> None:
        self.image_list.model.set_error(image_id, message)
        self.show_status(f"Cannot open slide {image_id}: {message}", 8000)

    def export_slide_geojson(self, path=None) -> bool:
        """Write the shown slide's regions as QuPath GeoJSON (level-0 coordinates)."""
        from gusa_core.errors import GusaError
        from gusa_core.project.slides import export_regions_geojson

        editor = self.current_slide_editor()
        image_id = self.slide_workspace.slide_id()
        if editor is None or image_id is None:
            return False
        path = path or self.dialogs.save_path(self, "Export regions as GeoJSON (QuPath)", f"{image_id}.geojson", "GeoJSON (*.geojson)")
        if not path:
            return False
        try:
            export_regions_geojson(self.project, image_id, path, editor.mask)
        except (GusaError, OSError) as exc:
            errors.show_error(self, "Cannot export regions", errors.describe(exc))
            return False
        self.show_status(f"Regions exported to {path}", 4000)
        return True

    def import_slide_geojson(self, path=None) -> bool:
        """Replace the shown slide's regions by a QuPath GeoJSON file's (one undo step)."""
        from gusa_core.errors import GusaError
        from gusa_core.project.slides import import_regions_geojson

        editor = self.current_slide_editor()
        image_id = self.slide_workspace.slide_id()
        if editor is None or image_id is None:
            return False
        path = path or self.dialogs.open_path(self, "Import regions from GeoJSON (QuPath)", "GeoJSON (*.geojson *.json);;All files (*)")
        if not path:
            return False
        try:
            labels, skipped = import_regions_geojson(self.project, image_id, path)
        except GusaError as exc:
            errors.show_error(self, "Cannot import regions", errors.describe(exc))
            return False
        editor.replace(labels, binary=False)
        self._save_slide_regions_later(image_id)
        note = f" (skipped classes not in the project: {', '.join(skipped)})" if skipped else ""
        self.show_status(f"Regions imported from {path}{note}", 6000)
        return True
