// Device helpers shared by the CUDA kernel files (nvcc only): grid sizing for grid-stride loops,
// a weight load by dtype, warp reductions, and the store of a linear kernel's per-token sums.
#pragma once

#include <cstdint>

#include "backend/cuda/device_math.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/plan.h"

namespace fc::cuda {

// Threads per block of the element-wise and small kernels.
constexpr int kElemThreads = 256;

// Blocks for a grid-stride loop over `total` items, at least 1 and capped at 2^20 (each thread
// then loops over several items).
inline unsigned grid_for(int64_t total) {
  const int64_t b = (total + kElemThreads - 1) / kElemThreads;
  return static_cast<unsigned>(b < 1 ? 1 : (b > (1 << 20) ? (1 << 20) : b));
}

// Element i of a weight array of dtype dt, as fp32 (exact for every dtype).
__device__ __forceinline__ float load_w(const void* p, WDType dt, int64_t i) {
  switch (dt) {
    case WDType::kBF16:
      return bf16_f32(static_cast<const uint16_t*>(p)[i]);
    case WDType::kF16:
      return f16_f32(static_cast<const uint16_t*>(p)[i]);
    case WDType::kFP8:
      return e4m3_f32(static_cast<const uint8_t*>(p)[i]);
    default:
      return static_cast<const float*>(p)[i];
  }
}

// Sum of v over the 32 lanes of a warp (every lane gets it).
__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Where a thread of a warp-per-output-row linear kernel works (grid (ceil(N / kLinWarps),
// ceil(T / kLinTokens)), kLinWarps warps per block): its lane, the output row n of its warp
// (may be >= N in the last block), the first token t0 of the block's tile and the tile's valid
// token count nt (<= kLinTokens).
struct LinTile {
  int lane;
  int64_t n;
  int64_t t0;
  int nt;
};
__device__ __forceinline__ LinTile lin_tile(int64_t T) {
  const int64_t t0 = int64_t{blockIdx.y} * kLinTokens;
  return {static_cast<int>(threadIdx.x & 31), int64_t{blockIdx.x} * kLinWarps + (threadIdx.x >> 5),
          t0, static_cast<int>(T - t0 < kLinTokens ? T - t0 : kLinTokens)};
}

// The end of a warp-per-output-row linear kernel: a[r] holds the lane's partial sum for token
// t0 + r of row n; lane 0 writes (or adds) the warp's total for the nt valid tokens.
__device__ __forceinline__ void store_token_sums(float* y, int64_t ldy, int64_t t0, int nt,
                                                 int64_t n, const float* a, bool accumulate,
                                                 int lane) {
#pragma unroll
  for (int r = 0; r < kLinTokens; ++r) {
    const float v = warp_sum(a[r]);
    if (lane == 0 && r < nt) {
      float* o = y + (t0 + r) * ldy + n;
      *o = accumulate ? *o + v : v;
    }
  }
}

}  // namespace fc::cuda
