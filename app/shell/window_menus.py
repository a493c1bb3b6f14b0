"""The main window's actions and menus (File, Edit, Image, View, Model, Help) and their shortcuts.

A mixin of :class:`~app.shell.main_window.MainWindow`: the features add their
own entries to ``file_menu``, ``model_menu``, ``image_menu`` and ``view_menu``
through the :class:`~app.shell.host.Host`.
"""

from __future__ import annotations

from PySide6.QtGui import QAction, QActionGroup, QKeySequence

__all__ = ["WindowMenusMixin"]


class WindowMenusMixin:
    """Builds the window's actions and menus (see :class:`~app.shell.main_window.MainWindow`)."""

    # ============================================================== actions
    def _action(self, text: str, slot=None, shortcut=None, *, checkable=False, tip: str | None = None) -> QAction:
        a = QAction(text, self)
        if shortcut is not None:
            if isinstance(shortcut, (list, tuple)):
                a.setShortcuts([QKeySequence(s) for s in shortcut])
            else:
                a.setShortcut(QKeySequence(shortcut))
        a.setCheckable(checkable)
        if tip:
            a.setStatusTip(tip)
            a.setToolTip(tip)
        if slot is not None:
            a.triggered.connect(slot)
        self.addAction(a)  # shortcuts work even with the menu bar hidden
        return a

    def _build_actions(self) -> None:
        A = self._action
        SK = QKeySequence.StandardKey
        self.open_action = A("&Open project…", lambda: self.open_project_dialog(), SK.Open)
        self.new_action = A("&New project from folder…", lambda: self.new_project_dialog(), SK.New)
        self.add_images_action = A("&Add images…", lambda: self.add_images_dialog())
        self.import_geojson_action = A("Import &GeoJSON (QuPath)…", lambda: self.import_geojson())
        self.export_geojson_action = A("&Export GeoJSON…", lambda: self.export_geojson())
        self.import_mask_action = A("Import mask P&NG…", lambda: self.import_mask_png())
        self.export_mask_action = A("Export mask PN&G…", lambda: self.export_mask_png())
        self.save_action = A("&Save now", lambda: self.save_now(), SK.Save, tip="Everything is saved automatically; this waits until it is on disk")
        self.quit_action = A("&Quit", self.close, SK.Quit)
        self.quit_action.setMenuRole(QAction.MenuRole.QuitRole)

        self.undo_action = A("&Undo stroke", lambda: self.undo(), [QKeySequence("Ctrl+Z")])
        self.redo_action = A("&Redo stroke", lambda: self.redo(), [QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        self.fill_holes_action = A("&Fill holes", lambda: self.fill_holes(), "H")
        self.clear_mask_action = A("&Clear mask…", lambda: self.clear_mask())
        self.advance_action = A("Go to the next image after labelling", checkable=True)

        self.fit_action = A("&Fit to window", lambda: self.canvas.animate_fit(), ["Ctrl+0", "F"])
        self.actual_size_action = A("&Actual size (100 %)", lambda: self.canvas.animate_zoom(1.0, self._canvas_anchor()), "Ctrl+1")
        self.zoom_in_action = A("Zoom &in", lambda: self.canvas.animate_zoom_by(1.5, self._canvas_anchor()), ["+", "=", "Ctrl++"])
        self.zoom_out_action = A("Zoom &out", lambda: self.canvas.animate_zoom_by(1 / 1.5, self._canvas_anchor()), ["-", "Ctrl+-"])
        self.mask_action = A("Show RoI &mask", lambda on: self._set_mask_visible(on), "M", checkable=True)
        self.mask_action.setChecked(True)

        self.tool_group = QActionGroup(self)
        self.tool_actions = {}
        for name, text, key in (("brush", "&Brush", "B"), ("eraser", "&Eraser", "E"), ("lasso", "&Lasso / polygon fill", "L")):
            a = A(text, lambda _=False, n=name: self.set_tool(n), key, checkable=True)
            self.tool_group.addAction(a)
            self.tool_actions[name] = a
        self.tool_actions["brush"].setChecked(True)
        self.bigger_action = A("Bigger brush", lambda: self.canvas.change_brush_size(1), "]")
        self.smaller_action = A("Smaller brush", lambda: self.canvas.change_brush_size(-1), "[")

        self.next_action = A("&Next image", lambda: self.go_next(1), ["N", "PgDown"])
        self.prev_action = A("&Previous image", lambda: self.go_next(-1), ["P", "PgUp"])
        self.label_actions: list[QAction] = []
        self.unlabel_action = A("&Unlabelled", lambda: self.set_label(None), "0")
        self.reference_action = A("Use as colour &reference", lambda: self.use_as_color_reference())
        self.reference_action.setToolTip("Train new runs with this image's LAB statistics as the Reinhard reference")
        self.default_reference_action = A("Default colour reference", lambda: self.use_as_color_reference(None))

        self.about_action = A("&About GuSA Studio", lambda: self.show_about())
        self.keys_action = A("&Keyboard shortcuts", lambda: self.show_shortcuts(), SK.HelpContents)

    def _build_menus(self) -> None:
        mb = self.menuBar()
        self.file_menu = mb.addMenu("&File")
        self.file_menu.addAction(self.open_action)
        self.recent_menu = self.file_menu.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        self.file_menu.addAction(self.new_action)
        self.file_menu.addAction(self.add_images_action)
        self.file_menu.addSeparator()
        for a in (self.import_geojson_action, self.export_geojson_action, self.import_mask_action, self.export_mask_action):
            self.file_menu.addAction(a)
        self.file_menu.addSeparator()
        self.file_menu.addAction(self.save_action)
        self.file_menu.addAction(self.quit_action)

        self.edit_menu = mb.addMenu("&Edit")
        for a in (self.undo_action, self.redo_action, None, self.fill_holes_action, self.clear_mask_action, None):
            self.edit_menu.addSeparator() if a is None else self.edit_menu.addAction(a)
        for a in self.tool_actions.values():
            self.edit_menu.addAction(a)
        self.edit_menu.addAction(self.bigger_action)
        self.edit_menu.addAction(self.smaller_action)

        self.image_menu = mb.addMenu("&Image")
        self.label_menu_anchor = self.image_menu.addSeparator()
        self.image_menu.addAction(self.unlabel_action)
        self.image_menu.addSeparator()
        self.image_menu.addAction(self.next_action)
        self.image_menu.addAction(self.prev_action)
        self.image_menu.addSeparator()
        self.image_menu.addAction(self.advance_action)
        self.image_menu.addSeparator()
        self.image_menu.addAction(self.reference_action)
        self.image_menu.addAction(self.default_reference_action)

        self.view_menu = mb.addMenu("&View")
        for a in (self.fit_action, self.actual_size_action, self.zoom_in_action, self.zoom_out_action, None, self.mask_action, None):
            self.view_menu.addSeparator() if a is None else self.view_menu.addAction(a)
        self.view_menu.addAction(self.image_list_dock.toggleViewAction())
        self.view_menu.addAction(self.side_panel_dock.toggleViewAction())

        self.model_menu = mb.addMenu("&Model")
        self.help_menu = mb.addMenu("&Help")
        self.help_menu.addAction(self.keys_action)
        self.help_menu.addAction(self.about_action)
