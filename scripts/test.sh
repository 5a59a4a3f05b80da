#!/usr/bin/env bash
# Installs dependencies, builds, and runs every test (labels: unit, golden, server, gpu), then the
# sanitizer builds and short fuzz runs (scripts/sanitizers.sh; FOURCAST_SANITIZERS=0 skips them).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
ctest --test-dir build --output-on-failure -j "$(nproc)" "$@"
[ "${FOURCAST_SANITIZERS:-1}" = 0 ] || scripts/sanitizers.sh
