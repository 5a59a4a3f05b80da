#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang (ASan + UBSan + coverage) into
# build-fuzz and runs each for a fixed time from its committed seeds, then prints executions,
# coverage (cov = edges, ft = features, as libFuzzer counts them) and findings per target.
#
#   scripts/fuzz.sh [--seconds N] [--build-only | --no-build] [TARGET ...]
#                                                   (default: 60 s each, all targets)
#
# Runs one target at a time (one core). New corpus entries go to build-fuzz/fuzz-runs/TARGET/corpus
# (kept between runs, so repeated runs accumulate), crashes to .../artifacts, logs to .../log.
# A crash, leak, timeout or out-of-memory makes the script exit 1 after all targets ran.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=60
build_only=0
no_build=0
targets=()
while (($#)); do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --build-only) build_only=1; shift ;;
    --no-build) no_build=1; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) targets+=("$1"); shift ;;
  esac
done
all=(request_fuzzer jinja_fuzzer tokenizer_json_fuzzer tokenizer_roundtrip_fuzzer
     safetensors_fuzzer config_fuzzer output_parser_fuzzer http_parser_fuzzer
     constraint_fuzzer multipart_fuzzer)
((${#targets[@]})) || targets=("${all[@]}")
declare -A dict=([request_fuzzer]=json.dict [jinja_fuzzer]=jinja.dict
                 [tokenizer_json_fuzzer]=json.dict [safetensors_fuzzer]=json.dict
                 [config_fuzzer]=json.dict [output_parser_fuzzer]=gemma4.dict
                 [http_parser_fuzzer]=http.dict [constraint_fuzzer]=json.dict
                 [multipart_fuzzer]=multipart.dict)

export CCACHE_DIR="${CCACHE_DIR:-$PWD/.ccache}"
((no_build)) || cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DFOURCAST_CUDA=OFF -DFOURCAST_BENCH=OFF \
  -DFOURCAST_FUZZ=ON -DFOURCAST_SANITIZE=address,undefined >/dev/null
((no_build)) || cmake --build build-fuzz -j "$(nproc)" --target "${targets[@]}"
((build_only)) && exit 0

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
status=0
printf '%-28s %10s %8s %8s %9s %s\n' target executions cov ft "exec/s" findings
for t in "${targets[@]}"; do
  out="build-fuzz/fuzz-runs/$t"
  mkdir -p "$out/corpus" "$out/artifacts"
  d=()
  [ -n "${dict[$t]:-}" ] && d=(-dict="tests/fuzz/${dict[$t]}")
  set +e
  "build-fuzz/tests/fuzz/$t" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2560 \
    -print_final_stats=1 -artifact_prefix="$out/artifacts/" "${d[@]}" \
    "$out/corpus" "tests/fuzz/corpus/$t" $( [ -d "tests/fuzz/regressions/$t" ] && echo "tests/fuzz/regressions/$t") \
    >"$out/log" 2>&1
  rc=$?
  set -e
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/log" | tail -1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$out/log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$out/log" | tail -1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  # Findings: crash-, leak-, timeout- and oom- files. slow-unit- files (an input that took over
  # 10 s, which on a loaded machine may just be scheduling) are counted apart, not as findings.
  found=$(find "$out/artifacts" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
          -o -name 'oom-*' \) | wc -l)
  slow=$(find "$out/artifacts" -type f -name 'slow-unit-*' | wc -l)
  printf '%-28s %10s %8s %8s %9s %s\n' "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${speed:-?}" \
    "$found$( ((slow)) && echo " ($slow slow units)")$( ((rc)) && echo " (exit $rc, see $out/log)")"
  if ((rc)) || ((found)); then status=1; fi
done
exit $status
