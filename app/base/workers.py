"""Background work for the GUI: the one place where threads are started.

Every thread of the app starts here: one-shot and generator jobs as a
:class:`Worker` (or :func:`run_in_thread`), the autosave loop with
:func:`start_service_thread`, thumbnail jobs on a :func:`job_pool`, and the
image prefetcher on an :func:`executor`.

A :class:`Worker` runs a Python callable, or a generator function, in a
``QThread`` and reports back through Qt signals. The signal-carrying object
stays in the GUI thread while the job runs elsewhere, so every slot connected
to it (bound methods *and* lambdas) is called in the GUI thread through a
queued connection.

A generator job is aborted between two ``yield`` s: :meth:`Worker.abort` sets
:attr:`Worker.abort_event` (a ``threading.Event`` that a long job can also
poll itself), runs the optional ``on_abort`` hooks (e.g. ``Trainer.request_stop``)
and the worker closes the generator before asking it for the next item.

Examples
--------
>>> worker = Worker(classify_paths, predictor, paths)         # doctest: +SKIP
>>> worker.yielded.connect(self._on_worker_yielded)           # doctest: +SKIP
>>> worker.start()                                            # doctest: +SKIP
>>> run_in_thread(predictor.predict_image, image, on_result=self._show)  # doctest: +SKIP
"""

from __future__ import annotations

import inspect
import threading
import traceback
from typing import Any, Callable

from PySide6.QtCore import QObject, QThread, QTimer, Signal

__all__ = ["Worker", "GeneratorWorker", "TaskPool", "run_in_thread", "active_workers", "wait_all", "error_message",
           "start_service_thread", "job_pool", "executor"]

#: Workers that are running; keeps the Python objects alive until they finish.
_ACTIVE: set["Worker"] = set()


def error_message(exc: BaseException) -> str:
    """A one-line message for the user, naming the problem (never a traceback).

    ``gusa_core`` errors already name the file and the reason; other errors
    are prefixed with their type so "KeyError: 'x'" stays meaningful.
    """
    try:
        from gusa_core.errors import GusaError
    except Exception:  # pragma: no cover - gusa_core is always importable here
        GusaError = ()  # type: ignore[assignment]
    text = str(exc).strip()
    if isinstance(exc, GusaError) and text:
        return text
    if isinstance(exc, MemoryError):
        return "out of memory: try a smaller batch size or input size"
    name = type(exc).__name__
    if "out of memory" in text.lower():
        return f"out of memory ({text.splitlines()[0]}): try a smaller batch size or input size"
    return f"{name}: {text.splitlines()[0]}" if text else name


class _JobThread(QThread):
    """Runs the worker's job; emits the worker's signals from this thread."""

    def __init__(self, worker: "Worker"):
        super().__init__()
        self._worker = worker

    def run(self) -> None:  # noqa: D102 - QThread API
        self._worker._execute()


class Worker(QObject):
    """Run ``func(*args, **kwargs)`` in a ``QThread``.

    If ``func`` returns a generator (or is a generator function), each item
    it yields is sent with :attr:`yielded`; the generator's return value is
    sent with :attr:`returned`. Otherwise the return value of ``func`` is
    sent with :attr:`returned`.

    Signals (all delivered in the GUI thread)
    -----------------------------------------
    started()
        The job has begun.
    yielded(object)
        One item of a generator job.
    returned(object)
        The job's result (``None`` for an aborted generator).
    errored(str, str)
        ``(message, details)``: a one-line message naming the problem and the
        full traceback, for a "details" box or the log.
    aborted()
        The job stopped early because :meth:`abort` was called.
    finished()
        Always last, whatever happened.

    Parameters
    ----------
    func : callable
        The job. It runs in another thread: it must not touch widgets.
    *args, **kwargs
        Passed to ``func``.
    on_abort : callable or sequence of callables, optional
        Called (in the GUI thread) by :meth:`abort`, e.g. ``trainer.request_stop``.
    """

    started = Signal()
    yielded = Signal(object)
    returned = Signal(object)
    errored = Signal(str, str)
    aborted = Signal()
    finished = Signal()

    def __init__(self, func: Callable[..., Any], *args: Any, on_abort=None, **kwargs: Any):
        super().__init__()
        self._func = func
        self._args = args
        self._kwargs = kwargs
        if on_abort is None:
            self._on_abort: list[Callable[[], Any]] = []
        elif callable(on_abort):
            self._on_abort = [on_abort]
        else:
            self._on_abort = list(on_abort)
        self.abort_event = threading.Event()
        self._thread: _JobThread | None = None
        self._running = False
        self._done = False
        # Runs in the GUI thread (queued) after everything else was delivered.
        self.finished.connect(self._on_self_finished)

    # -- control ---------------------------------------------------------
    def start(self) -> "Worker":
        """Start the job in a new thread; returns ``self`` for chaining."""
        if self._thread is not None:
            raise RuntimeError("a Worker can be started only once")
        self._thread = _JobThread(self)
        self._running = True
        _ACTIVE.add(self)
        self._thread.start()
        return self

    def abort(self) -> None:
        """Ask the job to stop: generators stop before their next item."""
        if self.abort_event.is_set():
            return
        self.abort_event.set()
        for hook in self._on_abort:
            hook()

    @property
    def is_running(self) -> bool:
        """True from :meth:`start` until :attr:`finished` has been delivered."""
        return self._running

    @property
    def abort_requested(self) -> bool:
        """True once :meth:`abort` has been called."""
        return self.abort_event.is_set()

    def wait(self, timeout_ms: int = -1) -> bool:
        """Block until the thread ends (for shutdown and tests); True if it ended."""
        if self._thread is None:
            return True
        if timeout_ms < 0:
            return self._thread.wait()
        return self._thread.wait(timeout_ms)

    # -- runs in the job thread --------------------------------------------
    def _execute(self) -> None:
        self.started.emit()
        try:
            if self.abort_event.is_set():
                self.aborted.emit()
                return
            result = self._func(*self._args, **self._kwargs)
            if inspect.isgenerator(result):
                result = self._drain(result)
                if result is _ABORTED:
                    self.aborted.emit()
                    return
            self.returned.emit(result)
        except BaseException as exc:  # noqa: BLE001 - reported to the GUI, never lost
            self.errored.emit(error_message(exc), traceback.format_exc())
        finally:
            self.finished.emit()

    def _drain(self, gen):
        while True:
            if self.abort_event.is_set():
                gen.close()
                return _ABORTED
            try:
                item = next(gen)
            except StopIteration as stop:
                return stop.value
            if self.abort_event.is_set():  # asked to stop while this item was made
                gen.close()
                return _ABORTED
            self.yielded.emit(item)

    # -- GUI thread ---------------------------------------------------------
    def _on_self_finished(self) -> None:
        if self._thread is not None:
            self._thread.wait()  # the thread is past its last emit: returns at once
        self._running = False
        self._done = True
        # Let the other slots queued on ``finished`` run before the last reference goes.
        QTimer.singleShot(0, lambda: _ACTIVE.discard(self))


_ABORTED = object()

#: superqt's name for the same idea.
GeneratorWorker = Worker


def run_in_thread(
    func: Callable[..., Any],
    *args: Any,
    on_result: Callable[[Any], Any] | None = None,
    on_error: Callable[[str, str], Any] | None = None,
    on_yield: Callable[[Any], Any] | None = None,
    on_finished: Callable[[], Any] | None = None,
    **kwargs: Any,
) -> Worker:
    """Run a one-shot job in a thread and call back in the GUI thread.

    The worker is kept alive until it has finished, so the caller may drop
    the returned object.

    Parameters
    ----------
    func : callable
        The job (runs in another thread).
    *args, **kwargs
        Passed to ``func``.
    on_result : callable, optional
        ``on_result(value)`` with the return value.
    on_error : callable, optional
        ``on_error(message, details)`` when ``func`` raised.
    on_yield : callable, optional
        ``on_yield(item)`` for each item of a generator job.
    on_finished : callable, optional
        ``on_finished()`` always, last.

    Returns
    -------
    Worker
        Already started.
    """
    worker = Worker(func, *args, **kwargs)
    if on_result is not None:
        worker.returned.connect(on_result)
    if on_error is not None:
        worker.errored.connect(on_error)
    if on_yield is not None:
        worker.yielded.connect(on_yield)
    if on_finished is not None:
        worker.finished.connect(on_finished)
    return worker.start()


def active_workers() -> list[Worker]:
    """The workers that have not finished yet."""
    return list(_ACTIVE)


def wait_all(timeout_ms: int = 30000, *, abort: bool = True) -> bool:
    """Abort (optionally) and wait for every running worker, e.g. at shutdown.

    Returns
    -------
    bool
        True if every thread ended within ``timeout_ms`` (each).
    """
    ok = True
    for worker in list(_ACTIVE):
        if abort:
            worker.abort()
        ok = worker.wait(timeout_ms) and ok
    return ok


class TaskPool(QObject):
    """A few long-lived threads serving keyed jobs, newest request first: the viewer's tile loader.

    :meth:`request` replaces the queue of jobs not yet started by a new list (what the view
    needs now, most important first), so a pan never waits behind tiles that went off screen.
    A key already queued or running is not queued twice.

    Signals (delivered in the GUI thread)
    -------------------------------------
    done(object, object)
        ``(key, result)`` of a finished job.
    failed(object, str)
        ``(key, message)`` of a job that raised.

    Parameters
    ----------
    threads : int
        Worker threads (decoding releases the GIL, so two already overlap well).
    """

    done = Signal(object, object)
    failed = Signal(object, str)

    def __init__(self, threads: int = 2, parent: QObject | None = None):
        super().__init__(parent)
        self._cond = threading.Condition()
        self._queue: list[tuple[Any, Callable[[], Any]]] = []
        self._running: set = set()
        self._stop = False
        self._threads = [threading.Thread(target=self._loop, name=f"gusa-pool-{i}", daemon=True) for i in range(max(1, threads))]
        for t in self._threads:
            t.start()

    def request(self, jobs: list[tuple[Any, Callable[[], Any]]]) -> None:
        """Queue ``[(key, func), ...]`` in this order, dropping every earlier job not yet started."""
        with self._cond:
            seen = set(self._running)
            self._queue = []
            for key, func in jobs:
                if key not in seen:
                    seen.add(key)
                    self._queue.append((key, func))
            self._cond.notify_all()

    def pending(self) -> int:
        """Jobs queued or running."""
        with self._cond:
            return len(self._queue) + len(self._running)

    def clear(self) -> None:
        """Drop the jobs not yet started."""
        with self._cond:
            self._queue = []

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Drop queued jobs and end the threads after their current job."""
        with self._cond:
            self._stop = True
            self._queue = []
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout_s)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                key, func = self._queue.pop(0)
                self._running.add(key)
            try:
                result = func()
            except Exception as exc:  # reported to the GUI, never lost in a thread
                message = error_message(exc)
                with self._cond:
                    self._running.discard(key)
                self._emit(self.failed, key, message)
                continue
            with self._cond:
                self._running.discard(key)
            self._emit(self.done, key, result)

    def _emit(self, signal, key, value) -> None:
        try:
            signal.emit(key, value)
        except RuntimeError:  # the pool's QObject was deleted while a job ran
            pass


# ------------------------------------------------------------- other threads
def start_service_thread(target: Callable[[], None], *, name: str) -> threading.Thread:
    """Start a long-lived daemon thread running ``target`` (a service loop, e.g. autosave).

    The loop owns its own stop condition; signals it emits reach GUI slots queued.
    """
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


def job_pool(parent: QObject, max_threads: int = 2):
    """A ``QThreadPool`` owned by ``parent`` for many small ``QRunnable`` jobs (e.g. thumbnails).

    Uses at most ``max_threads`` threads, and always leaves one core to the GUI.
    """
    from PySide6.QtCore import QThreadPool

    pool = QThreadPool(parent)
    pool.setMaxThreadCount(max(1, min(max_threads, QThreadPool.globalInstance().maxThreadCount() - 1)))
    return pool


def executor(name: str, max_workers: int = 1):
    """A ``concurrent.futures.ThreadPoolExecutor`` whose threads are named ``name-k`` (e.g. prefetching)."""
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=name)
