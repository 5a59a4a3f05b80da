#!/usr/bin/env bash
# The cost of output constraints: one `fourcast serve` of MODEL_DIR, then REPS greedy
# /v1/completions of 32 tokens each way, alternating: unconstrained, response_format
# json_object, and structured_outputs choice. Prints the best wall time per request of each.
#   bench/constrained_bench.sh MODEL_DIR [REPS]      (e.g. /work/synth/bench-target 5)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build/apps/cli/fourcast
model="$1"
reps="${2:-5}"
log=$(mktemp)
"$bin" serve "$model" --host 127.0.0.1 --port 0 >"$log" 2>&1 &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 1 300); do
  grep -q "ready:" "$log" && break
  kill -0 "$pid" 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.2
done
port=$(grep -o 'http://[^ ]*:[0-9]*' "$log" | head -1 | sed 's/.*://')
python3 - "$port" "$reps" <<'PY'
import json, sys, time, urllib.request
port, reps = sys.argv[1], int(sys.argv[2])
base = {"prompt": "Hello", "max_tokens": 32, "temperature": 0}
cases = {"unconstrained": {},
         "json_object": {"response_format": {"type": "json_object"}},
         "choice": {"structured_outputs": {"choice": ["yes", "no", "maybe later"]}}}
def run(extra):
    body = json.dumps({**base, **extra}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", body,
                                 {"Content-Type": "application/json"})
    t = time.monotonic()
    out = json.load(urllib.request.urlopen(req))
    return time.monotonic() - t, out["usage"]["completion_tokens"]
run({})  # warm-up
best = {k: (1e9, 0) for k in cases}
for _ in range(reps):
    for k, extra in cases.items():
        s, n = run(extra)
        if s < best[k][0]:
            best[k] = (s, n)
for k, (s, n) in best.items():
    print(f"{k:<14} best {s:7.3f} s for {n:3d} tokens  ({1000 * s / max(n, 1):7.2f} ms/token)")
PY
