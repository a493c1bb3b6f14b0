"""Guards against known PySide6 defects that would crash the application.

PySide6 6.12.0 on CPython < 3.12 releases a reference to ``None`` (and to
``True``/``False``) that it never took, on every call of a Qt method that
returns nothing (``QWidget.update()``, ``processEvents()``, ...). On 3.12+
those objects are immortal and nothing happens; on 3.11 the interpreter
aborts with "none_dealloc: deallocating None" after a few thousand calls,
i.e. within a minute of painting. ``pyproject.toml`` excludes that release;
:func:`guard_refcount_bug` keeps an installation that has it anyway alive.
"""

from __future__ import annotations

import ctypes
import sys

__all__ = ["has_refcount_bug", "guard_refcount_bug"]

_TOP_UP = 1 << 40  # ~1e12 references: years of leaked decrefs


def has_refcount_bug(calls: int = 200) -> bool:
    """Whether void Qt calls drop references to ``None`` in this installation."""
    if sys.version_info >= (3, 12):
        return False  # None, True and False are immortal
    from PySide6.QtCore import QCoreApplication, QSize

    size = QSize(1, 1)
    before = sys.getrefcount(None)
    for _ in range(calls):
        size.setWidth(1)  # a void method, no side effects, no application needed
    lost = before - sys.getrefcount(None)
    del QCoreApplication
    return lost >= calls // 2


def guard_refcount_bug() -> bool:
    """Make ``None``, ``True`` and ``False`` effectively immortal if PySide6 leaks their references.

    Returns whether the guard was needed (and applied).
    """
    if not has_refcount_bug():
        return False
    for obj in (None, True, False):
        # ob_refcnt is the first field of every object in CPython < 3.12
        ctypes.c_ssize_t.from_address(id(obj)).value += _TOP_UP
    return True
