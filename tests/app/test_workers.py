"""The worker threads of the app: results in the GUI thread, abort, errors."""

from __future__ import annotations

import threading

import pytest

from app.base.workers import Worker, active_workers, run_in_thread, wait_all


@pytest.fixture(autouse=True)
def _no_leftover_workers():
    yield
    assert wait_all(10000), "a worker thread did not end"


def test_results_arrive_in_the_gui_thread(qtbot):
    main = threading.current_thread()
    job_threads = []
    seen = []

    def job(n):
        job_threads.append(threading.current_thread())
        return n * 2

    worker = Worker(job, 21)
    worker.returned.connect(lambda value: seen.append((value, threading.current_thread())))
    with qtbot.waitSignal(worker.finished, timeout=10000):
        worker.start()
    assert job_threads and job_threads[0] is not main
    assert seen == [(42, main)]
    assert not worker.is_running


def test_generator_items_arrive_in_order_then_return_value(qtbot):
    def gen():
        for i in range(5):
            yield i
        return "done"

    worker = Worker(gen)
    items, returned, threads = [], [], set()

    def on_item(item):
        items.append(item)
        threads.add(threading.current_thread())

    worker.yielded.connect(on_item)
    worker.returned.connect(returned.append)
    with qtbot.waitSignal(worker.finished, timeout=10000):
        worker.start()
    assert items == [0, 1, 2, 3, 4]
    assert returned == ["done"]
    assert threads == {threading.current_thread()}


def test_abort_stops_a_generator_between_items(qtbot):
    inside = threading.Event()  # the generator is making item 1
    gate = threading.Event()
    produced = []
    closed = []

    def gen():
        try:
            for i in range(1000):
                if i == 1:
                    inside.set()
                    gate.wait(10)  # hold item 1 until the test has aborted
                produced.append(i)
                yield i
        finally:
            closed.append(True)

    worker = Worker(gen)
    received, aborted, returned = [], [], []
    worker.aborted.connect(lambda: aborted.append(True))
    worker.returned.connect(returned.append)

    def on_item(item):
        received.append(item)
        assert inside.wait(10)
        worker.abort()
        gate.set()

    worker.yielded.connect(on_item)
    with qtbot.waitSignal(worker.finished, timeout=10000):
        worker.start()
    # The abort came while the generator was making item 1: item 1 is
    # dropped and item 2 is never asked for.
    assert produced == [0, 1]
    assert received == [0]
    assert aborted == [True]
    assert returned == []
    assert closed == [True]  # the generator was closed (its finally ran)
    assert worker.abort_requested


def test_abort_hooks_and_event_reach_a_plain_callable(qtbot):
    stop = threading.Event()
    started = threading.Event()

    def job(event):
        started.set()
        assert event.wait(10)
        return "stopped politely"

    worker = Worker(job, stop, on_abort=stop.set)
    returned = []
    worker.returned.connect(returned.append)
    worker.start()
    assert started.wait(10)
    with qtbot.waitSignal(worker.finished, timeout=10000):
        worker.abort()
    assert returned == ["stopped politely"]
    assert worker.abort_event.is_set()


def test_exception_arrives_as_errored_with_the_message(qtbot):
    def job():
        raise ValueError("the batch size must be at least 1")

    worker = Worker(job)
    errors, returned = [], []
    worker.errored.connect(lambda message, details: errors.append((message, details, threading.current_thread())))
    worker.returned.connect(returned.append)
    with qtbot.waitSignal(worker.finished, timeout=10000):
        worker.start()
    assert len(errors) == 1
    message, details, thread = errors[0]
    assert message == "ValueError: the batch size must be at least 1"
    assert "Traceback" in details and "job" in details
    assert thread is threading.current_thread()
    assert returned == []


def test_gusa_error_message_is_shown_as_is(qtbot):
    from gusa_core.errors import ImageReadError

    def gen():
        yield 1
        raise ImageReadError("/data/broken.tif", "truncated file")

    errors = []
    worker = Worker(gen)
    worker.errored.connect(lambda message, details: errors.append(message))
    with qtbot.waitSignal(worker.finished, timeout=10000):
        worker.start()
    assert errors == ["cannot read image /data/broken.tif: truncated file"]


def test_run_in_thread_keeps_the_worker_alive_and_calls_back(qtbot):
    results, errors, finished = [], [], []
    run_in_thread(sum, [1, 2, 3], on_result=results.append, on_error=lambda m, d: errors.append(m),
                  on_finished=lambda: finished.append(True))
    # the caller dropped its reference: the worker must still deliver
    qtbot.waitUntil(lambda: finished == [True], timeout=10000)
    assert results == [6]
    assert errors == []
    run_in_thread(int, "not a number", on_result=results.append, on_error=lambda m, d: errors.append(m),
                  on_finished=lambda: finished.append(True))
    qtbot.waitUntil(lambda: len(finished) == 2, timeout=10000)
    assert results == [6]
    assert len(errors) == 1 and errors[0].startswith("ValueError: invalid literal")
    qtbot.waitUntil(lambda: not active_workers(), timeout=10000)


def test_a_worker_starts_only_once(qtbot):
    worker = Worker(lambda: None)
    with qtbot.waitSignal(worker.finished, timeout=10000):
        worker.start()
    with pytest.raises(RuntimeError):
        worker.start()
