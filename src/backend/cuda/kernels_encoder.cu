// Encoder (vision tower) kernels: segment attention, patch-grid pooling, standardize.
// Segment attention: block (row t, head h), 4 warps split the segment's keys with an online
// softmax each (as kernels_attention.cu), merged through shared memory; fp32 throughout.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "backend/cuda/device_math.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/plan.h"

namespace fc::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kAttnThreads / 32;
constexpr int kChunks = kAttnMaxHeadDim / 32;

unsigned grid_for(int64_t total) {
  const int64_t b = (total + kThreads - 1) / kThreads;
  return static_cast<unsigned>(b < 1 ? 1 : (b > (1 << 20) ? (1 << 20) : b));
}

__device__ __forceinline__ float load_w(const void* p, WDType dt, int64_t i) {
  switch (dt) {
    case WDType::kBF16:
      return bf16_f32(static_cast<const uint16_t*>(p)[i]);
    case WDType::kF16:
      return f16_f32(static_cast<const uint16_t*>(p)[i]);
    default:
      return static_cast<const float*>(p)[i];
  }
}

__global__ void __launch_bounds__(kAttnThreads) segment_attention_kernel(SegAttnParams p) {
  const int64_t t = blockIdx.x;
  const int h = blockIdx.y;
  // The segment holding row t (segments are few: a linear scan).
  int s = 0;
  while (s + 1 < p.n_segments && p.seg[s + 1] <= t) ++s;
  const int b = p.seg[s], e = p.seg[s + 1];
  const int D = p.head_dim;
  const int64_t g = h / (p.n_heads / p.n_kv_heads);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  __shared__ float qs[kAttnMaxHeadDim];
  __shared__ float wacc[kWarps][kAttnMaxHeadDim];
  __shared__ float wm[kWarps], wl[kWarps];
  for (int d = threadIdx.x; d < D; d += blockDim.x) qs[d] = p.q[t * p.ldq + int64_t{h} * D + d];
  __syncthreads();
  float m = -INFINITY, l = 0.0f, acc[kChunks];
#pragma unroll
  for (int c = 0; c < kChunks; ++c) acc[c] = 0.0f;
  for (int j = b + warp; j < e; j += kWarps) {
    const float* kr = p.k + j * p.ldk + g * D;
    const float* vr = p.v + j * p.ldv + g * D;
    float dot = 0.0f;
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      const int d = lane + 32 * c;
      if (d < D) dot = fmaf(qs[d], kr[d], dot);
    }
    for (int o = 16; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
    const float sc = dot * p.scale;
    const float m_new = fmaxf(m, sc);
    const float corr = expf(m - m_new);
    const float pj = expf(sc - m_new);
    l = l * corr + pj;
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      const int d = lane + 32 * c;
      if (d < D) acc[c] = acc[c] * corr + pj * vr[d];
    }
    m = m_new;
  }
  if (lane == 0) {
    wm[warp] = m;
    wl[warp] = l;
  }
#pragma unroll
  for (int c = 0; c < kChunks; ++c) {
    const int d = lane + 32 * c;
    if (d < D) wacc[warp][d] = acc[c];
  }
  __syncthreads();
  float M = -INFINITY;
  for (int w = 0; w < kWarps; ++w) M = fmaxf(M, wm[w]);
  float L = 0.0f, f[kWarps];
  for (int w = 0; w < kWarps; ++w) {
    f[w] = wl[w] > 0.0f ? expf(wm[w] - M) : 0.0f;
    L += wl[w] * f[w];
  }
  float* out = p.out + t * p.ldo + int64_t{h} * D;
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float o = 0.0f;
    for (int w = 0; w < kWarps; ++w) o += wacc[w][d] * f[w];
    out[d] = o / L;
  }
}

// One thread per (output slot, column): Σ over the k×k window, row-major, each term × 1/k².
__global__ void avg_pool_kernel(const float* x, int64_t ldx, int grid_w, int k, int64_t n_slots,
                                int ow, int64_t n, float scale, float* out, int64_t ldo) {
  const float w = 1.0f / static_cast<float>(k * k);
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n_slots * n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t slot = i / n, col = i % n;
    const int r = static_cast<int>(slot / ow), c = static_cast<int>(slot % ow);
    float s = 0.0f;
    for (int dy = 0; dy < k; ++dy)
      for (int dx = 0; dx < k; ++dx)
        s += x[(int64_t{r * k + dy} * grid_w + c * k + dx) * ldx + col] * w;
    out[slot * ldo + col] = s * scale;
  }
}

__global__ void sub_mul_kernel(float* x, int64_t ldx, int64_t T, int64_t n, const void* sub,
                               WDType sdt, const void* mul, WDType mdt) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < T * n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t c = i % n;
    float& v = x[(i / n) * ldx + c];
    v = (v - load_w(sub, sdt, c)) * load_w(mul, mdt, c);
  }
}

}  // namespace

void launch_attention_segments(const SegAttnParams& p, cudaStream_t s) {
  if (p.total_rows <= 0 || p.n_heads <= 0) return;
  const dim3 grid(static_cast<unsigned>(p.total_rows), static_cast<unsigned>(p.n_heads));
  segment_attention_kernel<<<grid, kAttnThreads, 0, s>>>(p);
}

void launch_avg_pool(const float* x, int64_t ldx, int grid_h, int grid_w, int k, int64_t n,
                     float scale, float* out, int64_t ldo, cudaStream_t s) {
  const int ow = grid_w / k;
  const int64_t slots = int64_t{grid_h / k} * ow;
  if (slots * n > 0)
    avg_pool_kernel<<<grid_for(slots * n), kThreads, 0, s>>>(x, ldx, grid_w, k, slots, ow, n, scale,
                                                             out, ldo);
}

void launch_sub_mul(float* x, int64_t ldx, int64_t T, int64_t n, const void* sub, WDType sub_dt,
                    const void* mul, WDType mul_dt, cudaStream_t s) {
  if (T * n > 0)
    sub_mul_kernel<<<grid_for(T * n), kThreads, 0, s>>>(x, ldx, T, n, sub, sub_dt, mul, mul_dt);
}

}  // namespace fc::cuda
