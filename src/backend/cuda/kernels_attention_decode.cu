// Decode attention (every sequence brings one query) split over the keys (flash-decoding).
//
// Kernel 1: block (s, kv head · head chunk, split) owns up to kAttnSplitHeads query heads of one
// GQA group, so each K/V row is read once for all of them. The keys of sequence s, [lo, pos], are
// cut into `splits` equal ranges; warp w of a block walks keys k0 + w, k0 + w + 4, ... of its range
// with an online softmax per head (running max m, sum l, the weighted V sum of the lane's
// head_dim elements in registers) and writes its state as one partial.
// Lanes read K/V rows in 16-byte pieces: lane l holds elements [(c·32 + l)·E, +E) for chunks c,
// E = 16 / sizeof(element) (F32 4, BF16 8, FP8 16), so a warp moves 512 contiguous bytes per load.
// Kernel 2: block (s, h) merges the splits · 4 partials of head h: out = Σ acc_p e^(m_p - M) /
// Σ l_p e^(m_p - M) (times v_scale for FP8).
// Numerics: fp32 throughout, as attention_kernel; only the summation order differs.
#include <cuda_bf16.h>

#include "backend/cuda/device_math.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/plan.h"

namespace fc::cuda {
namespace {

constexpr int kWarps = kAttnThreads / 32;
constexpr int kHeads = kAttnSplitHeads;
constexpr int kLaneElems = 16;  // head_dim elements per lane at most (512 / 32)

template <WDType DT>
struct KvElem {
  static constexpr int bytes = DT == WDType::kF32 ? 4 : (DT == WDType::kBF16 ? 2 : 1);
  static constexpr int per16 = 16 / bytes;  // elements per 16-byte load
};

// The E elements of one 16-byte piece as fp32.
template <WDType DT>
__device__ __forceinline__ void load16(const void* base, int64_t elem, float* out) {
  const uint4 v =
      *reinterpret_cast<const uint4*>(static_cast<const uint8_t*>(base) + elem * KvElem<DT>::bytes);
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
  if constexpr (DT == WDType::kF32) {
#pragma unroll
    for (int i = 0; i < 4; ++i) out[i] = bits_f32(w[i]);
  } else if constexpr (DT == WDType::kBF16) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      out[2 * i] = bf16_f32(static_cast<uint16_t>(w[i] & 0xffffu));
      out[2 * i + 1] = bf16_f32(static_cast<uint16_t>(w[i] >> 16));
    }
  } else {
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int b = 0; b < 4; ++b) out[4 * i + b] = e4m3_f32(static_cast<uint8_t>(w[i] >> (8 * b)));
  }
}

template <WDType DT>
__global__ void __launch_bounds__(kAttnThreads)
    attention_decode_split_kernel(AttnParams p, int splits, int head_chunks, float* part) {
  constexpr int E = KvElem<DT>::per16;
  constexpr int NC = kLaneElems / E;  // 16-byte pieces per lane
  const int s = blockIdx.x;
  if (p.n_q[s] < 1) return;  // a padding sequence (CUDA-graph buckets)
  const int hk = blockIdx.y / head_chunks, hc = blockIdx.y % head_chunks;
  const int G = p.n_heads / p.n_kv_heads;
  const int h0 = hk * G + hc * kHeads;
  const int nh = min(kHeads, G - hc * kHeads);
  const int split = blockIdx.z;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int D = p.head_dim, B = p.block_size;
  const int64_t t = p.q_begin[s];
  const int pos = p.pos0[s];
  const int lo = p.sliding_window > 0 ? max(0, pos - p.sliding_window + 1) : 0;
  const int per = (pos - lo + 1 + splits - 1) / splits;
  const int k0 = lo + split * per, k1 = min(pos + 1, k0 + per);
  const int32_t* table = p.block_tables + p.table_offset[s];
  const float kmul = (DT == WDType::kFP8 ? p.k_scale : 1.0f) * p.scale;

  __shared__ float qs[kHeads][kAttnMaxHeadDim];
  for (int i = 0; i < nh; ++i)
    for (int d = threadIdx.x; d < D; d += blockDim.x)
      qs[i][d] = p.q[t * p.ldq + int64_t{h0 + i} * D + d];
  __syncthreads();

  float m[kHeads], l[kHeads], acc[kHeads][kLaneElems];
#pragma unroll
  for (int i = 0; i < kHeads; ++i) {
    m[i] = -INFINITY;
    l[i] = 0.0f;
#pragma unroll
    for (int e = 0; e < kLaneElems; ++e) acc[i][e] = 0.0f;
  }
  for (int j = k0 + warp; j < k1; j += kWarps) {
    const int64_t slot = int64_t{table[j / B]} * B + j % B;
    const int64_t row = (slot * p.n_kv_heads + hk) * D;
    float kf[kLaneElems];
#pragma unroll
    for (int c = 0; c < NC; ++c) {
      const int d0 = (c * 32 + lane) * E;
      if (d0 < D) {
        load16<DT>(p.k_cache, row + d0, kf + c * E);
      } else {
#pragma unroll
        for (int e = 0; e < E; ++e) kf[c * E + e] = 0.0f;
      }
    }
    float dot[kHeads];
#pragma unroll
    for (int i = 0; i < kHeads; ++i) {
      float sum = 0.0f;
      if (i < nh) {
#pragma unroll
        for (int c = 0; c < NC; ++c) {
          const int d0 = (c * 32 + lane) * E;
          if (d0 < D) {
#pragma unroll
            for (int e = 0; e < E; ++e) sum = fmaf(qs[i][d0 + e], kf[c * E + e], sum);
          }
        }
      }
      for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
      dot[i] = sum;
    }
    float vf[kLaneElems];
#pragma unroll
    for (int c = 0; c < NC; ++c) {
      const int d0 = (c * 32 + lane) * E;
      if (d0 < D) {
        load16<DT>(p.v_cache, row + d0, vf + c * E);
      } else {
#pragma unroll
        for (int e = 0; e < E; ++e) vf[c * E + e] = 0.0f;
      }
    }
#pragma unroll
    for (int i = 0; i < kHeads; ++i) {
      if (i >= nh) continue;
      const float sc = dot[i] * kmul;
      const float m_new = fmaxf(m[i], sc);
      const float corr = expf(m[i] - m_new);  // 0 on the first key (m = -inf)
      const float pj = expf(sc - m_new);
      l[i] = l[i] * corr + pj;
#pragma unroll
      for (int e = 0; e < kLaneElems; ++e) acc[i][e] = acc[i][e] * corr + pj * vf[e];
      m[i] = m_new;
    }
  }
  // Partial (s, h, split · 4 + warp): [m, l, acc[0..D)].
  const int P = splits * kWarps;
  for (int i = 0; i < nh; ++i) {
    float* st = part + ((int64_t{s} * p.n_heads + h0 + i) * P + split * kWarps + warp) * (D + 2);
    if (lane == 0) {
      st[0] = m[i];
      st[1] = l[i];
    }
#pragma unroll
    for (int c = 0; c < NC; ++c) {
      const int d0 = (c * 32 + lane) * E;
      if (d0 < D) {
#pragma unroll
        for (int e = 0; e < E; ++e) st[2 + d0 + e] = acc[i][c * E + e];
      }
    }
  }
}

__global__ void attention_decode_merge_kernel(AttnParams p, int splits, const float* part) {
  const int s = blockIdx.x, h = blockIdx.y;
  if (p.n_q[s] < 1) return;
  const int D = p.head_dim, P = splits * kWarps;
  const float* base = part + (int64_t{s} * p.n_heads + h) * P * (D + 2);
  float M = -INFINITY;
  for (int i = 0; i < P; ++i)
    if (base[i * (D + 2) + 1] > 0.0f) M = fmaxf(M, base[i * (D + 2)]);
  float L = 0.0f;
  for (int i = 0; i < P; ++i) {
    const float li = base[i * (D + 2) + 1];
    if (li > 0.0f) L += li * expf(base[i * (D + 2)] - M);
  }
  const float inv = (p.kv == WDType::kFP8 ? p.v_scale : 1.0f) / L;
  float* out = p.out + int64_t{p.q_begin[s]} * p.ldo + int64_t{h} * D;
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float o = 0.0f;
    for (int i = 0; i < P; ++i) {
      const float* st = base + i * (D + 2);
      if (st[1] > 0.0f) o += st[2 + d] * expf(st[0] - M);
    }
    out[d] = o * inv;
  }
}

int elems_per16(WDType dt) {
  return dt == WDType::kF32 ? 4 : (dt == WDType::kBF16 ? 8 : 16);
}

}  // namespace

bool attention_decode_split_ok(const AttnParams& p) {
  const int E = elems_per16(p.kv);
  return p.head_dim > 0 && p.head_dim <= kAttnMaxHeadDim && p.head_dim % E == 0 &&
         p.n_kv_heads > 0 && p.n_heads % p.n_kv_heads == 0 &&
         reinterpret_cast<uintptr_t>(p.k_cache) % 16 == 0 &&
         reinterpret_cast<uintptr_t>(p.v_cache) % 16 == 0;
}

int attention_decode_head_chunks(const AttnParams& p) {
  const int G = p.n_heads / p.n_kv_heads;
  return (G + kAttnSplitHeads - 1) / kAttnSplitHeads;
}

void launch_attention_decode(const AttnParams& p, int splits, float* part, cudaStream_t s) {
  if (p.n_seqs <= 0 || p.n_heads <= 0) return;
  const int hc = attention_decode_head_chunks(p);
  const dim3 grid(static_cast<unsigned>(p.n_seqs), static_cast<unsigned>(p.n_kv_heads * hc),
                  static_cast<unsigned>(splits));
  switch (p.kv) {
    case WDType::kBF16:
      attention_decode_split_kernel<WDType::kBF16>
          <<<grid, kAttnThreads, 0, s>>>(p, splits, hc, part);
      break;
    case WDType::kFP8:
      attention_decode_split_kernel<WDType::kFP8>
          <<<grid, kAttnThreads, 0, s>>>(p, splits, hc, part);
      break;
    default:
      attention_decode_split_kernel<WDType::kF32>
          <<<grid, kAttnThreads, 0, s>>>(p, splits, hc, part);
  }
  const int threads = p.head_dim < 128 ? 128 : (p.head_dim + 31) / 32 * 32;
  attention_decode_merge_kernel<<<dim3(static_cast<unsigned>(p.n_seqs),
                                       static_cast<unsigned>(p.n_heads)),
                                  static_cast<unsigned>(threads), 0, s>>>(p, splits, part);
}

}  // namespace fc::cuda
