"""How errors reach the user: a message naming the file, never a traceback.

``show_error`` is the single path to a modal message (tests replace it through
``set_error_sink`` to capture messages instead of blocking);
``install_excepthook`` turns unexpected exceptions into a dialog whose details
(the traceback) are collapsed.
"""

from __future__ import annotations

import sys
import traceback
from typing import Callable

from PySide6.QtWidgets import QMessageBox, QWidget

__all__ = ["describe", "show_error", "show_warning", "set_error_sink", "install_excepthook", "messages"]

#: Every message shown this session (title, text): for the status bar and tests.
messages: list[tuple[str, str]] = []

_sink: Callable[[QWidget | None, str, str, str], None] | None = None


def describe(exc: BaseException) -> str:
    """A one-line, user-facing description of ``exc`` (names the file for core errors)."""
    text = str(exc).strip()
    if not text:
        text = type(exc).__name__
    if text and text[0].islower():
        text = text[0].upper() + text[1:]
    return text


def set_error_sink(sink: Callable[[QWidget | None, str, str, str], None] | None) -> None:
    """Route messages to ``sink(parent, title, text, details)`` instead of a dialog (tests)."""
    global _sink
    _sink = sink


def _box(parent, icon, title: str, text: str, details: str) -> None:
    messages.append((title, text))
    if _sink is not None:
        _sink(parent, title, text, details)
        return
    box = QMessageBox(icon, title, text, QMessageBox.StandardButton.Ok, parent)
    if details:
        box.setDetailedText(details)  # collapsed behind "Show Details..."
    box.exec()


def show_error(parent: QWidget | None, title: str, text: str, details: str = "") -> None:
    """Show an error message (modal); ``details`` stays collapsed."""
    _box(parent, QMessageBox.Icon.Critical, title, text, details)


def show_warning(parent: QWidget | None, title: str, text: str, details: str = "") -> None:
    """Show a warning message (modal)."""
    _box(parent, QMessageBox.Icon.Warning, title, text, details)


def install_excepthook() -> None:
    """Show unexpected exceptions in a dialog (details collapsed) instead of dying silently."""
    previous = sys.excepthook

    def hook(exc_type, exc, tb):
        if issubclass(exc_type, KeyboardInterrupt):
            previous(exc_type, exc, tb)
            return
        details = "".join(traceback.format_exception(exc_type, exc, tb))
        sys.stderr.write(details)
        try:
            show_error(None, "Unexpected error", f"Something went wrong ({exc_type.__name__}): {exc}\n\n"
                       "Your annotations are saved automatically. Details below help a developer.", details)
        except Exception:  # never recurse from the hook
            previous(exc_type, exc, tb)

    sys.excepthook = hook
