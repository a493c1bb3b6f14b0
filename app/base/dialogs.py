"""Every standard dialog the app opens (file choosers, questions, messages), behind one object.

The main window owns one :class:`Dialogs` (``host.dialogs``) and hands it to
the panels it builds; a test replaces its methods (or the whole object) to
answer without a blocking dialog. Nothing else in ``app/`` calls
``QFileDialog`` or ``QMessageBox`` directly (error messages go through
:mod:`app.base.errors`).
"""

from __future__ import annotations

from PySide6.QtGui import QColor
from PySide6.QtWidgets import QColorDialog, QFileDialog, QInputDialog, QMessageBox, QWidget

__all__ = ["Dialogs"]

_B = QMessageBox.StandardButton


class Dialogs:
    """Modal standard dialogs; every method takes the ``parent`` widget first."""

    def directory(self, parent: QWidget | None, title: str, start: str = "") -> str | None:
        """A folder chosen by the user, or ``None``."""
        return QFileDialog.getExistingDirectory(parent, title, start) or None

    def open_path(self, parent: QWidget | None, title: str, filters: str, start: str = "") -> str | None:
        """An existing file chosen by the user, or ``None``."""
        return QFileDialog.getOpenFileName(parent, title, start, filters)[0] or None

    def open_paths(self, parent: QWidget | None, title: str, filters: str) -> list[str]:
        """Existing files chosen by the user (empty when cancelled)."""
        return QFileDialog.getOpenFileNames(parent, title, "", filters)[0]

    def save_path(self, parent: QWidget | None, title: str, default: str, filters: str) -> str | None:
        """A file to write, chosen by the user, or ``None``."""
        return QFileDialog.getSaveFileName(parent, title, default, filters)[0] or None

    def confirm(self, parent: QWidget | None, title: str, text: str) -> bool:
        """Yes / Cancel (Cancel is the default): whether to go ahead with a destructive step."""
        return QMessageBox.question(parent, title, text, _B.Yes | _B.Cancel, _B.Cancel) == _B.Yes

    def question(self, parent: QWidget | None, title: str, text: str, *, default_no: bool = False) -> bool:
        """Yes / No: the user's answer."""
        default = _B.No if default_no else _B.NoButton
        return QMessageBox.question(parent, title, text, _B.Yes | _B.No, default) == _B.Yes

    def inform(self, parent: QWidget | None, title: str, text: str) -> None:
        """A message the user acknowledges."""
        QMessageBox.information(parent, title, text)

    def color(self, parent: QWidget | None, title: str, initial: tuple[int, int, int]) -> tuple[int, int, int] | None:
        """A colour chosen by the user as ``(r, g, b)``, or ``None``."""
        color = QColorDialog.getColor(QColor(*initial), parent, title)
        return (color.red(), color.green(), color.blue()) if color.isValid() else None

    def text(self, parent: QWidget | None, title: str, label: str, default: str = "") -> str | None:
        """A line of text typed by the user, or ``None`` when cancelled."""
        value, ok = QInputDialog.getText(parent, title, label, text=default)
        return value if ok else None
