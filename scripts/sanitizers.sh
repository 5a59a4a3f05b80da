#!/usr/bin/env bash
# The sanitizer part of CI (scripts/test.sh calls it; docs/testing.md gives the times):
#  1. build-asan: clang, ASan + UBSan (every report fatal) and libFuzzer coverage on every
#     target; runs the unit, golden and server labels there, and every fuzz target briefly
#     (label fuzz, FOURCAST_FUZZ_SECONDS each) from its committed seeds;
#  2. build-tsan: clang, TSan; builds only what the threaded tests need and runs the engine
#     tests (engine thread, speculative engine), the thread-pool tests and the server label.
#   scripts/sanitizers.sh [asan|tsan ...]      (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."
jobs="$(nproc)"
which=("$@")
((${#which[@]})) || which=(asan tsan)
export CCACHE_DIR="${CCACHE_DIR:-$PWD/.ccache}"
common=(-G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang
        -DCMAKE_CXX_COMPILER=clang++ -DFOURCAST_CUDA=OFF -DFOURCAST_BENCH=OFF)
for w in "${which[@]}"; do
  case "$w" in
    asan)
      cmake -S . -B build-asan "${common[@]}" -DFOURCAST_SANITIZE=address,undefined \
        -DFOURCAST_FUZZ=ON -DFOURCAST_FUZZ_SECONDS="${FOURCAST_FUZZ_SECONDS:-10}" >/dev/null
      cmake --build build-asan -j "$jobs"
      ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1:check_initialization_order=1 \
      UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        ctest --test-dir build-asan --output-on-failure -j "$jobs" -L 'unit|golden|server|fuzz'
      ;;
    tsan)
      cmake -S . -B build-tsan "${common[@]}" -DFOURCAST_SANITIZE=thread >/dev/null
      cmake --build build-tsan -j "$jobs" --target fourcast core_test engine_golden_test \
        spec_engine_test
      TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
        ctest --test-dir build-tsan --output-on-failure -j "$jobs" \
          -R '(ThreadPool\.|Engine|^server_)'
      ;;
    *) echo "unknown: $w (asan, tsan)" >&2; exit 2 ;;
  esac
done
