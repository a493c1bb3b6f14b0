"""Atomic file writes: a temporary file in the same folder, then ``os.replace``.

A crash or a full disk never leaves half a file where a whole one was.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Callable

def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "atomic_write_json", "is_temp_name"]

# The temporary files of `atomic_write`: ".<final name>.<8 random chars from mkstemp><suffix>.tmp".
_TEMP_NAME = re.compile(r"\..+\.[a-z0-9_]{8}(\.[A-Za-z0-9]{1,8})?\.tmp")


def is_temp_name(name: str) -> bool:
    """Whether ``name`` (a bare file name) is one of `atomic_write`'s temporary files.

    A save killed mid-write leaves one behind; only files of this exact
    pattern may be cleaned up as stale.
    """
    return _TEMP_NAME.fullmatch(name) is not None


def atomic_write(path: str | os.PathLike, writer: Callable[[str], None], *, suffix: str = "") -> Path:
    """Call ``writer(tmp_path)`` and move the result over ``path`` atomically.

    Parameters
    ----------
    path : path-like
        The final file. Its folder is created if missing.
    writer : callable
        Writes the whole content to the temporary path it is given.
    suffix : str
        Suffix of the temporary file (some writers choose the format by it).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix + ".tmp", dir=path.parent)
    os.close(fd)
    try:
        writer(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, _FILE_MODE)  # mkstemp makes 0600; the file is an ordinary document
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""

    def _write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    return atomic_write(path, _write)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, *, indent: int = 2) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")
