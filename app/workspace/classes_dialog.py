"""Project → Classes…: add, rename, recolour and remove the project's classes.

Every change goes through the project model (``Project.add_class``,
``rename_class``, ``set_class_color``, ``remove_class``), which relabels the
images and fires ``classes_changed``; the main window listens and rebuilds the
class buttons, the number keys and the image list's filter. The manifest is
saved after each change. Runs already trained keep the class names they were
trained with (stored in their model.json).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
)

from app.base.dialogs import Dialogs
from app.base.errors import show_warning

if TYPE_CHECKING:
    from app.shell.host import Host

__all__ = ["ClassesDialog", "install"]


def _swatch(rgb) -> QIcon:
    pix = QPixmap(14, 14)
    pix.fill(QColor(*rgb))
    return QIcon(pix)


class ClassesDialog(QDialog):
    """Edit the classes of ``project``; each change is saved at once."""

    def __init__(self, project, parent=None, *, dialogs: Dialogs | None = None):
        super().__init__(parent)
        self.setWindowTitle("Classes")
        self.project = project
        self.dialogs = dialogs or Dialogs()
        self.list = QListWidget()
        self.list.itemDoubleClicked.connect(lambda _item: self.rename_selected())
        self.add_button = QPushButton("Add…")
        self.rename_button = QPushButton("Rename…")
        self.color_button = QPushButton("Colour…")
        self.remove_button = QPushButton("Remove…")
        self.add_button.clicked.connect(lambda: self.add_class())
        self.rename_button.clicked.connect(lambda: self.rename_selected())
        self.color_button.clicked.connect(lambda: self.recolor_selected())
        self.remove_button.clicked.connect(lambda: self.remove_selected())
        close = QPushButton("Close")
        close.clicked.connect(self.accept)
        buttons = QVBoxLayout()
        for b in (self.add_button, self.rename_button, self.color_button, self.remove_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(close)
        row = QHBoxLayout()
        row.addWidget(self.list, 1)
        row.addLayout(buttons)
        note = QLabel("The order is the classifier's output order; number keys 1–9 follow it. "
                      "Trained runs keep the names they were trained with.")
        note.setWordWrap(True)
        note.setStyleSheet("color: palette(mid);")
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(note)
        self.refresh()

    def refresh(self) -> None:
        current = self.selected()
        self.list.clear()
        for name in self.project.classes:
            n = sum(1 for r in self.project.images if r.label == name)
            item = QListWidgetItem(_swatch(self.project.class_colors.get(name, (128, 128, 128))), f"{name}  ({n} images)")
            item.setData(Qt.ItemDataRole.UserRole, name)
            self.list.addItem(item)
            if name == current:
                self.list.setCurrentItem(item)
        if self.list.currentRow() < 0 and self.list.count():
            self.list.setCurrentRow(0)

    def selected(self) -> str | None:
        item = self.list.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item is not None else None

    # ------------------------------------------------------------- changes
    def _apply(self, change) -> bool:
        from gusa_core.errors import GusaError

        try:
            change()
            self.project.save()
        except (ValueError, KeyError, GusaError) as exc:  # GusaError: read-only, or another writer holds the project
            show_warning(self, "Classes", str(exc).strip("'\""))
            return False
        self.refresh()
        return True

    def add_class(self, name: str | None = None) -> bool:
        if name is None:
            name = self.dialogs.text(self, "Add a class", "Name of the new class:")
            if not name or not name.strip():
                return False
        return self._apply(lambda: self.project.add_class(name.strip()))

    def rename_selected(self, new: str | None = None) -> bool:
        old = self.selected()
        if old is None:
            return False
        if new is None:
            new = self.dialogs.text(self, "Rename class", f"New name for {old}:", old)
            if not new or not new.strip() or new.strip() == old:
                return False
        return self._apply(lambda: self.project.rename_class(old, new.strip()))

    def recolor_selected(self, rgb=None) -> bool:
        name = self.selected()
        if name is None:
            return False
        if rgb is None:
            rgb = self.dialogs.color(self, f"Colour of {name}", self.project.class_colors.get(name, (128, 128, 128)))
            if rgb is None:
                return False
        return self._apply(lambda: self.project.set_class_color(name, rgb))

    def remove_selected(self, *, confirm: bool = True) -> bool:
        name = self.selected()
        if name is None:
            return False
        n = sum(1 for r in self.project.images if r.label == name)
        if confirm:
            if not self.dialogs.question(
                self, "Remove class",
                f"Remove the class {name}? {n} image(s) labelled {name} become unlabelled; their RoI masks stay.",
            ):
                return False
        return self._apply(lambda: self.project.remove_class(name))


def install(host: Host) -> None:
    """Add Image → Classes… to the host's window."""

    def _open():
        if host.project is None:
            return
        ClassesDialog(host.project, host, dialogs=host.dialogs).exec()

    action = host.image_menu.addAction("&Classes…")
    action.setObjectName("action_classes")
    action.triggered.connect(_open)
