// Tiled prefill attention (attention_prefill.h). One work item = (sequence, KV head, tile of
// kAttnTileRows query rows); its queries are the tile's rows × the n_heads / n_kv_heads query
// heads of that KV head (Gemma 4 E2B: 4 rows × 8 heads share one K/V row per position).
//   1. The keys and values any of the tile's rows sees are gathered into contiguous fp32 rows
//      (widened from BF16): [nk, D] each, nk <= window or context + tile.
//   2. Scores: matmul's dense register tiles (4 heads × 3 keys, AVX2) over the gathered keys.
//   3. Softmax per query over its own key range (fast_math's exp_sub_sum), as attention_row.
//   4. P·V with the packed-panel GEMM tile (6 heads × 16 dimensions, AVX2), the gathered values
//      read as its k-major B operand (row stride D).
// Row-by-row attention reads each cached K/V row once per query row and head (n_heads · T row
// reads per layer); here it is T / kAttnTileRows reads.
#include "backend/cpu/attention_prefill.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "backend/cpu/fast_math.h"
#include "backend/cpu/matmul.h"
#include "backend/cpu/matmul_kernels.h"
#include "core/half.h"

namespace fc::cpu {
namespace {

struct Scratch {
  std::vector<float> k, v, s;  // gathered keys / values [nk, D] (+ slack), scores [q, nkp]
};

inline void gather_row(const AttentionArgs& a, const void* cache, int64_t off, float* dst) {
  const int D = a.head_dim;
  if (a.kv_dtype == DType::kF32) {
    std::memcpy(dst, static_cast<const float*>(cache) + off, static_cast<size_t>(D) * 4);
  } else {
    const uint16_t* src = static_cast<const uint16_t*>(cache) + off;
    for (int d = 0; d < D; ++d) dst[d] = bf16_to_f32(src[d]);
  }
}

void run_tile(const detail::KernelSet& ks, const AttentionArgs& a, int s, int g, int i0, int i1,
              Scratch& w) {
  const int rep = a.n_heads / a.n_kv_heads, D = a.head_dim;
  const int32_t* table = a.block_tables + a.table_offset[s];
  auto row_range = [&](int i, int* lo, int* hi) {
    const int p = a.pos0[s] + i;
    const int64_t t = a.q_begin[s] + i;
    *lo = a.sliding_window > 0 ? std::max(0, p - a.sliding_window + 1) : 0;
    *hi = a.kv_limit ? std::max(p, a.kv_limit[t]) : p;
  };
  int lo = INT32_MAX, hi = -1;
  for (int i = i0; i < i1; ++i) {
    int l, h;
    row_range(i, &l, &h);
    lo = std::min(lo, l);
    hi = std::max(hi, h);
  }
  const int64_t nk = hi - lo + 1, nkp = (nk + 7) / 8 * 8;
  // +16: the P·V tile reads 16 floats of every value row, past the end for D % 16 != 0.
  w.k.resize(static_cast<size_t>(nk * D + 16));
  w.v.resize(static_cast<size_t>(nk * D + 16));
  w.s.resize(static_cast<size_t>(rep * nkp));
  for (int j = lo; j <= hi; ++j) {
    const int64_t slot =
        static_cast<int64_t>(table[j / a.block_size]) * a.block_size + j % a.block_size;
    const int64_t off = (slot * a.n_kv_heads + g) * D;
    gather_row(a, a.k_cache, off, w.k.data() + (j - lo) * D);
    gather_row(a, a.v_cache, off, w.v.data() + (j - lo) * D);
  }
  constexpr int kF32 = static_cast<int>(detail::WKind::kF32);
  for (int i = i0; i < i1; ++i) {
    int l, h;
    row_range(i, &l, &h);
    const int64_t jl = l - lo, jn = h - l + 1;
    const int64_t t = a.q_begin[s] + i;
    const float* q = a.q + t * a.ldq + static_cast<int64_t>(g) * rep * D;
    float* sc = w.s.data();
    for (int h0 = 0; h0 < rep; h0 += ks.mr) {
      const int mr = std::min(ks.mr, rep - h0);
      for (int64_t j = 0; j < jn; j += ks.nr) {
        const int nr = static_cast<int>(std::min<int64_t>(ks.nr, jn - j));
        ks.tile[kF32][mr - 1][nr - 1](q + h0 * D, D, w.k.data() + (jl + j) * D, D, D,
                                      sc + h0 * nkp + j, nkp, false);
      }
    }
    for (int hh = 0; hh < rep; ++hh) {
      float* row = sc + hh * nkp;
      float mx = -INFINITY;
      for (int64_t j = 0; j < jn; ++j) mx = std::max(mx, row[j] *= a.scale);
      const float inv = 1.0f / exp_sub_sum(row, jn, mx);
      for (int64_t j = 0; j < jn; ++j) row[j] *= inv;
    }
    float* o = a.out + t * a.ldo + static_cast<int64_t>(g) * rep * D;
    for (int h0 = 0; h0 < rep; h0 += ks.gemm_mr) {
      const int mr = std::min(ks.gemm_mr, rep - h0);
      for (int d0 = 0; d0 < D; d0 += ks.gemm_nr) {
        ks.gemm(sc + h0 * nkp, nkp, w.v.data() + jl * D + d0, D, jn, o + h0 * D + d0, D, mr,
                std::min(ks.gemm_nr, D - d0), false);
      }
    }
  }
}

}  // namespace

void attention_prefill(ThreadPool& pool, const AttentionArgs& a, std::vector<uint8_t>& done) {
  done.assign(static_cast<size_t>(a.n_seqs), 0);
  if (a.kv_dtype != DType::kF32 && a.kv_dtype != DType::kBF16) return;
  if (!matmul_isa_supported(MatmulIsa::kAvx2)) return;
  static const detail::KernelSet ks = detail::kernels_avx2();  // immutable table, built once
  struct Item {
    int s, g, i0, i1;
  };
  std::vector<Item> items;
  for (int s = 0; s < a.n_seqs; ++s) {
    done[static_cast<size_t>(s)] = a.n_q[s] >= kAttnTileRows;
    if (!done[static_cast<size_t>(s)]) continue;
    for (int g = 0; g < a.n_kv_heads; ++g) {
      for (int i = 0; i < a.n_q[s]; i += kAttnTileRows)
        items.push_back({s, g, i, std::min(a.n_q[s], i + kAttnTileRows)});
    }
  }
  if (items.empty()) return;
  // parallel_for hands each thread a contiguous range, and causal tiles get dearer towards the
  // end of a sequence: interleave them first and last (0, n-1, 1, n-2, ...) so that every
  // contiguous range holds about the same work.
  std::vector<Item> order;
  order.reserve(items.size());
  for (size_t f = 0, l = items.size(); f < l; ++f) {
    order.push_back(items[f]);
    if (f + 1 < l) order.push_back(items[--l]);
  }
  pool.parallel_for(static_cast<int64_t>(order.size()), 1, [&](int64_t b, int64_t e, int) {
    Scratch w;
    for (int64_t it = b; it < e; ++it) {
      const Item& x = order[static_cast<size_t>(it)];
      run_tile(ks, a, x.s, x.g, x.i0, x.i1, w);
    }
  });
}

}  // namespace fc::cpu
