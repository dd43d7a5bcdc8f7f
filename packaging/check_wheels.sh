#!/usr/bin/env bash
# Does every runtime dependency of glide-studio resolve to binary wheels for Python 3.10, 3.11, 3.12 and 3.13?
# No interpreter of those versions is needed: pip resolves for a target version (--python-version) from wheels
# only (--only-binary=:all:), reading each wheel's metadata from the index (nothing is installed).
#
#   bash packaging/check_wheels.sh                       # this machine's platform, every version
#   VERSIONS="3.13" PLATFORMS="win_amd64 macosx_11_0_arm64" bash packaging/check_wheels.sh
#     (other platforms: pip still evaluates environment markers for this machine, so torch's Linux-only
#     nvidia-* requirements make a Windows or macOS check from Linux fail; run it on that platform instead)
#   MODE=download bash packaging/check_wheels.sh         # pip download the wheels themselves (GBs: torch)
#
# Prints one line per (version, platform) with what torch, PySide6 and numpy resolve to, and exits non-zero when
# any combination does not resolve (pip's own reason is printed). Not part of the offline test suite.
set -uo pipefail
cd "$(dirname "$0")/.."
PIP=${PIP:-.venv/bin/pip}
VERSIONS=${VERSIONS:-"3.10 3.11 3.12 3.13"}
PLATFORMS=${PLATFORMS:-""}   # empty: this machine's platform
MODE=${MODE:-resolve}
EXTRAS=${EXTRAS:-""}         # e.g. "[sd]" to check the optional Stable Diffusion family too
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

failed=0
for version in $VERSIONS; do
  for platform in ${PLATFORMS:-native}; do
    platform_args=()
    [ "$platform" != native ] && platform_args=(--platform "$platform")
    log="$scratch/pip-$version-$platform.log"
    if [ "$MODE" = download ]; then
      "$PIP" download --quiet --python-version "$version" "${platform_args[@]}" --only-binary=:all: \
        --dest "$scratch/wheels-$version-$platform" ".$EXTRAS" >"$log" 2>&1
      status=$?
      summary=$(cd "$scratch/wheels-$version-$platform" 2>/dev/null && ls | grep -iE '^(torch|pyside6_essentials|numpy)-' | tr '\n' ' ')
    else
      report="$scratch/report-$version-$platform.json"
      "$PIP" install --quiet --dry-run --ignore-installed --python-version "$version" "${platform_args[@]}" \
        --only-binary=:all: --target "$scratch/target" --report "$report" ".$EXTRAS" >"$log" 2>&1
      status=$?
      summary=$(python3 - "$report" <<'PY' 2>/dev/null
import json, sys
items = json.load(open(sys.argv[1]))["install"]
names = {item["metadata"]["name"].lower().replace("_", "-"): item["metadata"]["version"] for item in items}
shown = [f"{name} {names[name]}" for name in ("torch", "pyside6-essentials", "numpy", "tiktoken", "regex") if name in names]
print(f"{len(items)} packages: " + ", ".join(shown))
PY
)
    fi
    if [ $status -eq 0 ]; then
      echo "ok    Python $version ($platform): $summary"
    else
      echo "FAIL  Python $version ($platform):"
      grep -E "ERROR|error|No matching|Could not find|requires" "$log" | head -8 | sed 's/^/      /'
      failed=1
    fi
  done
done
exit $failed
