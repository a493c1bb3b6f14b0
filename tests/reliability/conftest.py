"""Fixtures of the reliability tests: each case must leave everything outside its project unchanged."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest


def _tree(root: Path, skip: Path | None) -> dict[str, tuple]:
    """Every entry under ``root`` (``skip`` and what lies under it left out): kind, mode, size, mtime, content hash."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        if skip is not None and (here == skip or skip in here.parents):
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            p = here / name
            if skip is not None and p == skip:
                continue
            st = p.lstat()
            if p.is_symlink():
                out[str(p)] = ("link", os.readlink(p))
            elif p.is_dir():
                out[str(p)] = ("dir", st.st_mode)
            else:
                digest = hashlib.sha256(p.read_bytes()).hexdigest()
                out[str(p)] = ("file", st.st_mode, st.st_size, st.st_mtime_ns, digest)
    return out


@pytest.fixture
def outside_snapshot(tmp_path):
    """``snapshot(project_dir) -> check``: call ``check()`` to assert that nothing outside ``project_dir`` changed.

    The snapshot covers all of ``tmp_path`` except ``project_dir``; a sentinel
    tree ``tmp_path/outside/`` (files and a sub-folder) is created first, so that
    a write or delete escaping the project has something to hit. Put the
    project at least two levels below ``tmp_path`` (``tmp_path/case/project``)
    so that ``../..`` from its sub-folders still lands inside the snapshot.
    """

    def snapshot(project_dir: str | os.PathLike):
        project_dir = Path(project_dir)
        sentinel = tmp_path / "outside"
        (sentinel / "nested").mkdir(parents=True, exist_ok=True)
        for rel, data in (("victim.png", b"not yours"), ("pwned.png", b"keep"), ("nested/keep.txt", b"keep")):
            if not (sentinel / rel).exists():
                (sentinel / rel).write_bytes(data)
        before = _tree(tmp_path, project_dir)

        def check() -> None:
            after = _tree(tmp_path, project_dir)
            added = sorted(set(after) - set(before))
            removed = sorted(set(before) - set(after))
            changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
            assert not (added or removed or changed), f"outside the project: added {added}, removed {removed}, changed {changed}"

        return check

    return snapshot
