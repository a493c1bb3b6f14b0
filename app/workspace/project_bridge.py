"""The project's psygnal events as Qt signals, delivered in the GUI thread.

The core fires events in whatever thread changed the project: ``mask_changed``
and ``saved`` come from the autosave thread. A widget must never run there, so
every widget that follows the project listens to a :class:`ProjectBridge`,
whose Qt signals are queued to the thread the bridge lives in (the GUI's).
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

__all__ = ["ProjectBridge"]


class ProjectBridge(QObject):
    """Re-emits the project's psygnal events as Qt signals.

    The core may fire events on the autosave thread; Qt queues these signals to
    the GUI thread, so widgets are only ever touched there.
    """

    label_changed = Signal(str)
    mask_changed = Signal(str)
    image_added = Signal(str)
    image_removed = Signal(str)
    classes_changed = Signal()
    saved = Signal()

    def __init__(self, project, parent=None):
        super().__init__(parent)
        self.project = project
        ev = project.events
        self._links = [
            (ev.label_changed, self._on_label_changed),
            (ev.suggested_changed, self._on_label_changed),  # the class column shows suggestions too
            (ev.mask_changed, self._on_mask_changed),
            (ev.image_added, self._on_image_added),
            (ev.image_removed, self._on_image_removed),
            (ev.classes_changed, self._on_classes_changed),
            (ev.saved, self._on_saved),
        ]
        for sig, slot in self._links:
            sig.connect(slot)
        # A bridge deleted with its widget must leave the project too: psygnal would otherwise
        # call into a deleted Qt object and abort the emit for every other listener.
        links = self._links
        self.destroyed.connect(lambda *_: _disconnect(links))

    def disconnect_project(self) -> None:
        _disconnect(self._links)

    def _on_label_changed(self, image_id, label=None) -> None:
        self.label_changed.emit(str(image_id))

    def _on_mask_changed(self, image_id) -> None:
        self.mask_changed.emit(str(image_id))

    def _on_image_added(self, record) -> None:
        self.image_added.emit(str(record.id))

    def _on_image_removed(self, image_id) -> None:
        self.image_removed.emit(str(image_id))

    def _on_classes_changed(self, *args) -> None:
        self.classes_changed.emit()

    def _on_saved(self, *args) -> None:
        self.saved.emit()


def _disconnect(links) -> None:
    for sig, slot in links:
        try:
            sig.disconnect(slot)
        except Exception:  # noqa: BLE001 - already disconnected
            pass
