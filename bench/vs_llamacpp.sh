#!/usr/bin/env bash
# fourcast vs llama.cpp, side by side on one synthetic Gemma 4 checkpoint (issue 18).
#
#   bench/vs_llamacpp.sh [--shape e2b|26b-a4b] [--rounds N] [--threads N] [--decode-tokens N]
#                        [--work DIR] [--build DIR] [--python PY] [--seed S]
#                        [--heads "checkpoint nvfp4 nvfp4+int8"] [--clean-intermediates] [--prepare-only]
#
# Steps (each skipped when its output exists, so a second run only measures):
#  1. llama-cpp-python==0.3.36's source distribution from PyPI (pip download --no-binary), unpacked
#     in WORK (default .llamacpp/, ignored by git); llama.cpp's CPU tools built from its
#     vendor/llama.cpp tree (Release, GGML_NATIVE, no GPU; on CPUs with AMX the same ISA without
#     ggml's AMX matmul, which segfaults there, in WORK/build-noamx): llama-bench, llama-quantize.
#  2. A Python for that tree's convert_hf_to_gguf.py (torch, transformers): --python, else a venv
#     made in WORK/venv with the versions tools/refgen/requirements.txt pins.
#  3. `fourcast synth --shape S --quant modelopt` NVFP4 checkpoint in WORK/models (e2b: and its
#     BF16 twin, same shape and seed); fourcast's own tools built in --build (default build/).
#  4. GGUF. e2b: BF16 straight from convert_hf_to_gguf.py, then llama-quantize to Q4_0 and Q4_K_M.
#     26b-a4b (a BF16 checkpoint, 52 GB, and its Q8_0 GGUF, 27 GB, would not fit beside the rest):
#     bench/gguf_from_nvfp4.py runs llama.cpp's converter on the NVFP4 checkpoint's tensors,
#     dequantized on the fly under the BF16 twin's names and shapes, and writes Q4_0 with gguf-py's
#     numpy Q4_0: that file is the Q4_0 row (every matrix Q4_0, token_embd included, where
#     llama-quantize Q4_0 would give the tied token_embd Q6_K; norms, router, scalars F32), and
#     llama-quantize --allow-requantize makes Q4_K_M from it. Both engines read the same weights.
#  5. Interleaved rounds (llama.cpp Q4_0, Q4_K_M, fourcast NVFP4 with the checkpoint's head, with
#     --lm-head-dtype nvfp4, and that with --cpu-prefill-int8 and --cpu-decode-int8 (--heads
#     HEAD[+int8|+int8p|+int8d] picks); then again), each
#     process in its own scheduler autogroup at nice -15,
#     bracketed by build/bench/bench_bandwidth; one table of medians (bench/vs_llamacpp.py run).
# --clean-intermediates removes the e2b BF16 GGUF the quantized ones were made from and the
# converter's input directory once they are no longer needed; nothing else is ever removed.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHAPE=e2b ROUNDS=3 THREADS=2 DECODE=32 WORK=$ROOT/.llamacpp BUILD=$ROOT/build PY= SEED=1
CLEAN=0 PREPARE_ONLY=0 HEADS="checkpoint nvfp4 nvfp4+int8"
LLAMA_CPP_PYTHON=0.3.36

die() { echo "vs_llamacpp: $*" >&2; exit 1; }
need_value() { [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value"; }
while [[ $# -gt 0 ]]; do
  case $1 in
    --shape) need_value "$@"; SHAPE=$2; shift 2 ;;
    --rounds) need_value "$@"; ROUNDS=$2; shift 2 ;;
    --threads) need_value "$@"; THREADS=$2; shift 2 ;;
    --decode-tokens) need_value "$@"; DECODE=$2; shift 2 ;;
    --work) need_value "$@"; WORK=$(realpath -m "$2"); shift 2 ;;
    --build) need_value "$@"; BUILD=$(realpath -m "$2"); shift 2 ;;
    --python) need_value "$@"; PY=$2; shift 2 ;;
    --seed) need_value "$@"; SEED=$2; shift 2 ;;
    --heads) need_value "$@"; HEADS=$2; shift 2 ;;
    --clean-intermediates) CLEAN=1; shift ;;
    --prepare-only) PREPARE_ONLY=1; shift ;;
    -h|--help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
# Free disk the preparation needs: NEED_GB from nothing, GGUF_GB once the NVFP4 checkpoint exists.
case $SHAPE in
  e2b) OUTTYPE=bf16 NEED_GB=32 GGUF_GB=28 ;;     # NVFP4 4 + synth BF16 10 + GGUF BF16 10 + 2 x Q4 3.5
  26b-a4b) OUTTYPE=q4_0 NEED_GB=50 GGUF_GB=33 ;; # NVFP4 16.5 + converter Q4_0 14.5 + Q4_K_M 16 + margin
  *) die "--shape '$SHAPE' is not e2b or 26b-a4b" ;;
esac
for v in ROUNDS THREADS DECODE; do
  [[ ${!v} =~ ^[0-9]+$ && ${!v} -gt 0 ]] || die "--${v,,} '${!v}' is not a positive integer"
done
[[ $SEED =~ ^[0-9]+$ ]] || die "--seed '$SEED' is not a non-negative integer"

log() { echo "[$(date +%H:%M:%S)] $*"; }
# Fails early, naming the step, when the disk holding WORK has less than $1 GB free.
need_disk() {
  local free_gb
  free_gb=$(df -P -BG "$WORK" | awk 'NR == 2 { sub("G", "", $4); print $4 }')
  [[ $free_gb -ge $1 ]] || die "$2 needs about $1 GB free on $(df -P "$WORK" | awk 'NR==2{print $6}'), $free_gb GB left"
}

mkdir -p "$WORK/models"
MODELS=$WORK/models
log "shape $SHAPE, work $WORK, $ROUNDS rounds, $THREADS threads; disk: $(df -h "$WORK" | awk 'NR==2{print $4 " free of " $2}')"

# --- 1. llama.cpp from llama-cpp-python's sdist -------------------------------------------------
SDIST=$WORK/llama_cpp_python-$LLAMA_CPP_PYTHON.tar.gz
LSRC=$WORK/llama_cpp_python-$LLAMA_CPP_PYTHON/vendor/llama.cpp
LBUILD=$WORK/build
# On CPUs with AMX, GGML_NATIVE compiles ggml's AMX matmul in, and at this tree it segfaults in
# ggml_backend_amx_mul_mat on the Q4_0 / Q4_K_M files here (gdb backtrace, Xeon with AMX-INT8):
# there llama.cpp is built for the same CPU's AVX-512 / VNNI / BF16 without AMX instead.
LLAMA_ISA=(-DGGML_NATIVE=ON)
if grep -qw amx_int8 /proc/cpuinfo; then
  LBUILD=$WORK/build-noamx
  LLAMA_ISA=(-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
    -DGGML_BMI2=ON -DGGML_AVX_VNNI=ON -DGGML_AVX512=ON -DGGML_AVX512_VBMI=ON
    -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF
    -DGGML_AMX_BF16=OFF)
fi
if [[ ! -f $SDIST ]]; then
  log "downloading llama-cpp-python==$LLAMA_CPP_PYTHON (source distribution)"
  python3 -m pip download --no-binary :all: --no-deps "llama-cpp-python==$LLAMA_CPP_PYTHON" -d "$WORK"
fi
if [[ ! -f $LSRC/convert_hf_to_gguf.py ]]; then
  log "unpacking $SDIST"
  tar -xzf "$SDIST" -C "$WORK"
fi
if [[ ! -x $LBUILD/bin/llama-bench || ! -x $LBUILD/bin/llama-quantize ]]; then
  log "building llama-bench and llama-quantize (CPU: ${LLAMA_ISA[*]})"
  cmake -S "$LSRC" -B "$LBUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release "${LLAMA_ISA[@]}" \
    -DGGML_CUDA=OFF -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF >/dev/null
  cmake --build "$LBUILD" -j"$(nproc)" --target llama-bench llama-quantize
fi
LLAMA_BENCH=$LBUILD/bin/llama-bench
LLAMA_QUANTIZE=$LBUILD/bin/llama-quantize

# --- 2. the converter's Python ------------------------------------------------------------------
if [[ -z $PY ]]; then
  PY=$WORK/venv/bin/python
  if [[ ! -x $PY ]] || ! "$PY" -c 'import torch, transformers, safetensors' 2>/dev/null; then
    log "making $WORK/venv for convert_hf_to_gguf.py (torch, transformers; several GB)"
    python3 -m venv "$WORK/venv"
    "$PY" -m pip install -q torch==2.15.0 transformers==5.23.0 safetensors==0.8.0 numpy==2.4.6 \
      tokenizers==0.23.3 huggingface_hub==2.4.0 pyyaml tqdm
  fi
fi
"$PY" -c 'import torch, transformers, safetensors, numpy' ||
  die "--python $PY lacks torch, transformers, safetensors or numpy"
export PYTHONPATH=$LSRC/gguf-py${PYTHONPATH:+:$PYTHONPATH}

# --- 3. fourcast tools and checkpoints ----------------------------------------------------------
FOURCAST=$BUILD/apps/cli/fourcast
BENCH_MODEL=$BUILD/bench/bench_model
PROBE=$BUILD/bench/bench_bandwidth
if [[ ! -x $FOURCAST || ! -x $BENCH_MODEL || ! -x $PROBE ]]; then
  [[ -f $BUILD/build.ninja || -f $BUILD/Makefile ]] ||
    die "$BUILD is not a configured fourcast build (cmake -S . -B build ..., see docs)"
  log "building fourcast, bench_model, bench_bandwidth in $BUILD"
  cmake --build "$BUILD" -j"$(nproc)" --target fourcast bench_model bench_bandwidth
fi
TOKENIZER=$ROOT/tests/fixtures/tokenizer/tokenizer.json
BF16=$MODELS/$SHAPE-bf16
NVFP4=$MODELS/$SHAPE-nvfp4
GGUF_BASE=$MODELS/$SHAPE-$OUTTYPE.gguf
# Seconds since $1 (date +%s) and the load average, for the step timings; a file's size.
took() { echo "$(($(date +%s) - $1)) s, load $(cut -d' ' -f1-3 /proc/loadavg)"; }
size() { du -h "$1" | cut -f1; }
synth() {  # synth DIR [synth flags]: writes DIR once (DIR/.complete marks a finished write)
  local dir=$1 t0; shift
  [[ -f $dir/.complete ]] && return 0
  log "fourcast synth --shape $SHAPE $* -> $dir"
  t0=$(date +%s)
  "$FOURCAST" synth --shape "$SHAPE" --out "$dir" --seed "$SEED" --tokenizer "$TOKENIZER" \
    --threads "$THREADS" "$@"
  touch "$dir/.complete"
  log "synth in $(took "$t0"): $(size "$dir")"
}
GGUFS_DONE=0
[[ -f $MODELS/$SHAPE-Q4_0.gguf && -f $MODELS/$SHAPE-Q4_K_M.gguf ]] && GGUFS_DONE=1
if [[ $GGUFS_DONE == 0 ]]; then
  rm -f "$MODELS/$SHAPE"-*.gguf.tmp  # a broken-off step's output
  if [[ -f $NVFP4/.complete ]]; then
    need_disk $GGUF_GB "the $SHAPE GGUFs"
  else
    need_disk $NEED_GB "the $SHAPE checkpoints and GGUFs"
  fi
fi
if [[ $OUTTYPE != q4_0 && $GGUFS_DONE == 0 && ! -f $GGUF_BASE ]]; then synth "$BF16"; fi
synth "$NVFP4" --quant modelopt

# --- 4. GGUF conversion and quantization --------------------------------------------------------
CONV=$MODELS/$SHAPE-for-gguf
if [[ $OUTTYPE == q4_0 ]]; then
  # The converter's Q4_0 is the Q4_0 GGUF itself (see the top of this file).
  GGUF_BASE=$MODELS/$SHAPE-Q4_0.gguf
  if [[ ! -f $GGUF_BASE ]]; then
    "$PY" "$ROOT/bench/vs_llamacpp.py" convert-dir --config-only "$NVFP4" "$CONV"
    log "gguf_from_nvfp4.py convert --outtype q4_0 $NVFP4 -> $GGUF_BASE"
    t0=$(date +%s)
    "$PY" "$ROOT/bench/gguf_from_nvfp4.py" convert --llama-cpp "$LSRC" --outtype q4_0 "$NVFP4" \
      "$CONV" "$GGUF_BASE.tmp"
    mv "$GGUF_BASE.tmp" "$GGUF_BASE"
    log "converted in $(took "$t0"): $(size "$GGUF_BASE")"
  fi
elif [[ ! -f $GGUF_BASE && $GGUFS_DONE == 0 ]]; then
  "$PY" "$ROOT/bench/vs_llamacpp.py" convert-dir "$BF16" "$CONV"
  log "convert_hf_to_gguf.py --outtype $OUTTYPE -> $GGUF_BASE"
  t0=$(date +%s)
  "$PY" "$LSRC/convert_hf_to_gguf.py" "$CONV" --outtype "$OUTTYPE" --outfile "$GGUF_BASE.tmp"
  mv "$GGUF_BASE.tmp" "$GGUF_BASE"
  log "converted in $(took "$t0"): $(size "$GGUF_BASE")"
fi
for Q in Q4_0 Q4_K_M; do
  out=$MODELS/$SHAPE-$Q.gguf
  [[ -f $out ]] && continue
  log "llama-quantize $Q -> $out"
  requant=()
  [[ $OUTTYPE == q4_0 ]] && requant=(--allow-requantize)  # from Q4_0: there is no BF16 GGUF
  t0=$(date +%s)
  "$LLAMA_QUANTIZE" "${requant[@]}" "$GGUF_BASE" "$out.tmp" "$Q" "$THREADS"
  mv "$out.tmp" "$out"
  log "quantized in $(took "$t0"): $(size "$out")"
done
if [[ $CLEAN == 1 ]]; then
  if [[ $OUTTYPE == q4_0 ]]; then
    log "--clean-intermediates: removing $CONV"
  else
    log "--clean-intermediates: removing $GGUF_BASE and $CONV"
    rm -f "$GGUF_BASE"
  fi
  rm -rf "$CONV"
fi
[[ $PREPARE_ONLY == 1 ]] && { log "--prepare-only: done"; exit 0; }

# --- 5. interleaved rounds and the table --------------------------------------------------------
GGUF_ARGS=()
for Q in Q4_0 Q4_K_M; do
  f=$MODELS/$SHAPE-$Q.gguf
  b=$("$PY" "$ROOT/bench/vs_llamacpp.py" gguf-bytes --total "$f")
  log "$Q: $("$PY" "$ROOT/bench/vs_llamacpp.py" gguf-bytes "$f")"
  GGUF_ARGS+=(--gguf "$Q" "$f" "$b")
done
RUNLOG=$WORK/vs_llamacpp-$SHAPE-$(date +%Y%m%d-%H%M%S).log
log "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'); flags: $(grep -m1 '^flags' /proc/cpuinfo | grep -o -w -E 'avx2|fma|f16c|avx512f|avx512_bf16|avx_vnni|amx_tile' | tr '\n' ' ')"
log "llama.cpp: $("$LLAMA_BENCH" --version 2>&1 | head -1); log of every run: $RUNLOG"
python3 "$ROOT/bench/vs_llamacpp.py" run --llama-bench "$LLAMA_BENCH" --bench-model "$BENCH_MODEL" \
  --probe "$PROBE" --nvfp4 "$NVFP4" "${GGUF_ARGS[@]}" --rounds "$ROUNDS" --threads "$THREADS" \
  --decode-tokens "$DECODE" --log "$RUNLOG" --heads $HEADS
