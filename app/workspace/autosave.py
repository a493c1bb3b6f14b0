"""Background autosave: masks and the manifest are written off the GUI thread.

A stroke only *schedules* a save (a copy of the mask, ~1 ms); a dedicated
thread writes it atomically through the core. Saves are coalesced by key: ten
strokes in a second on one image write that image's mask once or twice, never
ten times in a queue. :meth:`AutosaveWorker.flush` blocks until everything
scheduled is on disk (used by ``closeEvent``: quitting never loses work).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable

import numpy as np
from PySide6.QtCore import QObject, Signal

from app.base.errors import describe
from app.base.workers import start_service_thread

__all__ = ["AutosaveWorker"]


class AutosaveWorker(QObject):
    """Writes scheduled saves on its own thread, newest version per key only.

    Signals
    -------
    saved(str)
        A key was written (``"mask:<id>"`` or ``"manifest"``); emitted from the worker
        thread, so receivers in the GUI thread get it queued.
    failed(str)
        A save failed; the text names the file.
    idle()
        Nothing is pending or being written any more.
    """

    saved = Signal(str)
    failed = Signal(str)
    idle = Signal()

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._cond = threading.Condition()
        self._pending: OrderedDict[str, Callable[[], None]] = OrderedDict()
        self._busy = False
        self._busy_key: str | None = None
        self._stop = False
        self.writes = 0  # how many saves really ran (coalescing makes it < scheduled)
        self._thread = start_service_thread(self._run, name="gusa-autosave")

    # ------------------------------------------------------------ scheduling
    def schedule(self, key: str, job: Callable[[], None]) -> None:
        """Run ``job`` soon on the worker thread, replacing a pending job of the same key."""
        with self._cond:
            self._pending.pop(key, None)
            self._pending[key] = job
            self._cond.notify_all()

    def save_mask(self, project, image_id: str, mask: np.ndarray) -> None:
        """Save ``mask`` (copied here) for ``image_id``, then the manifest if it changed.

        A read-only project is never scheduled (the window says why); the
        core refuses its writes anyway.
        """
        if getattr(project, "read_only", False):
            return
        snapshot = np.array(mask, dtype=np.uint8, copy=True)

        def job():
            project.save_mask(image_id, snapshot)
            if getattr(project, "dirty", True):
                project.save()

        self.schedule(f"mask:{image_id}", job)

    def save_manifest(self, project) -> None:
        """Save the project's manifest (never for a read-only project)."""
        if getattr(project, "read_only", False):
            return
        self.schedule("manifest", project.save)

    # --------------------------------------------------------------- state
    def has_pending(self) -> bool:
        """Whether anything is scheduled or being written."""
        with self._cond:
            return bool(self._pending) or self._busy

    def is_pending(self, key: str) -> bool:
        """Whether a save of ``key`` is scheduled or being written."""
        with self._cond:
            return key in self._pending or self._busy_key == key

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Block until every scheduled save is written; ``False`` on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._busy, timeout)

    def shutdown(self, timeout: float | None = 30.0) -> bool:
        """Flush, then stop the thread."""
        ok = self.flush(timeout)
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout=5)
        return ok

    # -------------------------------------------------------------- thread
    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending or self._stop)
                if not self._pending and self._stop:
                    return
                key, job = self._pending.popitem(last=False)
                self._busy = True
                self._busy_key = key
            try:
                job()
                self.writes += 1
                self._emit(self.saved, key)
            except Exception as exc:  # reported to the user; the thread goes on
                self._emit(self.failed, f"Autosave failed: {describe(exc)}")
            finally:
                with self._cond:
                    self._busy = False
                    self._busy_key = None
                    now_idle = not self._pending
                    self._cond.notify_all()
            if now_idle:
                self._emit(self.idle)

    @staticmethod
    def _emit(signal, *args) -> None:
        try:
            signal.emit(*args)
        except RuntimeError:  # the QObject is gone (application closing)
            pass
