"""Work arrays kept per thread, so a hot loop over images of one size allocates none per image.

A folder runs thousands of images of one size through the same thread: fresh
multi-megabyte numpy arrays per image cost more in page faults (the allocator
hands them back to the system on every free) than the colour conversions and
resizes that fill them. :func:`work_array` hands each thread the same array
for the same ``(name, shape, dtype)`` every time. The caller must not return
it, or keep it past its next call with that name.
"""

from __future__ import annotations

import threading

import numpy as np

__all__ = ["work_array", "KEEP_MAX_BYTES"]

#: Arrays larger than this are not kept (a full-size image or a slide field allocates its own).
KEEP_MAX_BYTES = 16 << 20
_KEEP_COUNT = 8  # arrays kept per thread; the oldest goes first
_LOCAL = threading.local()


def work_array(name: str, shape: tuple[int, ...], dtype=np.float32, *, keep_max_bytes: int = KEEP_MAX_BYTES) -> np.ndarray:
    """An uninitialised array for this thread, the same one on every call with these arguments.

    Parameters
    ----------
    name : str
        Which work array of the caller (two arrays of one shape need two names).
    shape : tuple of int
    dtype : numpy dtype
    keep_max_bytes : int
        Above this size a fresh array is returned and nothing is kept.

    Returns
    -------
    ndarray
    """
    shape = tuple(int(v) for v in shape)
    dtype = np.dtype(dtype)
    if int(np.prod(shape)) * dtype.itemsize > keep_max_bytes:
        return np.empty(shape, dtype=dtype)
    kept = getattr(_LOCAL, "kept", None)
    if kept is None:
        kept = _LOCAL.kept = {}
    key = (name, shape, dtype.str)
    arr = kept.get(key)
    if arr is None:
        if len(kept) >= _KEEP_COUNT:
            kept.pop(next(iter(kept)))
        arr = kept[key] = np.empty(shape, dtype=dtype)
    return arr
