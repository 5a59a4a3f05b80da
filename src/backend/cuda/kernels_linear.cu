// CUDA-core linear kernels (small T: decode, verification, the SIMT fallback) and MoE routing.
// Block = kLinWarps warps; warp w of block (bx, by) owns output column n = bx·kLinWarps + w for
// the token rows [by·kLinTokens, +kLinTokens); lanes stride over K and keep one fp32 accumulator
// per token row, reduced across the warp at the end. Weights are read once per token tile, which
// is the whole cost at decode (memory-bound: one pass over W).
#include <cuda_bf16.h>

#include "backend/cuda/kernel_common.cuh"

namespace fc::cuda {
namespace {

template <WDType DT>
__device__ __forceinline__ float ld_w(const void* base, int64_t i) {
  if constexpr (DT == WDType::kBF16)
    return bf16_f32(static_cast<const uint16_t*>(base)[i]);
  else if constexpr (DT == WDType::kF16)
    return f16_f32(static_cast<const uint16_t*>(base)[i]);
  else
    return static_cast<const float*>(base)[i];
}

template <WDType DT>
__global__ void __launch_bounds__(kLinWarps * 32)
    linear_simt_kernel(const float* x, int64_t T, int64_t ldx, const void* w, int64_t N, int64_t K,
                       int64_t ldw, float* y, int64_t ldy, bool accumulate) {
  const auto [lane, n, t0, nt] = lin_tile(T);
  if (n >= N) return;
  float a[kLinTokens] = {};
  const int64_t wrow = n * ldw;
  for (int64_t k = lane; k < K; k += 32) {
    const float wv = ld_w<DT>(w, wrow + k);
#pragma unroll
    for (int r = 0; r < kLinTokens; ++r)
      if (r < nt) a[r] = fmaf(x[(t0 + r) * ldx + k], wv, a[r]);
  }
  store_token_sums(y, ldy, t0, nt, n, a, accumulate, lane);
}

// NVFP4 W4A16: lane handles 16-element blocks b = lane, lane + 32, ...; W[n, k] =
// e2m1(code) · (e4m3(scale) · gscale), the CPU's dequantization order, exact in fp32.
__global__ void __launch_bounds__(kLinWarps * 32)
    linear_nvfp4_kernel(const float* x, int64_t T, int64_t ldx, const uint8_t* codes, int64_t ld,
                        const uint8_t* scales, int64_t sld, float gscale, int64_t N, int64_t K,
                        float* y, int64_t ldy, bool accumulate, bool aligned8) {
  const auto [lane, n, t0, nt] = lin_tile(T);
  if (n >= N) return;
  float a[kLinTokens] = {};
  const uint8_t* crow = codes + n * ld;
  const uint8_t* srow = scales + n * sld;
  for (int64_t b = lane; b < K / 16; b += 32) {
    uint32_t lo, hi;  // the 8 code bytes of the block: elements 2j (low nibble), 2j+1
    if (aligned8) {
      const uint2 v = *reinterpret_cast<const uint2*>(crow + b * 8);
      lo = v.x;
      hi = v.y;
    } else {
      const uint8_t* c = crow + b * 8;
      lo = c[0] | (c[1] << 8) | (c[2] << 16) | (uint32_t{c[3]} << 24);
      hi = c[4] | (c[5] << 8) | (c[6] << 16) | (uint32_t{c[7]} << 24);
    }
    const float sc = e4m3_f32(srow[b]) * gscale;
    float wv[16];
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      wv[j] = e2m1_f32(lo >> (4 * j)) * sc;
      wv[8 + j] = e2m1_f32(hi >> (4 * j)) * sc;
    }
#pragma unroll
    for (int r = 0; r < kLinTokens; ++r) {
      if (r >= nt) continue;
      const float* xr = x + (t0 + r) * ldx + b * 16;
      float sum = a[r];
#pragma unroll
      for (int j = 0; j < 16; ++j) sum = fmaf(xr[j], wv[j], sum);
      a[r] = sum;
    }
  }
  store_token_sums(y, ldy, t0, nt, n, a, accumulate, lane);
}

constexpr int kMaxTopK = 32;

// Gemma 4 routing, one thread per token: softmax in fp32 (max, exp, sum in ascending expert
// order as the CPU), top-k by repeated selection (probability descending, ties to the lower id),
// weights renormalised over the k picks and multiplied by per_expert_scale.
__global__ void moe_route_kernel(const float* logits, int64_t ldl, int64_t T, int E, int k,
                                 const void* pes, WDType pes_dt, int32_t* idx, float* weights) {
  const int64_t t = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  if (t >= T) return;
  const float* z = logits + t * ldl;
  float mx = z[0];
  for (int e = 1; e < E; ++e) mx = fmaxf(mx, z[e]);
  float sum = 0.0f;
  for (int e = 0; e < E; ++e) sum += expf(z[e] - mx);
  float ps[kMaxTopK];
  int prev_e = -1;
  float prev_p = 0.0f;
  for (int j = 0; j < k; ++j) {
    int best = -1;
    float bp = 0.0f;
    for (int e = 0; e < E; ++e) {
      const float pr = expf(z[e] - mx) / sum;
      const bool after_prev = j == 0 || pr < prev_p || (pr == prev_p && e > prev_e);
      if (after_prev && (best < 0 || pr > bp)) {  // ascending e: ties keep the lower id
        best = e;
        bp = pr;
      }
    }
    idx[t * k + j] = best;
    ps[j] = bp;
    prev_e = best;
    prev_p = bp;
  }
  float top = 0.0f;
  for (int j = 0; j < k; ++j) top += ps[j];
  for (int j = 0; j < k; ++j) {
    const int e = idx[t * k + j];
    float sc;
    if (pes_dt == WDType::kBF16)
      sc = bf16_f32(static_cast<const uint16_t*>(pes)[e]);
    else if (pes_dt == WDType::kF16)
      sc = f16_f32(static_cast<const uint16_t*>(pes)[e]);
    else
      sc = static_cast<const float*>(pes)[e];
    weights[t * k + j] = ps[j] / top * sc;
  }
}

}  // namespace

void launch_linear_simt(const float* x, int64_t T, int64_t ldx, const void* w, WDType wdt,
                        int64_t N, int64_t K, int64_t ldw, float* y, int64_t ldy, bool accumulate,
                        cudaStream_t s) {
  if (T <= 0 || N <= 0) return;
  const Grid2 g = linear_grid(T, N);
  const dim3 grid(static_cast<unsigned>(g.x), static_cast<unsigned>(g.y));
  switch (wdt) {
    case WDType::kBF16:
      linear_simt_kernel<WDType::kBF16>
          <<<grid, kLinWarps * 32, 0, s>>>(x, T, ldx, w, N, K, ldw, y, ldy, accumulate);
      break;
    case WDType::kF16:
      linear_simt_kernel<WDType::kF16>
          <<<grid, kLinWarps * 32, 0, s>>>(x, T, ldx, w, N, K, ldw, y, ldy, accumulate);
      break;
    default:
      linear_simt_kernel<WDType::kF32>
          <<<grid, kLinWarps * 32, 0, s>>>(x, T, ldx, w, N, K, ldw, y, ldy, accumulate);
  }
}

void launch_linear_nvfp4(const float* x, int64_t T, int64_t ldx, const uint8_t* codes, int64_t ld,
                         const uint8_t* scales, int64_t scale_ld, float gscale, int64_t N,
                         int64_t K, float* y, int64_t ldy, bool accumulate, cudaStream_t s) {
  if (T <= 0 || N <= 0) return;
  const Grid2 g = linear_grid(T, N);
  const bool aligned8 = ld % 8 == 0 && reinterpret_cast<uintptr_t>(codes) % 8 == 0;
  linear_nvfp4_kernel<<<dim3(static_cast<unsigned>(g.x), static_cast<unsigned>(g.y)),
                        kLinWarps * 32, 0, s>>>(x, T, ldx, codes, ld, scales, scale_ld, gscale, N,
                                                K, y, ldy, accumulate, aligned8);
}

void launch_moe_route(const float* logits, int64_t ldl, int64_t T, int E, int k, const void* pes,
                      WDType pes_dt, int32_t* idx, float* weights, cudaStream_t s) {
  if (T <= 0) return;
  const unsigned blocks = static_cast<unsigned>((T + 127) / 128);
  moe_route_kernel<<<blocks, 128, 0, s>>>(logits, ldl, T, E, k, pes, pes_dt, idx, weights);
}

}  // namespace fc::cuda
