"""``gusa-studio --self-test`` from the source tree (the frozen bundle: tests/test_bundle.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STEPS = (
    "write a demo project",
    "start Qt",
    "open it in the main window",
    "import torch",
    "Help ▸ About lists the versions",
    "build a tiny model and save it as a run",
    "classify a demo image",
)


def _env() -> dict:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", OMP_NUM_THREADS="2", PYTHONIOENCODING="utf-8")
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    return env


def test_self_test_passes_from_the_command_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "app.main", "--self-test"], cwd=ROOT, env=_env(), capture_output=True,
        text=True, encoding="utf-8", timeout=300,
    )
    out = proc.stdout
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out}\n{proc.stderr}"
    for step in STEPS:
        assert f"✓ {step}" in out, f"step {step!r} not reported:\n{out}"
    assert "self-test passed" in out
    assert "roi map 96x72" in out  # the attention map has the demo image's size
    # the temporary project is removed
    folders = [line.split(" in ", 1)[1].strip() for line in out.splitlines() if line.startswith("✓ write a demo project")]
    assert folders and not Path(folders[0]).exists()


def test_self_test_reports_a_failing_step_and_exits_1(monkeypatch, capsys):
    import gusa_core.demo

    from app.shell.self_test import run_self_test

    def broken(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(gusa_core.demo, "write_demo_project", broken)
    assert run_self_test() == 1
    out = capsys.readouterr().out
    assert "✗ write a demo project: OSError: disk full (simulated)" in out
    assert "self-test FAILED" in out


def test_self_test_writes_a_log_where_there_is_no_stdout(monkeypatch, tmp_path):
    """A windowed executable (Windows, console=False) has sys.stdout None: the report goes to a log file."""
    import tempfile

    import gusa_core.demo

    from app.shell.self_test import run_self_test

    def broken(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(gusa_core.demo, "write_demo_project", broken)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(sys, "stdout", None)
    assert run_self_test() == 1
    log = (tmp_path / "gusa-studio-self-test.log").read_text(encoding="utf-8")
    assert "✗ write a demo project: OSError: disk full (simulated)" in log
    assert "self-test FAILED" in log
