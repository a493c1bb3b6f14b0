"""The slide half of the main window: a slide record opens in the same canvas as a flat image.

A mixin of :class:`~app.shell.main_window.MainWindow`. The central widget is the canvas under
the :class:`~app.workspace.slide_toolbar.SlideToolbarWidget`, which shows only while a slide
does (the image Annotate dock steps aside meanwhile). Class regions are saved in the background
after every stroke, undo and redo (one ``regions:<id>`` autosave key, newest version only) and
exported to / imported from QuPath GeoJSON in level-0 coordinates. Shift+1..N pick the class painted.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QVBoxLayout, QWidget

from app.base import errors
from app.workspace.slide_toolbar import SlideToolbarWidget, class_key

__all__ = ["WindowSlidesMixin"]

_HISTORY_BYTES = 64 * 2**20
_EDITORS = 4  # slides whose undo history survives switching away


class WindowSlidesMixin:
    """Showing and annotating slides (see :class:`~app.shell.main_window.MainWindow`)."""

    def _build_slide_workspace(self) -> QWidget:
        """The central widget: the slide toolbar (hidden until a slide shows) over the canvas."""
        self.slide_toolbar = SlideToolbarWidget(self.canvas)
        self.slide_toolbar.hide()
        self._slide_editors: OrderedDict[str, object] = OrderedDict()
        self._showing_slide = False
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.slide_toolbar)
        layout.addWidget(self.canvas, 1)
        st = self.slide_toolbar
        st.slide_failed.connect(self._on_slide_toolbar_slide_failed)
        st.slide_shown.connect(self._on_slide_toolbar_slide_shown)
        st.export_requested.connect(self.export_slide_geojson)
        st.import_requested.connect(self.import_slide_geojson)
        st.regions_check.toggled.connect(self._set_mask_visible)  # M and the View menu follow
        self.class_paint_actions: list[QAction] = []
        self._side_panel_was_visible: bool | None = None
        return central

    def _rebuild_class_paint_actions(self) -> None:
        """Shift+1..N: the class painted on a slide (keys of the canvas and the slide toolbar only)."""
        for a in self.class_paint_actions:
            self.canvas.removeAction(a)
            self.slide_toolbar.removeAction(a)
            self.image_menu.removeAction(a)
        self.class_paint_actions = []
        for i, name in enumerate(self.project.classes if self.project is not None else []):
            key = class_key(i)
            a = QAction(f"Paint {name} on the slide", self)
            a.setObjectName(f"action_paint_class_{i + 1}")
            if key:
                a.setShortcut(QKeySequence(key))
            a.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            a.triggered.connect(lambda _=False, k=i: self.slide_toolbar.set_class_index(k))
            self.canvas.addAction(a)
            self.slide_toolbar.addAction(a)
            self.image_menu.insertAction(self.label_menu_anchor, a)
            self.class_paint_actions.append(a)

    def _show_slide_status(self) -> None:
        view = self.canvas
        mag = view.magnification()
        self._status_labels["zoom"].setText(f"{mag:.1f}x" if mag else f"{view.zoom() * 100:.1f} %")
        um = view.brush_um()
        self._status_labels["brush"].setText(f"brush {um:.0f} µm" if um else f"brush {view.brush_size()} px")

    def _set_slide_page(self, slide: bool) -> None:
        """Show or hide the slide toolbar; the image Annotate dock (labels, RoI tools) steps aside for a slide."""
        if slide == self._showing_slide:
            return
        self._showing_slide = slide
        if slide:
            self._side_panel_was_visible = self.side_panel_dock.isVisible()
            self.side_panel_dock.hide()
            self.slide_toolbar.show()
        else:
            self.slide_toolbar.close_slide()
            self.slide_toolbar.hide()
            if self.canvas.tool() == "pan":  # the Annotate dock offers no pan tool (space or middle drag pans)
                self.canvas.set_tool("brush")
            if self._side_panel_was_visible:
                self.side_panel_dock.show()
        self._on_canvas_zoom_changed(self.canvas.zoom())
        self._on_canvas_brush_size_changed(self.canvas.brush_size())

    def showing_slide(self) -> bool:
        return self._showing_slide

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
        self.slide_toolbar.set_classes(self.project.classes, self.project.class_colors)
        self._set_slide_page(True)
        self.slide_toolbar.show_slide(image_id, self.project.image_path(image_id), editor, info.downsample)
        if self.canvas.slide() is None:  # the flat image shown before goes while the slide opens
            self.canvas.set_editor(None)
            self.canvas.set_image(None)
            self.canvas.set_placeholder(f"Opening {image_id}…")
        w, h = info.dimensions
        self._status_labels["size"].setText(f"{w} × {h} px slide")
        self._update_side_panel()
        self._update_undo_state()
        self._update_enabled()
        self.current_image_changed.emit(image_id)

    def current_slide(self):
        """``(id, path)`` of the slide shown, or None when an image (or nothing) is shown."""
        sid = self.slide_toolbar.slide_id() if self.showing_slide() else None
        if sid is None or self.project is None or sid not in self.project:
            return None
        return sid, self.project.image_path(sid)

    def current_slide_editor(self):
        """The MaskEditor of the shown slide's regions, or None."""
        return self.canvas.editor() if self.showing_slide() and self.canvas.is_slide() else None

    def _save_slide_regions_later(self, image_id: str) -> None:
        from gusa_core.project.slides import save_regions

        editor = self._slide_editors.get(image_id)
        if editor is None or self.project is None or self.refuse_if_read_only():
            return
        project, snapshot = self.project, np.array(editor.mask, copy=True)
        self.autosave.schedule(f"regions:{image_id}", lambda: save_regions(project, image_id, snapshot))
        self._update_title()

    def _on_slide_toolbar_slide_shown(self, image_id: str) -> None:
        self._update_undo_state()
        self._update_enabled()
        self._show_slide_status()
        self.slide_shown.emit(image_id)

    def _on_slide_toolbar_slide_failed(self, image_id: str, message: str) -> None:
        self.image_list.model.set_error(image_id, message)
        self.show_status(f"Cannot open slide {image_id}: {message}", 8000)

    def export_slide_geojson(self, path=None) -> bool:
        """Write the shown slide's regions as QuPath GeoJSON (level-0 coordinates)."""
        from gusa_core.errors import GusaError
        from gusa_core.project.slides import export_regions_geojson

        editor = self.current_slide_editor()
        image_id = self.slide_toolbar.slide_id()
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
        image_id = self.slide_toolbar.slide_id()
        if editor is None or image_id is None or self.refuse_if_read_only():
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
