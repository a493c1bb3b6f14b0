"""The real-tissue tests skip where the samples are absent, and fail instead under GUSA_REQUIRE_SHARED_DATA=1."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(tmp_path, **env):
    full = {k: v for k, v in os.environ.items() if k != "GUSA_REQUIRE_SHARED_DATA"}
    full.update(GUSA_SHARED_DATA=str(tmp_path / "absent"), **env)
    cmd = [sys.executable, "-m", "pytest", "tests/core/test_imageio.py", "-k", "read_real_bach_size_tif", "-q", "-rs", "-p", "no:cacheprovider"]
    return subprocess.run(cmd, cwd=ROOT, env=full, capture_output=True, text=True, timeout=300)


def test_missing_samples_skip_by_default(tmp_path):
    proc = _run(tmp_path)
    assert proc.returncode == 0 and "1 skipped" in proc.stdout, proc.stdout + proc.stderr
    assert str(tmp_path / "absent") in proc.stdout


def test_missing_samples_fail_when_required(tmp_path):
    proc = _run(tmp_path, GUSA_REQUIRE_SHARED_DATA="1")
    assert proc.returncode != 0 and "GUSA_REQUIRE_SHARED_DATA=1" in proc.stdout, proc.stdout + proc.stderr
