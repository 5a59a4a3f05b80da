#!/usr/bin/env bash
# Speculative decoding on the CPU, in the shape model cards use: for each drafter configuration,
# `fourcast serve` the target, then `fourcast bench serve` 300-token completions at concurrency 1,
# 2 and 4; prints aggregate output tok/s, per-request tok/s (1 / mean TPOT), mean end-to-end
# latency and the mean acceptance length from the server's counters.
#   bench/spec_bench.sh TARGET_DIR NAME=SPEC_JSON ... (NAME=none for no speculation)
# e.g. bench/spec_bench.sh /work/synth/bench-target none= \
#        copy='{"method":"draft_model","model":"/work/synth/bench-copy","num_speculative_tokens":4}'
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build/apps/cli/fourcast
target="$1"
shift
out="${SPEC_BENCH_OUT:-/tmp/spec_bench}"
mkdir -p "$out"
printf '%-12s %3s %12s %14s %12s %8s\n' config c "agg tok/s" "per-req tok/s" "mean E2E s" MAL
for entry in "$@"; do
  name="${entry%%=*}"
  spec="${entry#*=}"
  args=("$target" --host 127.0.0.1 --port 0 --max-num-seqs 4 --max-model-len 1024
        --cpu-kv-cache-gb 2)
  [ -n "$spec" ] && args+=(--speculative-config "$spec")
  log="$out/$name.serve.log"
  "$bin" serve "${args[@]}" >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 1 300); do
    grep -q "ready:" "$log" && break
    kill -0 "$pid" 2>/dev/null || { cat "$log"; exit 1; }
    sleep 0.2
  done
  port=$(grep -o 'http://[^ ]*:[0-9]*' "$log" | head -1 | sed 's/.*://')
  for c in 1 2 4; do
    res="$out/$name.c$c.json"
    "$bin" bench serve --port "$port" --endpoint /v1/completions --num-prompts $((2 * c)) --max-concurrency "$c" \
      --random-input-len 64 --random-output-len 300 --ignore-eos --temperature 0 \
      --disable-tqdm --result-file "$res" >"$out/$name.c$c.txt" 2>&1
    python3 - "$res" "$name" "$c" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
tpot = r.get("mean_tpot_ms") or 0
mal = r.get("spec_decode_acceptance_length") or r.get("mean_acceptance_length") or 0
print(f"{sys.argv[2]:<12} {sys.argv[3]:>3} {r['output_throughput']:12.2f} "
      f"{(1000 / tpot if tpot else 0):14.2f} {r['mean_e2el_ms'] / 1000:12.2f} {mal:8.2f}")
PY
  done
  kill -TERM "$pid"
  wait "$pid" || true
done
