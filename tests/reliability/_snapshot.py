"""What lies outside a test's own temporary folder, before and after: it must not change.

``outside_snapshot`` is a fixture: it records (size, modification time) of
every file in the repository and in pytest's base temporary folder, except
the test's own ``tmp_path`` and caches that tools write (``__pycache__``,
``.pytest_cache``), and asserts after the test that nothing was added,
removed or modified. Tests import it with ``from _snapshot import outside_snapshot``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_SKIP_DIRS = {".git", "__pycache__", ".pytest_cache", ".hypothesis", ".venv", ".mypy_cache", ".ruff_cache"}


def snapshot(roots, exclude: Path) -> dict[str, tuple[int, int]]:
    """``{path: (size, mtime_ns)}`` of every file under ``roots``, ``exclude`` left out."""
    exclude = str(exclude.resolve())
    out: dict[str, tuple[int, int]] = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS and not os.path.join(dirpath, d).startswith(exclude)]
            for name in filenames:
                path = os.path.join(dirpath, name)
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                out[path] = (st.st_size, st.st_mtime_ns)
    return out


def _diff(before: dict, after: dict) -> list[str]:
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(p for p in set(before) & set(after) if before[p] != after[p])
    return [f"added {p}" for p in added] + [f"removed {p}" for p in removed] + [f"changed {p}" for p in changed]


@pytest.fixture
def outside_snapshot(tmp_path, tmp_path_factory):
    """Assert that the test changes no file outside its ``tmp_path``."""
    roots = [REPO, tmp_path_factory.getbasetemp()]
    before = snapshot(roots, tmp_path)
    yield tmp_path
    problems = _diff(before, snapshot(roots, tmp_path))
    assert not problems, "files outside the test's folder changed:\n" + "\n".join(problems[:20])
