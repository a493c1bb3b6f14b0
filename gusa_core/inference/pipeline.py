"""Classifying many files: expanding inputs into image paths, and a prefetching generator of records.

:func:`classify_paths` classifies a list of files as a generator of records,
one per image in order. Two things keep the cores on the network: decoding
runs ahead in a background thread, reading no more of each file than the
network input needs (:meth:`Predictor.prepare_path`: a BACH TIFF costs about
6 ms of one core, the network 70-150 ms), and the next batch is queued on the
engine before the current one is collected
(:meth:`Predictor.submit_prepared`), so no core waits between two batches
while the records are made.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..errors import GusaError
from ..imageio import list_images, read_image
from .ahead import OneAhead
from .predictor import Predictor

__all__ = ["collect_images", "classify_paths"]


def collect_images(inputs: Iterable, *, recursive: bool = False) -> list[Path]:
    """Expand files and folders into the list of images to classify.

    Parameters
    ----------
    inputs : iterable of path-like
        Image files (kept whatever their suffix: an unreadable one becomes an
        error record later) and folders (their images, sorted).
    recursive : bool
        Descend into sub-folders.

    Raises
    ------
    GusaError
        Naming the first input that does not exist.
    """
    out: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            out.extend(list_images(path, recursive=recursive))
        elif path.exists():
            out.append(path)
        else:
            raise GusaError(f"no such file or folder: {path}")
    return out


def _load(predictor: Predictor, path: Path, keep_image: bool):
    try:
        if not keep_image:  # only the network input is needed: decode no more than it takes
            return None, predictor.prepare_path(path), None
        image = read_image(path)
        return image, predictor.prepare(image), None
    except Exception as exc:  # every failure becomes that file's error record
        return None, None, exc


def classify_paths(
    predictor: Predictor,
    paths: Sequence,
    *,
    batch_size: int = 4,
    stop: threading.Event | None = None,
    keep_images: bool = False,
    prefetch: int | None = None,
) -> Iterator[dict]:
    """Classify files one batch at a time, as a generator of records.

    Decoding and resizing run ahead in a background thread (a bounded queue
    of ``prefetch`` images) so they overlap the network; each file is decoded
    once, and only as far as the network input needs unless ``keep_images``.
    While the records of one batch are made, the next batch already runs. A
    file that cannot be read yields a record with ``error`` set and the run
    goes on.

    Parameters
    ----------
    predictor : Predictor
    paths : sequence of path-like
    batch_size : int
        Images per forward pass. ``stop`` is checked after every record; the
        batch already queued behind the current one is finished (not
        reported) before the generator returns, so a stop request waits for
        at most two batches: keep them small (1-4) where that matters (an
        interactive application).
    stop : threading.Event, optional
        When set, no further record is yielded and no further batch starts.
    keep_images : bool
        Add the decoded image (``"image"``) to each record, e.g. to draw an
        overlay without decoding twice.
    prefetch : int, optional
        Images decoded ahead; default ``2 * batch_size``.

    Yields
    ------
    dict
        ``index``, ``total``, ``path`` (str), ``predicted`` (class name or
        None), ``probs`` ({class: p} or None), ``roi_fraction`` (or None),
        ``error`` (str or None), ``prediction`` (:class:`Prediction` or
        None), ``images_per_s`` (running: images done / seconds since the
        start) and ``image`` when ``keep_images``.
    """
    paths = [Path(p) for p in paths]
    total = len(paths)
    batch_size = max(1, int(batch_size))
    ahead = max(batch_size, int(prefetch) if prefetch else 2 * batch_size)
    start = time.perf_counter()
    done = 0
    pending: deque = deque()
    next_i = 0
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gusa-decode")

    def batches():
        """Decoded batches, the decoder kept ``ahead`` images in front of the network."""
        nonlocal next_i
        while True:
            while next_i < total and len(pending) < ahead:
                pending.append((next_i, pool.submit(_load, predictor, paths[next_i], keep_images)))
                next_i += 1
            if not pending:
                return
            batch = [pending.popleft() for _ in range(min(batch_size, len(pending)))]
            loaded = [(i, *fut.result()) for i, fut in batch]
            good = [item for item in loaded if item[3] is None]
            yield (loaded, good), [item[2] for item in good]

    def submit(payload, prepared):
        return predictor.submit_prepared(prepared, paths=[str(paths[item[0]]) for item in payload[1]])

    ahead_iter = OneAhead(batches(), submit, None if stop is None else stop.is_set)
    try:
        with contextlib.closing(iter(ahead_iter)) as results:
            for (loaded, good), preds in results:
                by_index = {item[0]: p for item, p in zip(good, preds)}
                for i, image, _prep, exc in loaded:
                    done += 1
                    pred = by_index.get(i)
                    rec = {
                        "index": i,
                        "total": total,
                        "path": str(paths[i]),
                        "predicted": pred.label if pred else None,
                        "probs": pred.probs_dict() if pred else None,
                        "roi_fraction": pred.roi_fraction if pred else None,
                        "error": None if exc is None else str(exc),
                        "prediction": pred,
                        "images_per_s": done / max(time.perf_counter() - start, 1e-9),
                    }
                    if keep_images:
                        rec["image"] = image
                    yield rec
                    if stop is not None and stop.is_set():
                        return
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
