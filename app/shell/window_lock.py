"""One writer per project in the app: the write lock, read-only mode and "take over" (a mixin of the main window).

A window opens a project with the folder's write lock (``gusa_core.project.lock``).
When another window or program holds it, the project opens read-only: a bar
names the holder and offers *Take over*; every write path (labels, masks,
notes, classes, images, autosave) is refused with a status message. The lock's
heartbeat is renewed every minute; a window whose lock was taken over turns
read-only at once (its next save, or heartbeat, finds out).
"""

from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QLabel, QToolBar

from app.base import errors

__all__ = ["WindowLockMixin", "HEARTBEAT_MS"]

HEARTBEAT_MS = 60_000  # the core counts a lock stale after 10 minutes without one


class WindowLockMixin:
    """Read-only bar, lock heartbeat and take-over (see :class:`~app.shell.main_window.MainWindow`)."""

    def _build_lock_bar(self) -> None:
        bar = QToolBar("Read-only", self)
        bar.setObjectName("read_only_bar")
        bar.setMovable(False)
        self.read_only_label = QLabel()
        self.read_only_label.setObjectName("read_only_label")
        self.read_only_label.setStyleSheet("QLabel { padding: 4px; font-weight: bold; }")
        bar.addWidget(self.read_only_label)
        self.take_over_action = bar.addAction("Take over", self.take_over)
        self.take_over_action.setObjectName("action_take_over")
        self.take_over_action.setToolTip("Edit here; the window or program that holds the project stops writing")
        self.addToolBar(bar)
        bar.hide()
        self.read_only_bar = bar
        self._lock_timer = QTimer(self)
        self._lock_timer.setInterval(HEARTBEAT_MS)
        self._lock_timer.timeout.connect(self._on_lock_timer_timeout)
        self.canvas.edit_refused.connect(self._on_canvas_edit_refused)

    # ------------------------------------------------------------ state
    def is_read_only(self) -> bool:
        """Whether the open project refuses changes."""
        return self.project is not None and bool(getattr(self.project, "read_only", False))

    def _holder_text(self) -> str:
        holder = self.project.lock_holder() if self.project is not None and hasattr(self.project, "lock_holder") else None
        return holder.describe() if holder is not None else "another window or program"

    def _show_lock_state(self, reason: str | None = None) -> None:
        """Show or hide the read-only bar and make the workspace follow the project's mode."""
        ro = self.is_read_only()
        if ro:
            self.read_only_label.setText(reason or f"Read-only: {self._holder_text()} is editing this project.")
        self.read_only_bar.setVisible(ro)
        self.canvas.set_read_only(ro)
        self.side_panel.notes_edit.setReadOnly(ro)
        locked = self.project is not None and getattr(self.project, "locked", False)
        if locked:
            self._lock_timer.start()
        else:
            self._lock_timer.stop()
        self._update_title()
        self._update_enabled()

    def refuse_if_read_only(self) -> bool:
        """True (and a status message) when the open project is read-only: the caller must not write."""
        if not self.is_read_only():
            return False
        self.show_status(f"Read-only: {self._holder_text()} is editing this project. Use Take over to edit here.", 6000)
        return True

    # ------------------------------------------------------------ lock
    def _on_lock_timer_timeout(self) -> None:
        self.check_lock()

    def check_lock(self) -> bool:
        """Renew the lock's heartbeat; if it was taken over, turn read-only. Returns whether we still write."""
        from gusa_core.errors import GusaError

        if self.project is None or not getattr(self.project, "locked", False):
            return not self.is_read_only()
        try:
            self.project.refresh_lock()
        except GusaError:
            self._lost_lock()
            return False
        return True

    def _lost_lock(self) -> None:
        self._notes_pending = None
        self._show_lock_state(
            f"Read-only: {self._holder_text()} took this project over. Edits made here since the last save were not written."
        )
        self.show_status("This window is read-only now", 6000)

    def _on_canvas_edit_refused(self) -> None:
        self.refuse_if_read_only()

    def take_over(self, *, confirm: bool = True) -> bool:
        """Take the project's lock from whoever holds it and edit here (the project is re-read from disk)."""
        from gusa_core.errors import GusaError
        from gusa_core.project import Project

        if self.project is None:
            return False
        holder = self._holder_text()
        if confirm and not self.dialogs.confirm(
            self, "Take over",
            f"{holder} is editing this project. Take it over? That window stops saving; its edits not yet saved are lost.",
        ):  # fmt: skip
            return False
        folder = self.project.folder
        try:
            project = Project.open(folder, lock=self.lock_purpose(), take_over=True)
        except GusaError as exc:
            errors.show_error(self, "Cannot take over the project", errors.describe(exc))
            return False
        self.set_project(project)
        self.show_status(f"You are editing {folder.name}; {holder} is read-only now", 5000)
        return True

    @staticmethod
    def lock_purpose() -> str:
        return "GuSA Studio"
