// Paged attention for decode and prefill (one kernel): block (s, h, z) handles the query rows
// i = z, z + gridDim.z, ... of sequence s for query head h. Its 4 warps split the keys of a row
// (warp w takes keys lo + w, lo + w + 4, ...), each warp keeps an online softmax (running max m,
// sum l, and the weighted V sum for the head_dim elements d = lane + 32·c, c < 16, in registers),
// and the four partial states are merged through shared memory. head_dim <= 512, any GQA ratio,
// sliding window, F32 / BF16 / FP8 E4M3 caches (FP8: K and V scales applied to the dot product and
// the output). Numerics: fp32 throughout; only the summation order differs from attention_ref.
#include <cuda_bf16.h>

#include "backend/cuda/device_math.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/plan.h"

namespace fc::cuda {
namespace {

constexpr int kWarps = kAttnThreads / 32;
constexpr int kChunks = kAttnMaxHeadDim / 32;  // head_dim elements per lane, at most

template <WDType DT>
__device__ __forceinline__ float ld_kv(const void* base, int64_t i) {
  if constexpr (DT == WDType::kBF16)
    return bf16_f32(static_cast<const uint16_t*>(base)[i]);
  else if constexpr (DT == WDType::kFP8)
    return e4m3_f32(static_cast<const uint8_t*>(base)[i]);
  else
    return static_cast<const float*>(base)[i];
}

template <WDType DT>
__global__ void __launch_bounds__(kAttnThreads) attention_kernel(AttnParams p) {
  const int s = blockIdx.x, h = blockIdx.y;
  const int nq = p.n_q[s];
  if (static_cast<int>(blockIdx.z) >= nq) return;
  const int qb = p.q_begin[s], p0 = p.pos0[s];
  const int32_t* table = p.block_tables + p.table_offset[s];
  const int D = p.head_dim, B = p.block_size;
  const int g = h / (p.n_heads / p.n_kv_heads);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const float kmul = (DT == WDType::kFP8 ? p.k_scale : 1.0f) * p.scale;
  const float vmul = DT == WDType::kFP8 ? p.v_scale : 1.0f;

  __shared__ float qs[kAttnMaxHeadDim];
  __shared__ float wacc[kWarps][kAttnMaxHeadDim];
  __shared__ float wm[kWarps], wl[kWarps];

  for (int i = blockIdx.z; i < nq; i += gridDim.z) {
    const int64_t t = qb + i;
    const int pos = p0 + i;
    const int lo = p.sliding_window > 0 ? max(0, pos - p.sliding_window + 1) : 0;
    const int hi = p.kv_limit ? max(pos, p.kv_limit[t]) : pos;  // image blocks see ahead
    __syncthreads();  // the previous row is done with qs / wacc
    for (int d = threadIdx.x; d < D; d += blockDim.x) qs[d] = p.q[t * p.ldq + int64_t{h} * D + d];
    __syncthreads();

    float m = -INFINITY, l = 0.0f, acc[kChunks];
#pragma unroll
    for (int c = 0; c < kChunks; ++c) acc[c] = 0.0f;
    for (int j = lo + warp; j <= hi; j += kWarps) {
      const int64_t slot = int64_t{table[j / B]} * B + j % B;
      const int64_t row = (slot * p.n_kv_heads + g) * D;
      float dot = 0.0f;
#pragma unroll
      for (int c = 0; c < kChunks; ++c) {
        const int d = lane + 32 * c;
        if (d < D) dot = fmaf(qs[d], ld_kv<DT>(p.k_cache, row + d), dot);
      }
      for (int o = 16; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
      const float sc = dot * kmul;
      const float m_new = fmaxf(m, sc);
      const float corr = expf(m - m_new);  // 0 on the first key (m = -inf)
      const float pj = expf(sc - m_new);
      l = l * corr + pj;
#pragma unroll
      for (int c = 0; c < kChunks; ++c) {
        const int d = lane + 32 * c;
        if (d < D) acc[c] = acc[c] * corr + pj * ld_kv<DT>(p.v_cache, row + d);
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
      f[w] = wl[w] > 0.0f ? expf(wm[w] - M) : 0.0f;  // warps that saw no key contribute nothing
      L += wl[w] * f[w];
    }
    const float inv = vmul / L;
    float* out = p.out + t * p.ldo + int64_t{h} * D;
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
      float o = 0.0f;
      for (int w = 0; w < kWarps; ++w) o += wacc[w][d] * f[w];
      out[d] = o * inv;
    }
  }
}

}  // namespace

void launch_attention(const AttnParams& p, cudaStream_t s) {
  if (p.n_seqs <= 0 || p.n_heads <= 0) return;
  const dim3 grid(static_cast<unsigned>(p.n_seqs), static_cast<unsigned>(p.n_heads),
                  static_cast<unsigned>(attention_row_splits(p.n_seqs, p.n_heads)));
  switch (p.kv) {
    case WDType::kBF16:
      attention_kernel<WDType::kBF16><<<grid, kAttnThreads, 0, s>>>(p);
      break;
    case WDType::kFP8:
      attention_kernel<WDType::kFP8><<<grid, kAttnThreads, 0, s>>>(p);
      break;
    default:
      attention_kernel<WDType::kF32><<<grid, kAttnThreads, 0, s>>>(p);
  }
}

}  // namespace fc::cuda
