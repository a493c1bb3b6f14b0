#!/usr/bin/env bash
# Check the frozen bundle: build it if missing, run `gusa-studio --self-test` and
# `gusa info --json` from dist/GuSA-Studio, print its size and start-up times.
#   scripts/test_bundle.sh             use dist/GuSA-Studio, build it first if missing
#   scripts/test_bundle.sh --rebuild   always build first
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DIST="$ROOT/dist/GuSA-Studio"
if [ "${1:-}" = "--rebuild" ] || [ ! -x "$DIST/gusa-studio" ] || [ ! -x "$DIST/gusa" ]; then
    "$ROOT/scripts/build_bundle.sh"
fi
export QT_QPA_PLATFORM=offscreen OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
unset DISPLAY WAYLAND_DISPLAY || true
cd "$(mktemp -d)"  # nothing may depend on the source tree

seconds() { python3 -c 'import sys, time; print(f"{time.time() - float(sys.argv[1]):.2f}")' "$1"; }
now() { python3 -c 'import time; print(time.time())'; }

echo "== gusa-studio --self-test"
t=$(now)
"$DIST/gusa-studio" --self-test
self_test_s=$(seconds "$t")

echo "== gusa info --json"
t=$(now)
"$DIST/gusa" info --json > info.json
info_s=$(seconds "$t")
python3 - info.json <<'PY'
import json, sys
info = json.load(open(sys.argv[1]))
assert isinstance(info, dict) and info, "gusa info --json printed no JSON object"
print("  keys:", ", ".join(list(info)[:8]))
PY

t=$(now)
"$DIST/gusa" --help > /dev/null
help_s=$(seconds "$t")
t=$(now)
"$DIST/gusa-studio" --version
version_s=$(seconds "$t")

# time until the main window is on screen (app.main's GUSA_STARTUP_PROBE)
probe=$(GUSA_STARTUP_PROBE=1 "$DIST/gusa-studio" 2>/dev/null | grep window-visible || true)
window_s=$(echo "$probe" | awk '{print $2}')

echo "== bundle"
echo "  size:                     $(du -sh "$DIST" | cut -f1)  ($DIST)"
echo "  gusa-studio --self-test:  ${self_test_s} s"
echo "  gusa info --json:         ${info_s} s"
echo "  gusa --help:              ${help_s} s"
echo "  gusa-studio window shown: ${window_s:-?} s"
echo "  gusa-studio --version:    ${version_s} s"
echo "bundle OK"
