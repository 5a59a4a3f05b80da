#!/usr/bin/env bash
# The Responses API's cost over the chat path, and its store under load: one `fourcast serve`
# of MODEL_DIR (default: the bundled tiny model) with --responses-store-max-entries CAP, then
#   1. REPS greedy requests of 8 tokens each way, alternating /v1/chat/completions and
#      /v1/responses (same prompt): the best wall time per request of each;
#   2. N stored responses (max_output_tokens 1) against the cap: requests per second, the store's
#      entries and bytes (/metrics) and the server's RSS after CAP*2 and after N responses.
#   bench/responses_bench.sh [MODEL_DIR] [REPS] [N] [CAP]      (defaults: tiny model, 20, 1000, 100)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build/apps/cli/fourcast
model="${1:-models/tiny-gemma4}"
reps="${2:-20}"
n="${3:-1000}"
cap="${4:-100}"
log=$(mktemp)
"$bin" serve "$model" --host 127.0.0.1 --port 0 --responses-store-max-entries "$cap" >"$log" 2>&1 &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 1 300); do
  grep -q "ready:" "$log" && break
  kill -0 "$pid" 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.2
done
port=$(grep -o 'http://[^ ]*:[0-9]*' "$log" | head -1 | sed 's/.*://')
python3 - "$port" "$reps" "$n" "$cap" "$pid" <<'PY'
import json, sys, time, urllib.request
port, reps, n, cap, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
def post(path, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
chat = {"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 8, "temperature": 0}
resp = {"input": "Hello", "max_output_tokens": 8, "temperature": 0, "store": False}
best = {"chat": 1e9, "responses": 1e9}
for _ in range(reps):
    for name, path, body in (("chat", "/v1/chat/completions", chat), ("responses", "/v1/responses", resp)):
        t = time.perf_counter(); post(path, body); best[name] = min(best[name], time.perf_counter() - t)
print(f"best of {reps}, 8 tokens: chat {best['chat']*1e3:.2f} ms, responses {best['responses']*1e3:.2f} ms")
t0 = time.perf_counter(); marks = {}
for i in range(n):
    post("/v1/responses", {"input": f"Hello {i}", "max_output_tokens": 1, "temperature": 0})
    if i + 1 in (2 * cap, n):
        marks[i + 1] = rss()
dt = time.perf_counter() - t0
text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
m = {l.split()[0]: float(l.split()[1]) for l in text.splitlines() if l.startswith("fourcast:responses")}
print(f"{n} stored responses in {dt:.1f} s ({n/dt:.0f}/s); store: {m['fourcast:responses_stored']:.0f} "
      f"entries, {m['fourcast:responses_store_bytes']/1024:.0f} KiB, "
      f"{m['fourcast:responses_evicted_total']:.0f} evicted; RSS {marks[2*cap]:.1f} MiB after "
      f"{2*cap}, {marks[n]:.1f} MiB after {n}")
PY
