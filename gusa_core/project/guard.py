"""What keeps a project's files safe: containment, one writer, read-only mode, stale temp files.

* Every path the project writes or deletes (masks, cache, runs) is resolved
  and must lie inside the project folder; a manifest naming a mask outside it
  is refused when it is opened. Image *sources* may lie anywhere: they are
  only ever read.
* A project opened with a lock (see :mod:`.lock`) is the only writer; one
  opened ``read_only`` refuses every change; one opened without either (a
  script) refuses to write while another live writer holds the lock.
* Temporary files of a save that was killed are removed when the project is
  opened by a writer.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ..atomic import is_temp_name
from ..errors import ProjectError, ReadOnlyProjectError
from .lock import LockHolder, ProjectLock
from .manifest import check_not_newer

__all__ = ["GuardMixin", "inside", "check_mask_ref"]

_TEMP_DIRS = ("", "masks", "images")  # where the project itself saves files atomically
_UNLOCKED_TEMP_AGE = 60.0  # without the lock, only temp files this old are stale


def inside(folder: Path, path: str | os.PathLike, what: str) -> Path:
    """``path`` resolved (symbolic links followed), checked to lie inside ``folder``.

    Raises
    ------
    ProjectError
        It lies outside (the message names ``what`` and the path).
    """
    root = Path(folder).resolve()
    target = Path(path)
    resolved = (target if target.is_absolute() else root / target).resolve()
    if resolved != root and root not in resolved.parents:
        raise ProjectError(path, f"{what} lies outside the project folder {root}: refused")
    return resolved


def check_mask_ref(folder: Path, image_id: str, ref: str) -> None:
    """Raise ValueError unless a manifest's mask path ``ref`` is relative and stays inside ``folder``."""
    p = Path(ref)
    if p.is_absolute() or p.drive or p.root or "\\" in ref:
        raise ValueError(f"image {image_id!r}: mask path {ref!r} must be relative to the project folder")
    try:
        inside(folder, p, "mask")
    except ProjectError:
        raise ValueError(f"image {image_id!r}: mask path {ref!r} lies outside the project folder") from None


class GuardMixin:
    """Write access of :class:`~gusa_core.project.Project` (which owns ``folder`` and ``manifest_path``)."""

    read_only: bool = False
    _write_lock: ProjectLock | None = None

    def _inside(self, path: str | os.PathLike, what: str) -> Path:
        return inside(self.folder, path, what)

    # ------------------------------------------------------------ access
    @property
    def locked(self) -> bool:
        """Whether this project holds the folder's write lock."""
        return self._write_lock is not None

    def lock_holder(self) -> LockHolder | None:
        """Who holds the folder's write lock (possibly this project), or None."""
        return ProjectLock(self.folder).holder()

    def _read_only_error(self) -> ReadOnlyProjectError:
        holder = ProjectLock(self.folder).other_holder()
        who = f": {holder.describe()} is editing it" if holder is not None else ""
        return ReadOnlyProjectError(self.folder, f"the project is open read-only{who}; nothing was changed")

    def _check_editable(self) -> None:
        """Refuse an in-memory change of a read-only project."""
        if self.read_only:
            raise self._read_only_error()

    def _check_disk_write(self) -> None:
        """Refuse to write: read-only, lock taken over, another live writer, or a newer manifest."""
        if self.read_only:
            raise self._read_only_error()
        if self._write_lock is not None:
            self._write_lock.check()
        else:
            holder = ProjectLock(self.folder).other_holder()
            if holder is not None:
                raise ProjectLock(self.folder)._refused(holder)
        check_not_newer(self.manifest_path)

    def refresh_lock(self) -> None:
        """Renew the lock's heartbeat (the app calls it every minute).

        Raises
        ------
        ProjectLockedError
            The lock was taken over: the project switches to read-only.
        """
        if self._write_lock is None:
            return
        try:
            self._write_lock.refresh()
        except ProjectError:
            self._write_lock = None
            self.read_only = True
            raise

    def close(self) -> None:
        """Release the write lock (if held). The project stays readable."""
        if self._write_lock is not None:
            self._write_lock.release()
            self._write_lock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _take_lock(self, purpose: str, *, force: bool = False) -> None:
        self._write_lock = ProjectLock(self.folder, purpose=purpose).acquire(force=force)

    # ------------------------------------------------------------ cleaning
    def _clean_temp_files(self) -> list[Path]:
        """Remove temporary files a killed save left (only `atomic_write`'s pattern, only here)."""
        if self.read_only:
            return []
        if self._write_lock is None and ProjectLock(self.folder).other_holder() is not None:
            return []  # the live writer may be saving right now
        min_age = 0.0 if self._write_lock is not None else _UNLOCKED_TEMP_AGE
        removed = []
        for sub in _TEMP_DIRS:
            folder = self.folder / sub
            try:
                if folder.is_symlink() or not folder.is_dir():
                    continue
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for entry in entries:
                try:
                    if not is_temp_name(entry.name) or not entry.is_file(follow_symlinks=False):
                        continue
                    if time.time() - entry.stat(follow_symlinks=False).st_mtime < min_age:
                        continue
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
                except OSError:
                    continue
        return removed
