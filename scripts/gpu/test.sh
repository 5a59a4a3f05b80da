#!/usr/bin/env bash
# Runs the GPU tests (ctest label gpu) of BUILD_DIR (default: build-gpu) and writes the results to
# RESULTS (default: BUILD_DIR/gpu-test-results.txt; JUnit XML beside it). Without a GPU every
# test skips and this exits 0. A build folder configured from another checkout (carried to a GPU
# machine) is run binary by binary from this checkout, with FOURCAST_SOURCE_DIR pointing here.
#   scripts/gpu/test.sh [BUILD_DIR] [RESULTS]
set -uo pipefail
cd "$(dirname "$0")/../.."
dir="${1:-build-gpu}"
out="${2:-$dir/gpu-test-results.txt}"
mkdir -p "$(dirname "$out")"
out="$(cd "$(dirname "$out")" && pwd)/$(basename "$out")"
export FOURCAST_SOURCE_DIR="$PWD"
home=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$dir/CMakeCache.txt" 2>/dev/null)
rc=0
if [[ "$home" == "$PWD" ]] && command -v ctest >/dev/null; then
  ctest --test-dir "$dir" -L gpu --output-on-failure --output-junit "${out%.txt}.xml" \
    2>&1 | tee "$out" || rc=$?
else
  : >"$out"
  for b in "$dir"/tests/gpu/*_test; do
    [[ -x "$b" ]] || continue
    "$b" --gtest_output="xml:${out%.txt}-$(basename "$b").xml" 2>&1 | tee -a "$out" || rc=1
  done
fi
echo "scripts/gpu/test.sh: results in $out (exit $rc)"
exit "$rc"
