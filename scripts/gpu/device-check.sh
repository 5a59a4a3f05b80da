#!/usr/bin/env bash
# GPU first light: one command, run from the repository root on the GPU machine, that checks the
# CUDA backend and measures it, writing everything to $OUT (7 files) and printing a one-screen
# summary last. Made to fit one device call (under 8 minutes on an H100):
#   here:    scripts/gpu/bundle.sh                 (prebuilt sm_90a binaries -> gpu-bundle/)
#            scripts/gpu/fetch-wheels.sh           (optional: the openai SDK for the serve step -> .whl/)
#   device:  run(command="scripts/gpu/device-check.sh", carry=["gpu-bundle", ".whl"], timeout_s=560)
# Steps, each under its own time limit (a failure or hang in one leaves the others' results):
#   env       the GPU, driver, toolkit, the bundle's manifest, missing shared libraries     (15 s)
#   build     only without gpu-bundle/: scripts/gpu/build.sh on the device (needs the build
#             dependencies there; serve is skipped then)                                    (300 s)
#   tests     every tests/gpu binary (ops at awkward sizes against the CPU backend, linears
#             incl. W4A4 emulation, golden fixtures end to end, graph replay = eager)       (120 s)
#   memcheck  compute-sanitizer memcheck over one golden fixture and the graph test         (60 s)
#   synth     synthetic 31B all-NVFP4 (ModelOpt) and its attention-in-BF16 variant          (80 s)
#   bench     bench_gpu: copy bandwidth, NVFP4 GEMV and attention microbenchmarks, decode at
#             4K context for batch 1/4/16/64 (BF16 and FP8 KV), prefill 2K, the BF16-attention
#             variant at batch 1                                                            (110 s)
#   serve     fourcast serve --device cuda on the 31B answering the openai SDK (or plain HTTP
#             when the SDK is missing) and `fourcast bench serve`, without and with an
#             exact-copy draft_model drafter                                                (140 s)
# Files in $OUT: summary.txt env.txt tests.txt memcheck.txt synth.txt bench.txt serve.txt.
#
#   scripts/gpu/device-check.sh --dry-run   (here, no GPU) runs every step's commands with the
#   CPU binaries of build/ and a synthetic model of the bundled tiny model's geometry, so the script
#   itself is tested before GPU time is spent on it. Env: OUT (default ./device-check-out),
#   FC_CHECK_BUILD (the dry run's build folder, default build),
#   FC_CHECK_SYNTH (folder for the synthetic checkpoints; default /dev/shm/fc-check when it has
#   48 GB free, else /tmp/fc-check).
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
dry=0
[[ "${1:-}" == "--dry-run" ]] && dry=1
out="${OUT:-$root/device-check-out}"
mkdir -p "$out"
summary="$out/summary.txt"
: >"$summary"
t_start=$(date +%s)
note() { echo "$*" | tee -a "$summary"; }

# Runs one step under a time limit, output to $out/NAME.txt; records rc and seconds.
declare -A rc_of secs_of
step() {
  local name=$1 limit=$2
  shift 2
  local t0=$(date +%s)
  declare -F "$1" >/dev/null && export -f "$1"
  echo "== $name (limit ${limit}s)" >&2
  # bash -c so that a step may be one of the (exported) functions below.
  timeout --kill-after=5 "$limit" bash -c '"$@"' _ "$@" >>"$out/$name.txt" 2>&1
  local rc=$?
  rc_of[$name]=$rc
  secs_of[$name]=$(($(date +%s) - t0))
  [[ $rc == 124 || $rc == 137 ]] && echo "(step $name hit its ${limit}s limit)" >>"$out/$name.txt"
  return 0
}

# ---- Binaries: the carried bundle, the CPU build (dry run), or a build here. ----
bin="" lib=""
if [[ $dry == 1 ]]; then
  bd="${FC_CHECK_BUILD:-build}"
  bin="$root/$bd/bin-dry"
  mkdir -p "$bin"
  for b in "$bd"/apps/cli/fourcast "$bd"/bench/bench_model "$bd"/bench/bench_gpu "$bd"/tests/gpu/*_test; do
    [[ -x "$b" ]] && ln -sf "$root/$b" "$bin/$(basename "$b")"
  done
elif [[ -x gpu-bundle/bin/fourcast ]]; then
  bin="$root/gpu-bundle/bin"
  lib="$root/gpu-bundle/lib"
else
  step build 300 env CUDA_ARCHS=90a GPU_TARGETS="gpu_ops_test gpu_linear_test gpu_golden_test gpu_graph_test bench_gpu fourcast" \
    scripts/gpu/build.sh build-gpu
  bin="$root/build-gpu/bin-check"
  mkdir -p "$bin"
  for b in build-gpu/apps/cli/fourcast build-gpu/bench/bench_gpu build-gpu/tests/gpu/*_test; do
    [[ -x "$b" ]] && ln -sf "$root/$b" "$bin/$(basename "$b")"
  done
fi
# CUDA libraries the binaries load (cuBLAS): the toolkit's, or the ones PyTorch's wheels bring.
cuda_libs=""
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
  [[ -d $d ]] && cuda_libs="$cuda_libs:$d"
done
for d in $(find /opt /usr/local /usr/lib -maxdepth 8 -type d \( -path '*/nvidia/cu1*/lib' -o \
  -path '*/nvidia/cublas/lib' \) 2>/dev/null | head -4); do
  cuda_libs="$cuda_libs:$d"
done
run() { env LD_LIBRARY_PATH="${lib}${cuda_libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
  FOURCAST_SOURCE_DIR="$root" "$@"; }
fc() { run "$bin/fourcast" "$@"; }
# The same, replacing the calling (sub)shell: `fc_exec serve ... &` leaves $! = the server's pid.
fc_exec() { exec env LD_LIBRARY_PATH="${lib}${cuda_libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
  FOURCAST_SOURCE_DIR="$root" "$bin/fourcast" "$@"; }
export -f run fc fc_exec
export root out dry bin lib cuda_libs

# ---- env ----
env_step() {
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem \
    --format=csv 2>&1 || echo "nvidia-smi: not available"
  nvcc --version 2>&1 | tail -2 || true
  echo "cpus $(nproc); $(free -g | awk '/Mem:/{print $2" GiB memory"}')"
  df -h /dev/shm /tmp 2>/dev/null
  [[ -f gpu-bundle/MANIFEST ]] && cat gpu-bundle/MANIFEST
  echo "binaries from $bin; CUDA libraries:${cuda_libs}"
  for b in "$bin"/*; do
    missing=$(run ldd "$b" 2>/dev/null | grep "not found")
    [[ -n "$missing" ]] && echo "$b: MISSING $missing"
  done
  echo "compute-sanitizer: $(command -v compute-sanitizer || echo none)"
  return 0
}
step env 15 env_step

# ---- tests ----
tests_step() {
  local rc=0
  for t in "$bin"/*_test; do
    [[ -x "$t" ]] || continue
    echo "### $(basename "$t")"
    run "$t" --gtest_color=no || rc=1
  done
  return $rc
}
step tests 120 tests_step

# ---- memcheck ----
memcheck_step() {
  if ! command -v compute-sanitizer >/dev/null; then
    echo "compute-sanitizer not found: skipped"
    return 0
  fi
  local rc=0
  run compute-sanitizer --tool memcheck --error-exitcode 3 "$bin/gpu_golden_test" \
    --gtest_filter='*mini_e2b_exact*' || rc=$?
  run compute-sanitizer --tool memcheck --error-exitcode 3 "$bin/gpu_graph_test" \
    --gtest_filter='*/1' || rc=$?
  return $rc
}
if [[ $dry == 1 ]]; then
  echo "dry run: memcheck needs a GPU, skipped" >"$out/memcheck.txt"
  rc_of[memcheck]=0 secs_of[memcheck]=0
else
  step memcheck 60 memcheck_step
fi

# ---- synth ----
syn="${FC_CHECK_SYNTH:-}"
if [[ -z "$syn" ]]; then
  free_shm=$(df -B1G --output=avail /dev/shm 2>/dev/null | tail -1 | tr -d ' ')
  syn=/tmp/fc-check
  [[ -n "$free_shm" && "$free_shm" -ge 48 ]] && syn=/dev/shm/fc-check
fi
mkdir -p "$syn"
tokfile=tests/fixtures/tokenizer/tokenizer.json
if [[ $dry == 1 ]]; then
  # The bundled tiny model's geometry: the same commands, seconds on the CPU.
  shape_arg="--shape models/tiny-gemma4/config.json"
  tokfile=models/tiny-gemma4/tokenizer.json
  target="$syn/tiny"
  variant="$syn/tiny-attnbf16"
else
  shape_arg="--shape 31b"
  target="$syn/s31"
  variant="$syn/s31-attnbf16"
fi
export syn tokfile target variant shape_arg
synth_step() {
  [[ -f "$target/config.json" ]] ||
    { time fc synth $shape_arg --quant modelopt --tokenizer "$tokfile" --out "$target"; } || return 1
  [[ -f "$variant/config.json" ]] ||
    { time fc synth $shape_arg --quant modelopt --attn-bf16 --tokenizer "$tokfile" --out "$variant"; } || return 1
  du -sh "$target" "$variant"
}
step synth 80 synth_step

# ---- bench ----
bench_step() {
  if [[ $dry == 1 ]]; then
    run "$bin/bench_model" --model "$target" --threads 2 --prompt-len 64 --decode-tokens 4 --reps 1
    return $?
  fi
  run "$bin/bench_gpu" --micro --model "$target" --context 4096 --batches 1,4,16,64 --steps 16 \
    --kv-dtype bf16,fp8 --prefill 2048 || return 1
  run "$bin/bench_gpu" --model "$variant" --context 4096 --batches 1 --steps 16 --prefill 0
}
step bench 110 bench_step

# ---- serve ----
http_get() { python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' "$1"; }
export -f http_get
serve_step() {
  local port=8430 dev=cuda
  [[ $dry == 1 ]] && dev=cpu
  # The openai SDK: installed here (the dry run uses the server tests' venv), or carried as wheels
  # in .whl (device README).
  local py=python3
  [[ $dry == 1 && -x .venv-test/bin/python ]] && py=.venv-test/bin/python
  if ! $py -c "import openai" 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl &&
      export PYTHONPATH=/tmp/site
  fi
  local rc=0
  for mode in plain drafter; do
    port=$((port + 1))  # a fresh port per server: no wait for the last one's socket
    local extra=()
    [[ $mode == drafter ]] && extra=(--speculative-config
      "{\"method\":\"draft_model\",\"model\":\"$target\",\"num_speculative_tokens\":4}")
    echo "### serve $mode"
    fc_exec serve "$target" --device "$dev" --port "$port" --max-model-len 4096 --max-num-seqs 8 \
      --chat-template models/tiny-gemma4/chat_template.jinja "${extra[@]}" >"$out/serve-$mode.log" 2>&1 &
    local pid=$!
    local up=0
    for _ in $(seq 1 90); do
      if http_get "http://127.0.0.1:$port/health" >/dev/null 2>&1; then up=1; break; fi
      kill -0 $pid 2>/dev/null || break
      sleep 1
    done
    if [[ $up == 0 ]]; then
      echo "server ($mode) did not come up:"; tail -20 "$out/serve-$mode.log"
      kill $pid 2>/dev/null; wait $pid 2>/dev/null; rc=1; continue
    fi
    $py - "$port" <<'PY' || rc=1
import json, sys, urllib.request
port = sys.argv[1]
msgs = [{"role": "user", "content": "Write one sentence about GPUs."}]
try:
    import openai
    c = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x")
    model = c.models.list().data[0].id
    r = c.chat.completions.create(model=model, messages=msgs, max_tokens=16, temperature=0)
    print("openai SDK", openai.__version__, "->", r.choices[0].finish_reason, r.usage.completion_tokens,
          "tokens:", repr(r.choices[0].message.content)[:80])
    s = c.chat.completions.create(model=model, messages=msgs, max_tokens=8, stream=True)
    print("streamed chunks:", sum(1 for _ in s))
except ImportError:
    body = json.dumps({"messages": msgs, "max_tokens": 16, "temperature": 0}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", body,
                                 {"Content-Type": "application/json"})
    r = json.load(urllib.request.urlopen(req, timeout=60))
    print("plain HTTP (no openai SDK) ->", r["choices"][0]["finish_reason"],
          r["usage"]["completion_tokens"], "tokens")
PY
    fc bench serve --port "$port" --num-prompts 16 --max-concurrency 4 --random-input-len 256 \
      --random-output-len 64 --ignore-eos --temperature 0 || rc=1
    http_get "http://127.0.0.1:$port/metrics" | grep -E "^(vllm:spec_decode|fourcast:spec)" | head -8
    kill $pid 2>/dev/null
    wait $pid 2>/dev/null
    echo "server exit status $? after SIGTERM"
    echo "--- server log ($mode), last lines"
    tail -5 "$out/serve-$mode.log"
    rm -f "$out/serve-$mode.log"
  done
  return $rc
}
if [[ -x "$bin/fourcast" ]]; then
  step serve 140 serve_step
else
  echo "no fourcast binary: skipped" >"$out/serve.txt"
  rc_of[serve]=1 secs_of[serve]=0
fi

# ---- summary (one screen) ----
{
  echo "device check $(date -u +%FT%TZ)$([[ $dry == 1 ]] && echo ' (DRY RUN, CPU)') in $(($(date +%s) - t_start)) s"
  grep -m1 -E "^NVIDIA|^name|H100|H200" "$out/env.txt" | head -2
  for s in build env tests memcheck synth bench serve; do
    [[ -n "${rc_of[$s]:-}" ]] && printf '  %-9s rc %-3s %4s s\n' "$s" "${rc_of[$s]}" "${secs_of[$s]}"
  done
  echo "tests (passed / failed / skipped per binary; failures listed):"
  awk '/^### /{if(n)printf "  %-24s %3d / %3d / %3d\n",n,p,f,k; n=$2;p=f=k=0}
       /^\[       OK \]/{p++} /^\[  FAILED  \] [A-Za-z].* \(/{f++; print "    FAILED " $4}
       /^\[  SKIPPED \] [A-Za-z].* \(/{k++}
       END{if(n)printf "  %-24s %3d / %3d / %3d\n",n,p,f,k}' "$out/tests.txt" | head -30
  echo "memcheck: $(grep -E "ERROR SUMMARY" "$out/memcheck.txt" | tr '\n' ' ' || true)"
  echo "bench:"
  grep -E "^device|copy|^model|^ +[0-9]+ |prefill|graphs:|skipped|decode" "$out/bench.txt" | head -24
  echo "serve:"
  grep -E "^### |openai SDK|plain HTTP|Output token throughput|Mean TPOT|Mean acceptance|spec_decode_num_accepted" \
    "$out/serve.txt" | head -14
} >>"$summary"
cat "$summary"
