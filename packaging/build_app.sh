#!/usr/bin/env bash
# Builds the one-folder app dist/glide-studio/ with PyInstaller (see packaging/README.md).
# PYTHON selects the interpreter whose packages (torch, PySide6, ...) go into the bundle;
# DIST_DIR and WORK_DIR move the output and PyInstaller's scratch folder (default: dist/, build/).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
DIST_DIR="${DIST_DIR:-dist}"
WORK_DIR="${WORK_DIR:-build/pyinstaller}"

if ! "$PYTHON" -m PyInstaller --version >/dev/null 2>&1; then
  echo "PyInstaller is not installed for $PYTHON; install it with: $PYTHON -m pip install pyinstaller" >&2
  exit 1
fi
if ! ls weights/demo-*.safetensors >/dev/null 2>&1; then
  echo "warning: no demo weights in weights/: the app will be built without the demo model" >&2
fi

start=$(date +%s)
"$PYTHON" -m PyInstaller --noconfirm --clean --log-level WARN \
  --distpath "$DIST_DIR" --workpath "$WORK_DIR" packaging/glide_studio.spec
seconds=$(( $(date +%s) - start ))

# Smoke check: the frozen app starts and answers.
"$DIST_DIR/glide-studio/glide-studio" --version
echo "built $DIST_DIR/glide-studio in ${seconds}s, $(du -sh "$DIST_DIR/glide-studio" | cut -f1)"
