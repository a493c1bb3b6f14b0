"""One writer per project: the lock file ``gusa-project.lock``.

A writer (the app, ``gusa init``, ``gusa demo``) creates the lock file with
``O_CREAT | O_EXCL``, so that of two writers starting at once exactly one
wins; the file says who holds it (purpose, host, pid, start time) and when
the holder last showed it is alive (``heartbeat``, refreshed by the app every
minute). A lock is *stale*, and is broken by the next writer, when its holder
ran on this host and that process is gone, or when its heartbeat is older
than the timeout (a holder on another machine that crashed). A lock may also
be taken over on purpose (``force=True``): the previous holder notices it at
its next write and stops writing.

Reading a project needs no lock.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..atomic import atomic_write_text
from ..errors import ProjectLockedError

__all__ = ["LOCK_NAME", "HEARTBEAT_TIMEOUT", "LockHolder", "ProjectLock", "pid_alive"]

LOCK_NAME = "gusa-project.lock"
#: Seconds without a heartbeat after which a lock of another host counts as stale.
HEARTBEAT_TIMEOUT = 600.0
_CREATING_GRACE = 10.0  # an empty or half-written lock older than this is stale


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine."""
    if pid <= 0:
        return False
    if os.name == "nt":  # pragma: no cover - os.kill(pid, 0) would send Ctrl+C there
        import ctypes

        handle = ctypes.windll.kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        code = ctypes.c_ulong()
        ctypes.windll.kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        ctypes.windll.kernel32.CloseHandle(handle)
        return code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class LockHolder:
    """Who holds a lock, as written in its file."""

    purpose: str
    host: str
    pid: int
    since: str
    heartbeat: float
    token: str

    def describe(self) -> str:
        """``"GuSA Studio (host lab-pc, pid 4242, since 2026-11-30T12:00:00+00:00)"``."""
        return f"{self.purpose} (host {self.host}, pid {self.pid}, since {self.since})"

    def to_json(self) -> str:
        return json.dumps(
            {"purpose": self.purpose, "host": self.host, "pid": self.pid, "since": self.since,
             "heartbeat": self.heartbeat, "token": self.token}, indent=2) + "\n"  # fmt: skip

    @classmethod
    def from_json(cls, text: str) -> "LockHolder | None":
        try:
            d = json.loads(text)
            return cls(str(d["purpose"]), str(d["host"]), int(d["pid"]), str(d["since"]),
                       float(d["heartbeat"]), str(d["token"]))  # fmt: skip
        except (ValueError, TypeError, KeyError):
            return None


class ProjectLock:
    """The write lock of one project folder.

    Parameters
    ----------
    folder : path-like
        The project folder (the lock file is ``<folder>/gusa-project.lock``).
    purpose : str
        Shown to whoever is refused (``"GuSA Studio"``, ``"gusa init"``).
    timeout : float
        Heartbeat age in seconds after which a lock counts as stale.
    name : str
        The lock file's name (a run folder's lock is named by `gusa_core.runs`).
    """

    def __init__(
        self, folder: str | os.PathLike, *, purpose: str = "gusa", timeout: float = HEARTBEAT_TIMEOUT, name: str = LOCK_NAME
    ):
        self.folder = Path(os.path.abspath(folder))
        self.path = self.folder / name
        self.purpose = purpose
        self.timeout = float(timeout)
        self._mine: LockHolder | None = None

    # ------------------------------------------------------------ reading
    def _read(self) -> tuple[LockHolder | None, bool]:
        """``(holder, exists)`` of the lock file on disk."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None, False
        except OSError:
            return None, True
        return LockHolder.from_json(text), True

    def holder(self) -> LockHolder | None:
        """The current holder (ourselves included), or None when the project is free."""
        return self._read()[0]

    @property
    def owned(self) -> bool:
        """Whether this object holds the lock now (False once it was taken over)."""
        holder = self.holder()
        return self._mine is not None and holder is not None and holder.token == self._mine.token

    def is_stale(self, holder: LockHolder | None) -> bool:
        """Whether a lock held by ``holder`` (None: unreadable file) may be broken."""
        if holder is None:
            try:
                return time.time() - self.path.stat().st_mtime > _CREATING_GRACE
            except OSError:
                return True
        if holder.host == socket.gethostname() and not pid_alive(holder.pid):
            return True
        return time.time() - holder.heartbeat > self.timeout

    def other_holder(self) -> LockHolder | None:
        """A live holder other than this object, or None (free, stale, or ours)."""
        holder, exists = self._read()
        if not exists or (self._mine is not None and holder is not None and holder.token == self._mine.token):
            return None
        return None if self.is_stale(holder) else holder or _unknown_holder()

    # ------------------------------------------------------------ writing
    def _new_holder(self) -> LockHolder:
        return LockHolder(
            purpose=self.purpose, host=socket.gethostname(), pid=os.getpid(),
            since=datetime.now(timezone.utc).isoformat(timespec="seconds"), heartbeat=time.time(),
            token=secrets.token_hex(8),
        )  # fmt: skip

    def _refused(self, holder: LockHolder) -> ProjectLockedError:
        return ProjectLockedError(
            self.folder,
            f"another writer holds {self.folder}: {holder.describe()}. Close it there, "
            f"or open the project read-only; if that program is gone, delete {self.path}",
            holder,
        )

    def acquire(self, *, force: bool = False) -> "ProjectLock":
        """Take the lock (``force``: take it over from a live holder).

        Returns
        -------
        ProjectLock
            ``self``.

        Raises
        ------
        ProjectLockedError
            Another live writer holds it (the message names its host, pid and start time).
        """
        if self._mine is not None and self.owned:
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        mine = self._new_holder()
        if force:
            atomic_write_text(self.path, mine.to_json())
            self._mine = mine
            return self
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self.holder()
                if not self.is_stale(holder):
                    raise self._refused(holder or _unknown_holder()) from None
                self._break(holder)
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(mine.to_json())
                f.flush()
                os.fsync(f.fileno())
            self._mine = mine
            return self
        raise self._refused(self.holder() or _unknown_holder())

    def _break(self, stale: LockHolder | None) -> None:
        """Move a stale lock aside; put it back if another writer replaced it meanwhile."""
        aside = self.path.with_name(f"{self.path.name}.stale-{secrets.token_hex(4)}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        moved = LockHolder.from_json(aside.read_text(encoding="utf-8", errors="replace"))
        if moved != stale:  # a fresh lock was taken between our read and the rename: restore it
            try:
                os.link(aside, self.path)
            except OSError:
                pass
        aside.unlink(missing_ok=True)

    def refresh(self) -> None:
        """Renew the heartbeat.

        Raises
        ------
        ProjectLockedError
            The lock was taken over (or removed): this writer must stop writing.
        """
        self.check()
        self._mine = LockHolder(**{**self._mine.__dict__, "heartbeat": time.time()})
        atomic_write_text(self.path, self._mine.to_json())

    def check(self) -> None:
        """Raise `ProjectLockedError` unless this object still holds the lock."""
        holder = self.holder()
        if self._mine is None or holder is None or holder.token != self._mine.token:
            raise ProjectLockedError(
                self.folder,
                "this program no longer holds the project's lock"
                + (f": {holder.describe()} took it over" if holder is not None else " (the lock file was removed)")
                + "; nothing more is written from here",
                holder,
            )

    def release(self) -> None:
        """Give the lock up (only if this object still holds it)."""
        if self._mine is not None and self.owned:
            self.path.unlink(missing_ok=True)
        self._mine = None

    def __enter__(self) -> "ProjectLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _unknown_holder() -> LockHolder:
    return LockHolder("another program", "unknown host", 0, "unknown time", time.time(), "")
