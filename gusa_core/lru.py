"""A least-recently-used map bounded in bytes (slide tiles, the app's predictions)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

__all__ = ["ByteLRU"]


class ByteLRU:
    """A least-recently-used map bounded by the total size of its values in bytes.

    Safe to use from several threads. A value's size is ``value.nbytes`` where it has one, or the
    ``nbytes`` passed to :meth:`put`.

    Parameters
    ----------
    max_bytes : int
        Bound of the sizes held; the least recently used entries are dropped first. An entry
        larger than the bound is not kept, unless ``keep_last``.
    keep_last : bool
        Always keep the entry stored last, even beyond the bound (a cache whose
        caller needs the value it just put).
    """

    def __init__(self, max_bytes: int, *, keep_last: bool = False):
        self.max_bytes = int(max_bytes)
        self.keep_last = bool(keep_last)
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items

    @property
    def nbytes(self) -> int:
        """Total size of the entries held."""
        return self._bytes

    def get(self, key: Hashable, default: Any = None) -> Any:
        """The value under ``key`` (marking it recently used), or ``default``."""
        with self._lock:
            item = self._items.get(key)
            if item is None:
                self.misses += 1
                return default
            self._items.move_to_end(key)
            self.hits += 1
            return item[0]

    def peek(self, key: Hashable, default: Any = None) -> Any:
        """The value under ``key`` without marking it used or counting a hit."""
        with self._lock:
            item = self._items.get(key)
            return default if item is None else item[0]

    def put(self, key: Hashable, value: Any, nbytes: int | None = None) -> None:
        """Store ``value`` under ``key``, then drop least recently used entries until under the bound."""
        size = int(nbytes if nbytes is not None else getattr(value, "nbytes", 0))
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            if size > self.max_bytes and not self.keep_last:
                return
            self._items[key] = (value, size)
            self._bytes += size
            while self._bytes > self.max_bytes and len(self._items) > (1 if self.keep_last else 0):
                _, (_, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped

    def discard(self, key: Hashable) -> None:
        """Forget ``key`` if held."""
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def keys(self) -> list:
        """The keys, least recently used first."""
        with self._lock:
            return list(self._items)
