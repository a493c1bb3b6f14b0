"""One batch queued ahead: the engine starts the next batch before the current one is collected.

Both :func:`~gusa_core.inference.pipeline.classify_paths` (a folder of
images) and :func:`~gusa_core.inference.slide.iter_predict_slide` (the fields
of a slide) feed the predictor this way, so that no core waits while the
records of a batch are made or blended into the heatmaps.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Generic, TypeVar

__all__ = ["OneAhead"]

T = TypeVar("T")


class OneAhead(Generic[T]):
    """Iterate over ``(payload, predictions)`` of each batch, the next batch already on the engine.

    Parameters
    ----------
    batches : iterator of (payload, inputs)
        Pulled one at a time, just before its batch is queued: whatever the
        caller does to make a batch (waiting for decoded images, reading
        more ahead) happens there. ``payload`` comes back with the batch's
        predictions.
    submit : callable
        ``submit(payload, inputs)`` queues a batch on the engine and returns
        a callable that waits for its predictions
        (:meth:`~gusa_core.inference.Predictor.submit_prepared`).
    should_stop : callable, optional
        Asked before every batch is pulled, so before the last batch is
        collected too; once it answers true no batch starts and no further
        batch is yielded, and :attr:`stopped` is set.

    Notes
    -----
    Whenever the iteration ends (exhausted, stopped, or the consumer stops
    early or raises), a batch still on the engine is waited for and
    discarded, so its requests are free before anyone reuses them.
    """

    def __init__(self, batches: Iterator[tuple[T, Sequence]], submit: Callable[[T, Sequence], Callable[[], list]],
                 should_stop: Callable[[], bool] | None = None):
        self._batches = batches
        self._submit = submit
        self._should_stop = should_stop
        #: Whether the iteration ended because ``should_stop`` answered true.
        self.stopped = False

    def __iter__(self) -> Iterator[tuple[T, list]]:
        in_flight = None  # (payload, wait) of the batch the engine runs while the next is queued behind it
        try:
            while True:
                if self._should_stop is not None and self._should_stop():
                    self.stopped = True
                    return
                nxt = next(self._batches, None)
                queued = None if nxt is None else (nxt[0], self._submit(*nxt))
                if in_flight is None and queued is None:
                    return
                current, in_flight = in_flight, queued
                if current is not None:
                    payload, wait = current
                    yield payload, wait()
        finally:
            if in_flight is not None:
                with contextlib.suppress(Exception):
                    in_flight[1]()
