"""The house rules: gusa_core is headless and layered, the CLI lives outside the library,
one module owns the run folder's paths, and no file grows past 600 lines."""

import ast
import re
import shutil
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "gusa_core"
CONTRACTS = (
    "gusa_core is headless: it never imports app, PySide6 or superqt",
    "gusa_core is layered: a module imports only from the layers below it",
)


def _sources():
    return sorted(CORE.rglob("*.py"))


def test_import_linter_contracts_hold():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    if not Path(exe).exists():
        pytest.fail("lint-imports (import-linter) is not installed: pip install -e '.[dev]'")
    proc = subprocess.run([exe, "--config", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True, text=True,
                          encoding="utf-8", errors="replace", env={**os.environ, "PYTHONUTF8": "1"})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    for name in CONTRACTS:  # both contracts are checked, not only configured
        assert re.search(re.escape(name) + r" KEPT", out), f"contract not checked: {name}\n{out}"


def test_importing_core_pulls_in_no_qt():
    code = (
        "import sys, gusa_core, gusa_core.project, gusa_core.cli.main;"
        "bad=[m for m in sys.modules if m.split('.')[0] in ('PySide6','superqt','app')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_library_modules_hold_no_argparse_tqdm_or_print():
    offenders = []
    for path in _sources():
        if path.relative_to(CORE).parts[0] == "cli":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
                if any(n.split(".")[0] in ("argparse", "tqdm") for n in names):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} imports argparse/tqdm")
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} calls print")
    assert not offenders, "\n".join(offenders)


def test_only_runs_and_checkpoint_name_run_folder_files():
    owners = {CORE / "runs.py", CORE / "checkpoint.py"}
    literal = re.compile(r"""["'](run\.json|fold-|last\.pt-state|model\.safetensors|model\.json|state\.json)""")
    offenders = [
        f"{path.relative_to(ROOT)}:{i}: {line.strip()}"
        for path in _sources() if path not in owners
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if literal.search(line)
    ]
    assert not offenders, "\n".join(offenders)


def test_no_file_over_600_lines():
    long = [f"{p.relative_to(ROOT)}: {n}" for p in _sources() if (n := len(p.read_text(encoding="utf-8").splitlines())) > 600]
    assert not long, "\n".join(long)
