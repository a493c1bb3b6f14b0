"""GuSA Studio's main window: the annotation workspace, and the :class:`~app.shell.host.Host` of the features.

The window implements :class:`app.shell.host.Host`: the training, runs,
review, compare, classify, report and classes features get the window as a
``Host`` in :meth:`MainWindow.install_features` and use only what that
protocol names (project, canvas, image list, menus, docks, status bar,
``dialogs``, the ``runs`` service and the two signals).

Actions and menus live in :mod:`app.shell.window_menus`; file, import/export, drag-and-drop and Help handlers in
:mod:`app.shell.window_actions`, showing/labelling/editing images in
:mod:`app.shell.window_images` (mixins). Every standard dialog goes through
``window.dialogs`` (:class:`app.base.dialogs.Dialogs`), which tests replace.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import numpy as np
from PySide6.QtCore import QStandardPaths, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QLabel,
    QMainWindow,
    QWidget,
)

from app.base import errors
from app.base.dialogs import Dialogs
from app.workspace.autosave import AutosaveWorker
from app.workspace.canvas_tools import AnnotationView
from app.base.icon import app_icon
from app.workspace.image_list import ImageListPanel
from app.workspace.project_bridge import ProjectBridge
from app.base.settings import add_recent_project, recent_projects, settings
from app.workspace.side_panel import SidePanel
from app.base.runs_model import RunsModel
from app.shell.window_actions import WindowActionsMixin
from app.shell.window_images import WindowImagesMixin
from app.shell.window_layout import WindowLayoutMixin
from app.shell.window_lock import WindowLockMixin
from app.shell.window_menus import WindowMenusMixin
from app.shell.window_slides import WindowSlidesMixin

__all__ = ["MainWindow", "APP_NAME"]

APP_NAME = "GuSA Studio"


class MainWindow(WindowActionsMixin, WindowImagesMixin, WindowMenusMixin, WindowSlidesMixin, WindowLayoutMixin, WindowLockMixin, QMainWindow):
    """The annotation workspace; implements :class:`app.shell.host.Host` for the features."""

    current_image_changed = Signal(str)
    project_opened = Signal(object)
    slide_shown = Signal(str)

    def __init__(self, project=None, parent: QWidget | None = None, *, features: bool = True):
        super().__init__(parent)
        self.setWindowIcon(app_icon())
        self.setObjectName("MainWindow")
        self.setDockNestingEnabled(True)
        self.setAcceptDrops(True)
        self.project = None
        self._bridge: ProjectBridge | None = None
        self._current_id: str | None = None
        self._image: np.ndarray | None = None
        self._editors: OrderedDict[str, object] = OrderedDict()
        self._prefetch: tuple | None = None  # (image id, path, Future of the decoded image)
        self._prefetcher = None
        self._closing = False
        self._notes_pending: tuple[str, str] | None = None
        self.dialogs = Dialogs()  # every standard dialog goes through it (tests replace it)
        self.runs = RunsModel(parent=self)
        self.features: dict[str, object] = {}  # feature module name -> what its install returned
        self._docks: dict[str, QDockWidget] = {}

        self.autosave = AutosaveWorker(self)
        self.autosave.idle.connect(self._update_title)
        self.autosave.saved.connect(self._on_autosave_saved)
        self.autosave.failed.connect(self._on_autosave_failed)

        self.canvas = AnnotationView()
        self.setCentralWidget(self._build_slide_workspace())  # the one canvas, under the slide toolbar for a slide
        self.image_list = ImageListPanel()
        self.side_panel = SidePanel()
        self.image_list_dock = self._make_dock(self.image_list, "Images", Qt.DockWidgetArea.LeftDockWidgetArea)
        self.side_panel_dock = self._make_dock(self.side_panel, "Annotate", Qt.DockWidgetArea.RightDockWidgetArea)

        self._build_status_bar()
        self._build_actions()
        self._build_menus()
        self._build_lock_bar()
        self._connect()
        self._class_key_only_on_images(self.unlabel_action)
        self._restore_settings()
        self._features_installed = False
        if features:
            # after the window is up: a feature may be slow to build (it must not delay the window)
            QTimer.singleShot(0, self.install_features)
        self._update_title()
        self._update_enabled()
        if project is not None:
            self.set_project(project)

    # ================================================================ docks
    def add_dock(self, widget: QWidget, title: str, area=Qt.DockWidgetArea.RightDockWidgetArea) -> QDockWidget:
        """Add ``widget`` as a dock titled ``title``; its toggle goes into the View menu."""
        dock = self._make_dock(widget, title, area)
        self.view_menu.addAction(dock.toggleViewAction())
        self._docks[title] = dock
        state = settings().value("main_window/state")
        if state is not None:
            self.restoreDockWidget(dock)
        return dock

    def show_dock(self, title: str) -> bool:
        """Show and raise the dock added as ``title``; False when there is none."""
        dock = self._docks.get(title)
        if dock is None:
            return False
        dock.show()
        dock.raise_()
        self.fit_to_screen()
        return True

    def review_field(self, image: np.ndarray, title: str, *, run_dir: str, fold: int | None = None) -> bool:
        """Show a field that is not a project image in the Review dock (see :class:`~app.shell.host.Host`)."""
        review = self.features.get("app.review.review_panel")
        if review is None:
            return False
        self.show_dock("Review")
        review.show_field(image, title, run_dir=run_dir, fold=fold)
        return True

    def install_features(self, modules=None) -> None:
        """Let the model features (training, review, ...) add their docks and menu entries (once).

        ``modules``: the feature modules, in any order (default :data:`app.shell.features.FEATURE_MODULES`).
        """
        from app.shell.features import FEATURE_MODULES, install_all

        if self._features_installed:
            return
        self._features_installed = True
        try:
            self.features = install_all(self, FEATURE_MODULES if modules is None else modules)
        except Exception as exc:  # a broken feature must not keep the annotation workspace from opening
            import logging
            import traceback

            logging.getLogger(__name__).error("installing features failed:\n%s", traceback.format_exc())
            self.show_status(f"Some model features are unavailable: {errors.describe(exc)}", 10000)

    def _build_status_bar(self) -> None:
        sb = self.statusBar()
        self._status_labels = {}
        for name, width, tip in (
            ("pos", 210, "Cursor position in image pixels: x, y (row, col)"),
            ("rgb", 130, "Colour of the pixel under the cursor"),
            ("zoom", 70, "Zoom (100 % = one image pixel per screen pixel)"),
            ("brush", 90, "Brush diameter in image pixels"),
            ("size", 110, "Image size (width × height)"),
            ("save", 80, "Autosave state"),
        ):
            lab = QLabel()
            lab.setMinimumWidth(width)
            lab.setToolTip(tip)
            sb.addPermanentWidget(lab)
            self._status_labels[name] = lab

    def _connect(self) -> None:
        c, sp = self.canvas, self.side_panel
        c.cursor_moved.connect(self._on_canvas_cursor_moved)
        c.zoom_changed.connect(self._on_canvas_zoom_changed)
        c.brush_size_changed.connect(self._on_canvas_brush_size_changed)
        c.tool_changed.connect(self._on_canvas_tool_changed)
        c.stroke_finished.connect(self._on_canvas_stroke_finished)
        sp.label_chosen.connect(self.set_label)
        sp.tool_chosen.connect(self.set_tool)
        sp.brush_size_changed.connect(c.set_brush_size)
        sp.mask_visible_changed.connect(self._set_mask_visible)
        sp.opacity_changed.connect(c.set_mask_opacity)
        sp.fill_holes_requested.connect(self.fill_holes)
        sp.clear_mask_requested.connect(self.clear_mask)
        sp.undo_requested.connect(self.undo)
        sp.redo_requested.connect(self.redo)
        sp.notes_edited.connect(self._on_side_panel_notes_edited)
        self._notes_timer = QTimer(self)
        self._notes_timer.setSingleShot(True)
        self._notes_timer.setInterval(500)
        self._notes_timer.timeout.connect(self._commit_notes)
        self.image_list.image_selected.connect(self.show_image)
        proxy = self.image_list.proxy  # the "3 of 12" of the side panel follows filtering and sorting
        for sig in (proxy.rowsInserted, proxy.rowsRemoved, proxy.modelReset, proxy.layoutChanged):
            sig.connect(lambda *_: self._update_side_panel())
        self.image_list.model.thumbnail_failed.connect(self._on_thumbnail_failed)
        self.image_list.context_menu_requested.connect(self._on_image_list_context_menu)
        self.image_list.columns_changed.connect(self._on_image_list_columns_changed)
        self._on_canvas_brush_size_changed(c.brush_size())
        self._on_canvas_zoom_changed(c.zoom())

    # ============================================================= settings
    def _restore_settings(self) -> None:
        s = settings()
        geometry = s.value("main_window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(*self.default_window_size())
        state = s.value("main_window/state")
        if state is not None:
            self.restoreState(state)
        else:
            self.resizeDocks([self.image_list_dock, self.side_panel_dock], [300, 360], Qt.Orientation.Horizontal)
        self.canvas.set_brush_size(int(s.value("canvas/brush_size", 40)))
        self.side_panel.set_opacity(float(s.value("canvas/mask_opacity", 0.8)))
        self.advance_action.setChecked(str(s.value("labels/advance", "false")).lower() == "true")

    def _save_settings(self) -> None:
        s = settings()
        s.setValue("main_window/geometry", self.saveGeometry())
        s.setValue("main_window/state", self.saveState())
        s.setValue("canvas/brush_size", self.canvas.brush_size())
        s.setValue("canvas/mask_opacity", self.canvas.mask_opacity())
        s.setValue("labels/advance", self.advance_action.isChecked())
        if self.project is not None and self._current_id is not None:
            s.setValue(self._last_image_key(), self._current_id)
        s.sync()

    def _last_image_key(self) -> str:
        folder = str(Path(self.project.folder).resolve())
        return "last_image/" + folder.replace("/", "|").replace("\\", "|")

    # ============================================================== project
    def set_project(self, project) -> None:
        """Show ``project`` (a ``Project``); pending saves of the previous one are flushed first."""
        if self.project is not None:
            self._commit_notes()
            self._show_canvas_page()
            self._save_settings()
            self.autosave.flush()
            if self.project is not project:
                self.project.close()  # gives its write lock up
        if self._bridge is not None:
            self._bridge.disconnect_project()
            self._bridge.deleteLater()
        self.project = project
        self._editors.clear()
        self._prefetch = None
        self._current_id = None
        self._image = None
        self.canvas.set_editor(None)
        self.canvas.set_image(None)
        self._bridge = ProjectBridge(project, self)
        self._bridge.label_changed.connect(self._on_project_label_changed)
        self._bridge.mask_changed.connect(self._on_project_mask_changed)
        self._bridge.image_added.connect(self._on_project_image_added)
        self._bridge.image_removed.connect(self._on_project_image_removed)
        self._bridge.classes_changed.connect(self._on_project_classes_changed)
        self._show_canvas_page()
        self._slide_editors.clear()
        self.slide_toolbar.set_classes(project.classes, project.class_colors)
        self.image_list.set_project(project)
        self.runs.set_project(project)
        self.side_panel.set_classes(project.classes, project.class_colors)
        self._rebuild_label_actions()
        try:
            add_recent_project(project.folder)
        except Exception:
            pass
        self.canvas.set_placeholder("This project has no images yet: File ▸ Add images…")
        self._show_lock_state()
        self.project_opened.emit(project)
        first = settings().value(self._last_image_key())
        ids = [r.id for r in project.images]
        if first not in ids:
            visible = self.image_list.visible_ids()
            first = visible[0] if visible else None
        if first is not None:
            self.show_image(first)
        else:
            self._update_side_panel()

    def open_project(self, folder: str | os.PathLike) -> bool:
        """Open the project in ``folder``; a message names it if it cannot be opened.

        The window takes the project's write lock; when another window or
        program holds it, the project opens read-only with a bar naming the
        holder and a *Take over* action.
        """
        from gusa_core.errors import GusaError, ProjectLockedError
        from gusa_core.project import Project

        try:
            try:
                project = Project.open(folder, lock=self.lock_purpose())
            except ProjectLockedError:
                project = Project.open(folder, read_only=True)
        except GusaError as exc:
            errors.show_error(self, "Cannot open project", errors.describe(exc))
            return False
        except OSError as exc:
            errors.show_error(self, "Cannot open project", f"Cannot open project {folder}: {exc.strerror or exc}")
            return False
        self.set_project(project)
        return True

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        items = recent_projects()
        if not items:
            a = self.recent_menu.addAction("(none)")
            a.setEnabled(False)
        for folder in items:
            a = self.recent_menu.addAction(folder)
            a.triggered.connect(lambda _=False, f=folder: self.open_project(f))

    def _on_project_classes_changed(self) -> None:
        """Classes added, renamed, recoloured or removed: rebuild what shows them."""
        self.side_panel.set_classes(self.project.classes, self.project.class_colors)
        self.slide_toolbar.set_classes(self.project.classes, self.project.class_colors)
        self._rebuild_label_actions()
        self.image_list.refresh_classes(self.project)
        self._update_side_panel()

    def _rebuild_label_actions(self) -> None:
        for a in self.label_actions:
            self.image_menu.removeAction(a)
            self.removeAction(a)
            self.canvas.removeAction(a)
            self.image_list.removeAction(a)
        self.label_actions = []
        for i, name in enumerate(self.project.classes):
            key = str(i + 1) if i < 9 else None
            a = self._action(f"Label {name}", lambda _=False, n=name: self.set_label(n), key)
            self._class_key_only_on_images(a)
            self.image_menu.insertAction(self.label_menu_anchor, a)
            self.label_actions.append(a)
        self._rebuild_class_paint_actions()

    def _class_key_only_on_images(self, action) -> None:
        """A class key acts only while the canvas or the image list has focus (never in a form of a dock)."""
        self.removeAction(action)
        for a in self.canvas.actions() + self.image_list.actions():
            if a is action:
                return
        action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.canvas.addAction(action)
        self.image_list.addAction(action)

    # ================================================================ saving
    def save_now(self) -> bool:
        """Write everything pending now (blocks until it is on disk)."""
        self._commit_notes()
        if self.refuse_if_read_only():
            return False
        if self.project is not None and getattr(self.project, "dirty", False):
            self.autosave.save_manifest(self.project)
        ok = self.autosave.flush()
        self._update_title()
        return ok

    def _on_autosave_saved(self, key: str) -> None:
        if key.startswith("mask:"):
            self.image_list.refresh(key[5:])
        self._update_title()

    def _on_autosave_failed(self, message: str) -> None:
        self._update_title()
        if self.project is not None and (self.is_read_only() or not self.check_lock()):
            self.refuse_if_read_only()  # not a disk problem: another writer has the project
            return
        if not self._closing:
            errors.show_error(self, "Autosave failed", message + "\n\nYour edits are kept in memory; free space or fix the permissions, then use File ▸ Save now.")

    def _update_title(self, *args) -> None:
        name = Path(self.project.folder).name if self.project is not None else None
        ro = " (read-only)" if self.project is not None and self.is_read_only() else ""
        # the platform appends the application's display name ("demo — GuSA Studio"): do not say it twice
        if name is None:
            self.setWindowTitle(f"{APP_NAME}[*]")
        elif QApplication.applicationDisplayName() == APP_NAME:
            self.setWindowTitle(f"{name}{ro}[*]")
        else:
            self.setWindowTitle(f"{APP_NAME} — {name}{ro}[*]")
        pending = self.autosave.has_pending() or self._notes_pending is not None
        self.setWindowModified(pending)
        lab = self._status_labels["save"]
        lab.setText("Saving…" if pending else ("Saved" if self.project is not None else ""))

    def closeEvent(self, event: QCloseEvent) -> None:
        self._closing = True
        self._commit_notes()
        if self.project is not None and getattr(self.project, "dirty", False) and not self.is_read_only():
            self.autosave.save_manifest(self.project)
        if not self.autosave.shutdown(timeout=60):
            errors.show_error(self, "Saving is taking long", "Some changes could not be written yet; the window stays open.")
            self._closing = False
            event.ignore()
            return
        self._show_canvas_page()  # the docks as the user arranged them, not as a slide shows them
        self._save_settings()
        self.slide_toolbar.shutdown()
        if self._prefetcher is not None:
            self._prefetcher.shutdown(wait=True, cancel_futures=True)
        self.image_list.model._pool.clear()
        self.image_list.model._pool.waitForDone(3000)
        if self._bridge is not None:
            self._bridge.disconnect_project()
        if self.project is not None:
            self._lock_timer.stop()
            self.project.close()  # gives the write lock up
        event.accept()

    # ============================================================ callbacks
    def _on_canvas_stroke_finished(self, rect) -> None:
        self._after_edit(rect)

    def _on_side_panel_notes_edited(self, text: str) -> None:
        if self.project is None or self._current_id is None:
            return
        self._notes_pending = (self._current_id, text)
        self.setWindowModified(True)
        self._notes_timer.start()

    def _commit_notes(self) -> None:
        """Write typed notes into the project (debounced: one save per pause in typing)."""
        self._notes_timer.stop()
        if self._notes_pending is None or self.project is None:
            return
        image_id, text = self._notes_pending
        self._notes_pending = None
        if self.refuse_if_read_only():
            self._update_title()
            return
        if image_id in self.project:
            self.project.set_notes(image_id, text)
            self.autosave.save_manifest(self.project)
        self._update_title()

    def _on_canvas_cursor_moved(self, rc) -> None:
        pos, rgb = self._status_labels["pos"], self._status_labels["rgb"]
        if rc is None:
            pos.setText("")
            rgb.setText("")
            return
        row, col = rc
        pos.setText(f"x {col}, y {row}  (row {row}, col {col})")
        value = self.canvas.pixel_rgb(row, col)
        rgb.setText("" if value is None else "RGB %d, %d, %d" % value)

    def _on_canvas_zoom_changed(self, zoom: float) -> None:
        if self.showing_slide():
            self._show_slide_status()
            return
        self._status_labels["zoom"].setText(f"{zoom * 100:.0f} %" if zoom >= 0.1 else f"{zoom * 100:.1f} %")

    def _on_canvas_brush_size_changed(self, size: int) -> None:
        if self.showing_slide():
            self._show_slide_status()
            return
        self._status_labels["brush"].setText(f"brush {size} px")
        self.side_panel.set_brush_size(size)

    def _on_canvas_tool_changed(self, tool: str) -> None:
        self.side_panel.set_tool(tool)
        if tool in self.tool_actions:
            self.tool_actions[tool].setChecked(True)

    def _on_project_label_changed(self, image_id: str) -> None:
        editor = self._editors.get(image_id)
        if editor is not None and image_id in self.project:
            editor.sync_label(self.project.image(image_id).label)  # labelled from the image list's menu
        self.image_list.refresh(image_id)
        if image_id == self._current_id:
            self._update_side_panel()

    def _on_project_mask_changed(self, image_id: str) -> None:
        self.image_list.refresh(image_id)
        if image_id == self._current_id:
            self._update_side_panel()

    def _on_project_image_added(self, image_id: str) -> None:
        self.image_list.model.add_row(image_id)
        self.image_list.refresh()
        if self._current_id is None:
            self.show_image(image_id)

    def _on_project_image_removed(self, image_id: str) -> None:
        self._editors.pop(image_id, None)
        self.image_list.model.remove_row(image_id)

    def _on_image_list_columns_changed(self) -> None:
        """A column appeared: widen the Images dock so that names stay readable (never past a third of the window)."""
        want = min(self.image_list.wanted_width(), self.width() // 3)
        dock = self.image_list_dock
        if not dock.isFloating() and dock.width() < want:
            self.resizeDocks([dock], [want], Qt.Orientation.Horizontal)

    def _on_thumbnail_failed(self, image_id: str, reason: str) -> None:
        self.show_status(f"Cannot read image {image_id}: {reason}", 5000)

    def show_status(self, text: str, msecs: int = 3000) -> None:
        self.statusBar().showMessage(text, msecs)

    # ============================================================ helpers
    @staticmethod
    def demo_folder() -> Path:
        """Where ``--demo`` keeps its project: the user's application data folder."""
        base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
        return Path(base or Path.home() / ".gusa-studio") / "demo-project"
