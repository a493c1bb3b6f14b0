#!/usr/bin/env bash
# Build the desktop bundle: dist/GuSA-Studio/{gusa-studio,gusa} (see docs/BUNDLE.md).
#   scripts/build_bundle.sh            build (replaces an existing dist/GuSA-Studio)
#   PYTHON=/path/to/python scripts/build_bundle.sh   build from another environment
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON="$(command -v python3)"
if ! "$PYTHON" -c "import PyInstaller" 2>/dev/null; then
    echo "PyInstaller is missing: pip install -e '.[bundle]'" >&2
    exit 2
fi
start=$(date +%s)
"$PYTHON" -m PyInstaller build.spec --noconfirm --log-level WARN
end=$(date +%s)
echo "built dist/GuSA-Studio in $((end - start)) s ($(du -sh dist/GuSA-Studio | cut -f1))"
