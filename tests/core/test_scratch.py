"""gusa_core.scratch: per-thread work arrays."""

from __future__ import annotations

import threading

import numpy as np

from gusa_core.scratch import work_array


def test_same_array_per_name_shape_and_dtype_fresh_above_the_bound():
    a = work_array("t-a", (4, 5, 3))
    assert work_array("t-a", (4, 5, 3)) is a and a.dtype == np.float32
    assert work_array("t-b", (4, 5, 3)) is not a  # another name
    assert work_array("t-a", (4, 5, 3), np.uint8) is not a  # another dtype
    big = work_array("t-big", (64, 64), np.uint8, keep_max_bytes=1024)
    assert big.shape == (64, 64) and work_array("t-big", (64, 64), np.uint8, keep_max_bytes=1024) is not big


def test_threads_never_share_an_array():
    seen = {}

    def grab(k):
        seen[k] = work_array("t-thread", (8, 8))

    threads = [threading.Thread(target=grab, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = {id(v) for v in seen.values()}
    assert len(ids) == 3 and not any(np.shares_memory(seen[0], seen[k]) for k in (1, 2))


def test_only_the_newest_few_are_kept():
    first = work_array("t-evict-0", (2, 2))
    for k in range(1, 9):
        work_array(f"t-evict-{k}", (2, 2))
    assert work_array("t-evict-0", (2, 2)) is not first
