#!/usr/bin/env bash
# Makes the prebuilt bundle the GPU first-light check runs (scripts/gpu/device-check.sh), here,
# where nvcc and the Debian build dependencies are: sm_90a only (H100/H200), only the binaries the
# check needs, stripped; the CUDA runtime is linked statically (CMake's cudart_static); cuBLAS
# comes from the device machine's CUDA toolkit. Shared libraries the binaries load that a bare CUDA
# image may lack (cpp-httplib, OpenSSL, media codecs, ...) are copied into gpu-bundle/lib (the
# check puts it on LD_LIBRARY_PATH for our binaries only). Prints the bundle's size and the size of
# what a device call carries (the working tree plus the bundle must stay under 64 MiB).
#   scripts/gpu/bundle.sh [BUILD_DIR]        (default build-bundle; output: gpu-bundle/)
# Carry it with the device tool: run(command="scripts/gpu/device-check.sh", carry=["gpu-bundle"]).
set -euo pipefail
cd "$(dirname "$0")/../.."
dir="${1:-build-bundle}"
export CCACHE_DIR="${CCACHE_DIR:-$PWD/.ccache}"
bins=(fourcast bench_gpu gpu_ops_test gpu_linear_test gpu_golden_test gpu_graph_test)
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFOURCAST_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES=90a >/dev/null
cmake --build "$dir" -j "$(nproc)" --target "${bins[@]}"
out=gpu-bundle
rm -rf "$out"
mkdir -p "$out/bin" "$out/lib"
for b in "${bins[@]}"; do
  f=$(find "$dir" -type f -name "$b" -perm -u+x | head -1)
  [[ -n "$f" ]] || { echo "bundle.sh: $b was not built" >&2; exit 1; }
  cp "$f" "$out/bin/$b"
  strip --strip-unneeded "$out/bin/$b"  # symbols and debug info; the CUDA fatbins stay
done
# Shared libraries beyond glibc, the C++ runtime and the CUDA driver/toolkit libraries.
keep='^(linux-vdso|ld-linux|libc\.|libm\.|libpthread|libdl\.|librt\.|libstdc\+\+|libgcc_s|libcuda\.|libcudart|libcublas|libcublasLt|libnvidia)'
for b in "$out"/bin/*; do
  ldd "$b" | awk '/=> \//{print $1, $3}' | while read -r name path; do
    [[ "$name" =~ $keep ]] && continue
    cp -L -n "$path" "$out/lib/$name"
  done
done
{
  echo "built $(date -u +%FT%TZ) from $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo +changes)"
  echo "CUDA architectures: 90a"
  (cd "$out" && find . -type f -printf '%10s %p\n' | sort -k2)
} >"$out/MANIFEST"
tree_bytes=$(git ls-files -z --cached --others --exclude-standard | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
bundle_bytes=$(du -sb "$out" | cut -f1)
total=$((tree_bytes + bundle_bytes))
printf 'bundle %s: %.1f MiB; working tree %.1f MiB; carried in all %.1f MiB (limit 64 MiB)\n' \
  "$out" "$(echo "$bundle_bytes/1048576" | bc -l)" "$(echo "$tree_bytes/1048576" | bc -l)" \
  "$(echo "$total/1048576" | bc -l)"
if ((total > 64 * 1048576)); then
  echo "bundle.sh: over the 64 MiB a device call carries" >&2
  exit 1
fi
