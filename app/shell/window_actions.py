"""File, image and help actions of the main window (a mixin of :class:`~app.shell.main_window.MainWindow`).

Kept apart from ``main_window.py`` so that each file reads in one sitting: here
live the handlers behind the File menu (open, new, add images, GeoJSON and PNG
import/export), the image list's context menu, drag and drop and the Help
dialogs. Dialogs go through ``self.dialogs``; every handler that takes a path
can be called with one, bypassing its dialog.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtWidgets import QApplication, QMenu

from app.base import errors

__all__ = ["WindowActionsMixin"]


class WindowActionsMixin:
    """Handlers that need a ``MainWindow`` (``self.project``, ``self.canvas``, ``self.autosave``, ...)."""

    def open_project_dialog(self) -> None:
        folder = self.dialogs.directory(self, "Open project folder")
        if folder:
            self.open_project(folder)

    def new_project_dialog(self) -> None:
        from gusa_core.errors import GusaError
        from gusa_core.project import Project

        images = self.dialogs.directory(self, "Folder of images (a BACH Photos/ folder works as it is)")
        if not images:
            return
        target = self.dialogs.new_directory(self, "New project folder: type a new name, or choose an empty folder")
        if not target:
            return
        try:
            project = Project.from_folder(target, images, lock=self.lock_purpose())
        except GusaError as exc:
            errors.show_error(self, "Cannot create project", errors.describe(exc))
            return
        self.set_project(project)

    def add_images_dialog(self) -> None:
        from gusa_core.imageio import IMAGE_SUFFIXES

        if self.project is None or self.refuse_if_read_only():
            return
        from gusa_core.slides import SLIDE_SUFFIXES

        patterns = " ".join(f"*{s}" for s in dict.fromkeys(IMAGE_SUFFIXES + SLIDE_SUFFIXES))
        paths = self.dialogs.open_paths(self, "Add images or slides", f"Images and slides ({patterns});;All files (*)")
        if paths:
            self.add_images(paths)

    def add_images(self, paths) -> None:
        from gusa_core.errors import GusaError

        if self.refuse_if_read_only():
            return
        try:
            from gusa_core.project.slides import add_paths

            add_paths(self.project, [Path(p) for p in paths])  # whole-slide images become slides
        except GusaError as exc:
            errors.show_error(self, "Cannot add images", errors.describe(exc))
        self.autosave.save_manifest(self.project)
        self._update_title()

    def import_geojson(self, path: str | os.PathLike | None = None) -> bool:
        """Add the polygons of a QuPath GeoJSON file to the current RoI."""
        from gusa_core.errors import GusaError
        from gusa_core.geojson import import_geojson

        if self._image is None or self.refuse_if_read_only():
            return False
        path = path or self.dialogs.open_path(self, "Import GeoJSON (QuPath)", "GeoJSON (*.geojson *.json);;All files (*)")
        if not path:
            return False
        try:
            mask = import_geojson(path, self._image.shape[:2])
        except (GusaError, OSError) as exc:
            errors.show_error(self, "Cannot import GeoJSON", errors.describe(exc))
            return False
        self.replace_mask(mask)
        self.show_status(f"Imported {Path(path).name}", 3000)
        return True

    def export_geojson(self, path: str | os.PathLike | None = None) -> bool:
        """Write the current RoI as QuPath GeoJSON."""
        from gusa_core.geojson import export_geojson

        editor = self.canvas.editor()
        if editor is None:
            return False
        path = path or self.dialogs.save_path(self, "Export GeoJSON", f"{self._current_id}.geojson", "GeoJSON (*.geojson)")
        if not path:
            return False
        label = self.project.image(self._current_id).label
        color = self.project.class_colors.get(label, self.canvas.mask_color()) if label else self.canvas.mask_color()
        try:
            export_geojson(path, editor.mask, name=label or "RoI", color=tuple(color))
        except OSError as exc:
            errors.show_error(self, "Cannot export GeoJSON", f"Cannot write {path}: {exc.strerror or exc}")
            return False
        self.show_status(f"Exported {Path(path).name}", 3000)
        return True

    def import_mask_png(self, path: str | os.PathLike | None = None) -> bool:
        """Add a mask PNG (non-zero = RoI, the image's size) to the current RoI."""
        from gusa_core.errors import GusaError
        from gusa_core.imageio import read_mask

        if self._image is None or self.refuse_if_read_only():
            return False
        path = path or self.dialogs.open_path(self, "Import mask PNG", "Masks (*.png *.tif *.tiff);;All files (*)")
        if not path:
            return False
        try:
            mask = read_mask(path, self._image.shape[:2])
        except (GusaError, OSError) as exc:
            errors.show_error(self, "Cannot import mask", errors.describe(exc))
            return False
        self.replace_mask(mask)
        return True

    def export_mask_png(self, path: str | os.PathLike | None = None) -> bool:
        """Write the current RoI as a PNG (0 / 255)."""
        from gusa_core.imageio import write_mask

        editor = self.canvas.editor()
        if editor is None:
            return False
        path = path or self.dialogs.save_path(self, "Export mask PNG", f"{self._current_id}.png", "PNG (*.png)")
        if not path:
            return False
        try:
            write_mask(path, editor.mask)
        except OSError as exc:
            errors.show_error(self, "Cannot export mask", f"Cannot write {path}: {exc.strerror or exc}")
            return False
        return True

    def image_context_menu(self, image_id: str) -> QMenu:
        """The menu of one image in the list: label it, copy its path, remove it from the project."""
        menu = QMenu(self)
        label_menu = menu.addMenu("Label")
        for i, name in enumerate(self.project.classes):
            a = label_menu.addAction(f"{name}\t{i + 1}" if i < 9 else name)
            a.triggered.connect(lambda _=False, n=name: self.set_image_label(image_id, n))
        a = label_menu.addAction("Unlabelled\t0")
        a.triggered.connect(lambda _=False: self.set_image_label(image_id, None))
        menu.addAction("Copy file path").triggered.connect(
            lambda: QApplication.clipboard().setText(str(self.project.image_path(image_id))))
        menu.addSeparator()
        menu.addAction("Remove from project…").triggered.connect(lambda: self.remove_image(image_id))
        return menu

    def _on_image_list_context_menu(self, image_id: str, global_pos) -> None:
        self.image_context_menu(image_id).exec(global_pos)

    def set_image_label(self, image_id: str, label: str | None) -> None:
        """Label any image of the project (saved in the background)."""
        if self.project is None or self.refuse_if_read_only():
            return
        if image_id == self._current_id:
            self.set_label(label)
            return
        if self.project.image(image_id).label != label:
            self.project.set_label(image_id, label)
            self.autosave.save_manifest(self.project)
            self._update_title()

    def remove_image(self, image_id: str, *, confirm: bool = True) -> bool:
        """Remove an image from the project (its file stays on disk)."""
        if self.project is None or image_id not in self.project or self.refuse_if_read_only():
            return False
        if confirm and not self.dialogs.confirm(self, "Remove image", f"Remove {image_id} from the project? The image file stays where it is."):
            return False
        if image_id == self._current_id:
            self._commit_notes()
            following = self.image_list.neighbour_id(image_id, 1) or self.image_list.neighbour_id(image_id, -1)
            self.autosave.flush()
        else:
            following = None
        self.project.remove_image(image_id)
        self.autosave.save_manifest(self.project)
        if image_id == self._current_id:
            self._current_id = None
            self._image = None
            self.canvas.set_editor(None)
            self.canvas.set_image(None)
            if following is not None:
                self.show_image(following)
            else:
                self._update_side_panel()
                self._update_enabled()
        self._update_title()
        return True

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        event.acceptProposedAction()
        self.open_dropped(paths)

    def open_dropped(self, paths) -> None:
        """A project folder opens; image files and folders of images are added to the open project."""
        from gusa_core.imageio import IMAGE_SUFFIXES
        from gusa_core.project.importer import list_inputs
        from gusa_core.slides import SLIDE_SUFFIXES

        paths = [Path(p) for p in paths]
        projects = [p for p in paths if (p / "gusa-project.json").is_file()]
        if projects:
            self.open_project(projects[0])
            return
        if self.project is None:
            self.show_status("Open or create a project first (File menu), then drop images on the window", 5000)
            return
        images = []
        for p in paths:
            if p.is_dir():
                images.extend(list_inputs(p))  # slides too; a MIRAX data folder is not walked
            elif p.suffix.lower() in IMAGE_SUFFIXES or p.suffix.lower() in SLIDE_SUFFIXES:
                images.append(p)
        if images:
            self.add_images(images)
            self.show_status(f"Added {len(images)} image(s)", 3000)

    def use_as_color_reference(self, image_id: str | None = "current") -> None:
        """Make ``image_id`` (default: the current image) the project's Reinhard reference; None: the shipped default.

        New runs fit their colour normalisation to it; a run keeps the reference
        it was trained with (stored in its model.json).
        """
        if self.project is None or self.refuse_if_read_only():
            return
        if image_id == "current":
            image_id = self.current_image_id()
            if image_id is None:
                return
        self.project.reinhard_reference = image_id
        self.autosave.save_manifest(self.project)
        which = f"image {image_id}" if image_id else "the shipped default (a real H&E slide)"
        self.show_status(f"Colour reference for new training runs: {which}")

    def show_about(self) -> None:
        """Help ▸ About: versions of GuSA Studio, Python, torch/CUDA, Qt and onnxruntime."""
        from app.shell.about import AboutDialog

        AboutDialog(self).exec()

    def show_shortcuts(self) -> None:
        rows = [
            ("1 – 4", "label the image with a class; 0 removes the label"),
            ("On a slide: 1, 2, 3, 4, 5", "magnification 1x, 5x, 10x, 20x, 40x"),
            ("On a slide: Shift+1 – Shift+4", "the class painted by the brush and the lasso"),
            ("On a slide: H, click", "pan tool; a click picks a field of the heatmap"),
            ("N / Page Down, P / Page Up", "next / previous image"),
            ("B, E, L", "brush, eraser, lasso / polygon fill"),
            ("[ and ], Ctrl+wheel", "brush size"),
            ("Alt while painting", "erase with the brush (paint with the eraser)"),
            ("H", "fill holes in the RoI"),
            ("Ctrl+Z, Ctrl+Shift+Z / Ctrl+Y", "undo / redo one stroke"),
            ("M", "show / hide the RoI mask"),
            ("wheel, + and −", "zoom towards the cursor"),
            ("Ctrl+0 or F, Ctrl+1", "fit to the window, actual size"),
            ("space+drag, middle drag, arrows", "pan"),
            ("lasso: click vertices, Enter or double-click", "fill the polygon; Esc cancels"),
        ]
        html = "<table cellspacing='6'>" + "".join(f"<tr><td><b>{k}</b></td><td>{v}</td></tr>" for k, v in rows) + "</table>"
        self.dialogs.inform(self, "Keyboard shortcuts", html)
