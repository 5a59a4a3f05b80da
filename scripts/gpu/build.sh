#!/usr/bin/env bash
# Builds the CUDA backend and its tests into BUILD_DIR (default: build-gpu), or reuses BUILD_DIR
# as it is when it already holds the GPU test binaries and this machine cannot build (no nvcc,
# cmake or the test dependencies: e.g. a folder built elsewhere and carried to a GPU machine).
#   scripts/gpu/build.sh [BUILD_DIR] [extra cmake args]
# Env: CUDA_ARCHS (default: the local GPU's, e.g. 90a, else 90a;100a;120a;121a), GPU_TARGETS (default:
# the gpu tests and cuda_host_test; "all" builds everything), FOURCAST_GPU_REUSE=1 (never build).
set -euo pipefail
cd "$(dirname "$0")/../.."
dir="${1:-build-gpu}"
[[ $# -gt 0 ]] && shift
tests=(gpu_ops_test gpu_linear_test gpu_golden_test gpu_graph_test)
prebuilt=1
for t in "${tests[@]}"; do [[ -x "$dir/tests/gpu/$t" ]] || prebuilt=0; done
can_build=1
for tool in cmake ninja nvcc; do command -v "$tool" >/dev/null || can_build=0; done
if [[ "${FOURCAST_GPU_REUSE:-0}" == 1 || ($can_build == 0 && $prebuilt == 1) ]]; then
  echo "scripts/gpu/build.sh: reusing the prebuilt $dir"
  exit 0
fi
[[ $can_build == 1 ]] || { echo "scripts/gpu/build.sh: need cmake, ninja and nvcc (or a prebuilt $dir)" >&2; exit 1; }
archs="${CUDA_ARCHS:-}"
if [[ -z "$archs" ]] && command -v nvidia-smi >/dev/null; then
  cc=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')
  [[ -n "$cc" ]] && archs="${cc}a"
fi
archs="${archs:-90a;100a;120a;121a}"
export CCACHE_DIR="${CCACHE_DIR:-$PWD/.ccache}"
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFOURCAST_CUDA=ON \
  "-DCMAKE_CUDA_ARCHITECTURES=$archs" "$@" >/dev/null
if [[ "${GPU_TARGETS:-}" == all ]]; then
  cmake --build "$dir" -j "$(nproc)"
else
  # shellcheck disable=SC2086
  cmake --build "$dir" -j "$(nproc)" --target ${GPU_TARGETS:-${tests[*]} cuda_host_test}
fi
echo "scripts/gpu/build.sh: built $dir (CUDA archs $archs)"
