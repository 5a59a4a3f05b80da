#!/usr/bin/env bash
# The sanitizer part of CI (scripts/test.sh calls it with no argument; docs/testing.md has the
# times). Two sizes:
#   ci (default)  what fits CI's time budget on 2 cores: a clang build (-O1, line tables only)
#                 of the input-facing libraries (core, http, io, chat, chat/gemma4, tokenizer, grammar)
#                 with ASan + UBSan (every report fatal) and libFuzzer coverage; the unit tests
#                 of core (JSON limits, thread pool), http (parser, epoll server) and io
#                 (safetensors), and a short libFuzzer run (FOURCAST_FUZZ_SECONDS, default 5) of
#                 the seven fuzz targets that need no model - each run starts by executing its
#                 committed seeds and crash regressions, so chat templates, the tokenizer and the
#                 Gemma 4 output parser run under ASan + UBSan there. Then TSan on the thread
#                 pool and the epoll HTTP server tests.
#   full          everything: ASan + UBSan + libFuzzer coverage on every target with the unit,
#                 golden, server and fuzz labels; TSan on fourcast, the engine tests, the thread
#                 pool and the server label (far past CI's budget on 2 cores: run it by hand).
#   scripts/sanitizers.sh [ci|full|asan|tsan ...]   (asan, tsan: the two halves of full)
set -euo pipefail
cd "$(dirname "$0")/.."
jobs="$(nproc)"
which=("$@")
((${#which[@]})) || which=(ci)
export CCACHE_DIR="${CCACHE_DIR:-$PWD/.ccache}"
common=(-G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang
        -DCMAKE_CXX_COMPILER=clang++ -DFOURCAST_CUDA=OFF -DFOURCAST_BENCH=OFF)
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1:check_initialization_order=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}"

# The ci subset (the other tests and the two fuzz targets that link the model stack,
# request_fuzzer and config_fuzzer, run in `full` and scripts/fuzz.sh).
ci_tests=(core_test json_limits_test http_parser_test http_multipart_test http_server_test io_test)
ci_fuzzers=(jinja_fuzzer tokenizer_json_fuzzer tokenizer_roundtrip_fuzzer safetensors_fuzzer
            output_parser_fuzzer http_parser_fuzzer constraint_fuzzer multipart_fuzzer)
# Test folders left unconfigured, so that ctest lists nothing unbuilt but the fuzz folder's
# other targets (selected away below).
ci_skip="unit/audio;unit/quant;unit/cpu;unit/backend;unit/sample;unit/spec;unit/kv;unit/engine"
ci_skip+=";unit/model;unit/cuda;golden;quantizer;tokenizer;chat;chat_gemma4;benchserve;server;gpu"
# -O1 and line tables: about half the compile time of -O2 -g, with file:line in every report.
ci_flags=(-DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only -DNDEBUG"
          -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only -DNDEBUG"
          -DFOURCAST_SKIP_TEST_DIRS="$ci_skip")

for w in "${which[@]}"; do
  case "$w" in
    ci)
      t0=$SECONDS
      cmake -S . -B build-asan-ci "${common[@]}" "${ci_flags[@]}" \
        -DFOURCAST_SANITIZE=address,undefined -DFOURCAST_FUZZ=ON \
        -DFOURCAST_FUZZ_SECONDS="${FOURCAST_FUZZ_SECONDS:-5}" >/dev/null
      cmake --build build-asan-ci -j "$jobs" --target "${ci_tests[@]}" "${ci_fuzzers[@]}"
      echo "sanitizers ci: ASan+UBSan build took $((SECONDS - t0)) s"
      ctest --test-dir build-asan-ci --output-on-failure -j "$jobs" -L 'unit|fuzz' \
        -E '(_replay|^request_fuzzer|^config_fuzzer|^layering|^clang_format)$'
      echo "sanitizers ci: ASan+UBSan step took $((SECONDS - t0)) s"
      t1=$SECONDS
      cmake -S . -B build-tsan-ci "${common[@]}" "${ci_flags[@]}" -DFOURCAST_SANITIZE=thread \
        >/dev/null
      cmake --build build-tsan-ci -j "$jobs" --target core_test http_server_test
      ctest --test-dir build-tsan-ci --output-on-failure -j "$jobs" -R '^(ThreadPool|HttpServer)\.'
      echo "sanitizers ci: TSan step took $((SECONDS - t1)) s"
      ;;
    asan)
      cmake -S . -B build-asan "${common[@]}" -DFOURCAST_SANITIZE=address,undefined \
        -DFOURCAST_FUZZ=ON -DFOURCAST_FUZZ_SECONDS="${FOURCAST_FUZZ_SECONDS:-10}" >/dev/null
      cmake --build build-asan -j "$jobs"
      ctest --test-dir build-asan --output-on-failure -j "$jobs" -L 'unit|golden|server|fuzz'
      ;;
    tsan)
      cmake -S . -B build-tsan "${common[@]}" -DFOURCAST_SANITIZE=thread >/dev/null
      cmake --build build-tsan -j "$jobs" --target fourcast core_test engine_golden_test \
        spec_engine_test
      ctest --test-dir build-tsan --output-on-failure -j "$jobs" \
          -R '(ThreadPool\.|Engine|^server_)'
      ;;
    full) "$0" asan tsan ;;
    *) echo "unknown: $w (ci, full, asan, tsan)" >&2; exit 2 ;;
  esac
done
