"""The frozen bundle (PyInstaller, build.spec) runs without Python: slow, run with --run-slow.

Builds ``dist/GuSA-Studio`` with ``scripts/build_bundle.sh`` when it is
missing (10-30 minutes with the CUDA build of torch), then runs the frozen
``gusa-studio --self-test`` and ``gusa info --json`` from a folder outside
the source tree.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DIST = ROOT / "dist" / "GuSA-Studio"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bundle() -> Path:
    if not ((DIST / "gusa-studio").is_file() and (DIST / "gusa").is_file()):
        subprocess.run([str(ROOT / "scripts" / "build_bundle.sh")], cwd=ROOT, check=True, timeout=3600)
    return DIST


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "PYTHONPATH", "PYTHONHOME")}
    env.update(QT_QPA_PLATFORM="offscreen", OMP_NUM_THREADS="2")
    return env


def test_frozen_self_test_exits_0(bundle, tmp_path):
    proc = subprocess.run([str(bundle / "gusa-studio"), "--self-test"], cwd=tmp_path, env=_env(),
                          capture_output=True, timeout=600)
    out = proc.stdout.decode("utf-8", "replace")
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out}\n{proc.stderr.decode('utf-8', 'replace')}"
    assert "(frozen bundle)" in out
    assert "✓ classify a demo image" in out and "self-test passed" in out


def test_frozen_cli_info_json(bundle, tmp_path):
    proc = subprocess.run([str(bundle / "gusa"), "info", "--json"], cwd=tmp_path, env=_env(),
                          capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode("utf-8", "replace")
    info = json.loads(proc.stdout)
    assert isinstance(info, dict) and info
