#include "backend/cpu/cpu_backend.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <vector>

#include "backend/cpu/attention_prefill.h"
#include "backend/cpu/fast_math.h"
#include "backend/cpu/matmul.h"
#include "backend/cpu/nvfp4_linear.h"
#include "backend/cpu/ops.h"
#include "core/error.h"
#include "core/half.h"
#include "quant/nvfp4.h"

namespace fc::cpu {
namespace {

MatView mat(const Weight& w) {
  return MatView{w.data, w.dtype, w.rows, w.cols, w.ld};
}

// FP8 E4M3 cache bytes, before the per-layer scale (applied by the caller once per dot / axpy).
inline float load_kv(uint8_t x) {
  return quant::e4m3_table()[x];
}

// Dot product of an fp32 query with a cache row: fp32 and bf16 rows through
// the vectorised fast_math kernels, FP8 bytes (before the per-layer scale, applied by the caller
// once per dot) through the table, with 8 independent partial sums.
inline float dot(const float* a, const float* b, int n) {
  return dot_f32(a, b, n);
}
inline float dot(const float* a, const uint16_t* b, int n) {
  return dot_bf16(a, b, n);
}
inline float dot(const float* a, const uint8_t* b, int n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * load_kv(b[i + j]);
  float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < n; ++i) s += a[i] * load_kv(b[i]);
  return s;
}

// out = Σ_r w[r] · rows[r] (D values); FP8 rows before the per-layer scale (folded into w).
inline void weighted_rows(const float* w, const float* const* rows, int64_t n, int D, float* out) {
  weighted_rows_f32(w, rows, n, D, out);
}
inline void weighted_rows(const float* w, const uint16_t* const* rows, int64_t n, int D,
                          float* out) {
  weighted_rows_bf16(w, rows, n, D, out);
}
inline void weighted_rows(const float* w, const uint8_t* const* rows, int64_t n, int D,
                          float* out) {
  std::fill(out, out + D, 0.0f);
  for (int64_t r = 0; r < n; ++r)
    for (int i = 0; i < D; ++i) out[i] += w[r] * load_kv(rows[r][i]);
}

// Rows per parallel chunk so that each chunk holds about `work` elements.
int64_t grain_rows(int64_t n, int64_t work = 1 << 14) {
  return std::max<int64_t>(1, work / std::max<int64_t>(1, n));
}

}  // namespace

Weight CpuBackend::upload(const Weight& host) {
  // Gathered tables stay in the mapping: a step reads a few rows of them (E2B's per-layer
  // embeddings are 4.7 GB BF16, 35 rows of 256 per token).
  if (!opts_.copy_weights || host.empty() || host.gather_only) return host;
  Weight w = host;
  const auto span = [](int64_t rows, int64_t ld, int64_t row_bytes) {
    return rows <= 0 ? size_t{0} : static_cast<size_t>((rows - 1) * ld + row_bytes);
  };
  if (host.nvfp4()) {  // codes: ld bytes per row; scales: scale_ld bytes per row
    w.data = arena_.copy(host.data, span(host.rows, host.ld, host.cols / 2), pool_);
    w.block_scale = static_cast<const uint8_t*>(
        arena_.copy(host.block_scale, span(host.rows, host.scale_ld, host.cols / 16), pool_));
    if (host.pre_quant_scale) {
      w.pre_quant_scale =
          arena_.copy(host.pre_quant_scale,
                      static_cast<size_t>(host.cols * dtype_bits(host.pqs_dtype) / 8), pool_);
    }
  } else {  // ld elements per row
    const int64_t bits = dtype_bits(host.dtype);
    if (bits % 8 != 0) return host;  // sub-byte dense types are not copied
    const int64_t es = bits / 8;
    w.data = arena_.copy(host.data, span(host.rows, host.ld * es, host.cols * es), pool_);
  }
  return w;
}

void* CpuBackend::alloc(size_t bytes) {
  void* p = std::aligned_alloc(64, ((std::max<size_t>(bytes, 1) + 63) / 64) * 64);
  if (!p) fail("CPU backend: out of memory allocating ", bytes, " bytes");
  return p;
}
void CpuBackend::free(void* p) {
  std::free(p);
}
void CpuBackend::to_device(void* dst, const void* src, size_t bytes) {
  std::memcpy(dst, src, bytes);
}
void CpuBackend::to_host(void* dst, const void* src, size_t bytes) {
  std::memcpy(dst, src, bytes);
}
void CpuBackend::copy(void* dst, const void* src, size_t bytes) {
  std::memcpy(dst, src, bytes);
}

void CpuBackend::linear(const float* x, int64_t T, int64_t ldx, const Weight& w, float* y,
                        int64_t ldy, bool accumulate) {
  linear_on(pool_, nvfp4_scratch_, x, T, ldx, w, y, ldy, accumulate);
}

void CpuBackend::linear_on(ThreadPool& pool, std::vector<float>& scratch, const float* x, int64_t T,
                           int64_t ldx, const Weight& w, float* y, int64_t ldy, bool accumulate) {
  if (w.nvfp4()) {
    nvfp4_linear(pool, scratch, x, T, ldx, w, y, ldy, accumulate, opts_.emulate_w4a4,
                 opts_.nvfp4_isa, opts_.prefill_int8, opts_.decode_int8);
  } else {
    matmul(pool, x, T, ldx, mat(w), y, ldy, accumulate);
  }
}

void CpuBackend::rmsnorm(const float* x, int64_t rows, int64_t n, int64_t ldx, const Weight* w,
                         float eps, float* y, int64_t ldy) {
  // A 16-bit norm weight widened once per call (exactly), not per element and row: rmsnorm_row
  // reads a non-F32 weight through weight_at, which made the norms 3.5% of an E2B prefill.
  std::vector<float> wf;
  Weight w32;
  if (w && w->dtype != DType::kF32 && !w->nvfp4() && w->cols == n) {
    wf.resize(static_cast<size_t>(n));
    weight_row(*w, 0, wf.data());
    w32 = *w;
    w32.data = wf.data();
    w32.dtype = DType::kF32;
    w = &w32;
  }
  pool_.parallel_for(rows, grain_rows(n), [&](int64_t b, int64_t e, int) {
    for (int64_t r = b; r < e; ++r) rmsnorm_row(x + r * ldx, n, w, eps, y + r * ldy);
  });
}

void CpuBackend::rope(float* x, int64_t T, int64_t ldx, int n_heads, int head_dim,
                      const int32_t* pos, const float* inv_freq) {
  pool_.parallel_for(T, 1, [&](int64_t b, int64_t e, int) {
    for (int64_t t = b; t < e; ++t) rope_row(x + t * ldx, n_heads, head_dim, pos[t], inv_freq);
  });
}

void CpuBackend::gelu_mul(const float* gate, int64_t ldg, const float* up, int64_t ldu, int64_t T,
                          int64_t n, float* out, int64_t ldo) {
  // Work items are (row, chunk of columns) so one long decode row still uses every thread.
  const int64_t chunk = 1 << 12, per_row = (n + chunk - 1) / chunk;
  pool_.parallel_for(T * per_row, 1, [&](int64_t b, int64_t e, int) {
    for (int64_t w = b; w < e; ++w) {
      const int64_t t = w / per_row, i0 = (w % per_row) * chunk;
      gelu_mul_row(gate + t * ldg + i0, up + t * ldu + i0, out + t * ldo + i0,
                   std::min(chunk, n - i0));
    }
  });
}

void CpuBackend::silu_mul(const float* gate, int64_t ldg, const float* up, int64_t ldu, int64_t T,
                          int64_t n, float* out, int64_t ldo) {
  pool_.parallel_for(T, grain_rows(n), [&](int64_t b, int64_t e, int) {
    for (int64_t t = b; t < e; ++t)
      for (int64_t i = 0; i < n; ++i) {
        const float g = gate[t * ldg + i];
        out[t * ldo + i] = g / (1.0f + std::exp(-g)) * up[t * ldu + i];
      }
  });
}

void CpuBackend::add(const float* a, int64_t lda, const float* b, int64_t ldb, int64_t T, int64_t n,
                     float* y, int64_t ldy) {
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < n; ++i) y[t * ldy + i] = a[t * lda + i] + b[t * ldb + i];
}

void CpuBackend::scale(float* x, int64_t ldx, int64_t T, int64_t n, float s) {
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < n; ++i) x[t * ldx + i] *= s;
}

void CpuBackend::embed(const Weight& table, const int32_t* ids, int64_t T, float s, float* out,
                       int64_t ldo) {
  for (int64_t t = 0; t < T; ++t) {
    FC_CHECK(ids[t] >= 0 && ids[t] < table.rows, "token id ", ids[t], " outside the ", table.rows,
             "-row table ", table.name);
    float* o = out + t * ldo;
    weight_row(table, ids[t], o);
    for (int64_t i = 0; i < table.cols; ++i) o[i] *= s;
  }
}

void CpuBackend::softcap(float* x, int64_t ldx, int64_t T, int64_t n, float c) {
  // Rows are long (the vocabulary): split each row into chunks across threads.
  const int64_t chunk = 1 << 14, per_row = (n + chunk - 1) / chunk;
  pool_.parallel_for(T * per_row, 1, [&](int64_t b, int64_t e, int) {
    for (int64_t w = b; w < e; ++w) {
      const int64_t t = w / per_row, i0 = (w % per_row) * chunk;
      softcap_row(x + t * ldx + i0, std::min(chunk, n - i0), c);
    }
  });
}

void CpuBackend::kv_write(const float* k, int64_t ldk, const float* v, int64_t ldv, int64_t T,
                          int64_t row_elems, const int32_t* slots, void* k_cache, void* v_cache,
                          DType cache_dtype, float k_scale, float v_scale) {
  for (int64_t t = 0; t < T; ++t) {
    if (slots[t] < 0) continue;
    const int64_t off = static_cast<int64_t>(slots[t]) * row_elems;
    if (cache_dtype == DType::kF8_E4M3) {
      uint8_t* kc = static_cast<uint8_t*>(k_cache) + off;
      uint8_t* vc = static_cast<uint8_t*>(v_cache) + off;
      for (int64_t i = 0; i < row_elems; ++i) {
        kc[i] = quant::float_to_e4m3(k[t * ldk + i] / k_scale);
        vc[i] = quant::float_to_e4m3(v[t * ldv + i] / v_scale);
      }
    } else if (cache_dtype == DType::kBF16) {
      uint16_t* kc = static_cast<uint16_t*>(k_cache) + off;
      uint16_t* vc = static_cast<uint16_t*>(v_cache) + off;
      for (int64_t i = 0; i < row_elems; ++i) {
        kc[i] = f32_to_bf16(k[t * ldk + i]);
        vc[i] = f32_to_bf16(v[t * ldv + i]);
      }
    } else {
      std::memcpy(static_cast<float*>(k_cache) + off, k + t * ldk,
                  static_cast<size_t>(row_elems) * sizeof(float));
      std::memcpy(static_cast<float*>(v_cache) + off, v + t * ldv,
                  static_cast<size_t>(row_elems) * sizeof(float));
    }
  }
}

namespace {

// The attention rows of query token t for the heads g·rep + [r0, r1) of those sharing KV head g
// (rep = n_heads / n_kv_heads), over cache elements of type KV (float, bf16 bits or e4m3 bytes;
// k_mul / v_mul are the FP8 per-layer scales, 1 otherwise). Each head's scores, softmax and
// weighted sum are computed exactly as one row alone would be; the heads only share the passes
// over the cache, so each K row is read once for all of them while it is in L1 (26B-A4B's global
// layers have 8 query heads per KV head). Per-thread buffers: scores (then softmax weights, rep
// rows of n) and the cache-row offsets (elements) of the attended positions.
struct AttnScratch {
  std::vector<float> scores;
  std::vector<int64_t> offs;
  std::vector<const void*> rows;
};

template <typename KV>
void attention_group(const AttentionArgs& a, int s, int64_t t, int g, int r0, int r1,
                     AttnScratch& w, float k_mul, float v_mul) {
  const int rep = r1 - r0;
  const int D = a.head_dim;
  const KV* kc = static_cast<const KV*>(a.k_cache);
  const KV* vc = static_cast<const KV*>(a.v_cache);
  const int p = a.pos0[s] + static_cast<int>(t - a.q_begin[s]);
  const int32_t* table = a.block_tables + a.table_offset[s];
  const int lo = a.sliding_window > 0 ? std::max(0, p - a.sliding_window + 1) : 0;
  const int hi = a.kv_limit ? std::max(p, a.kv_limit[t]) : p;  // image blocks see ahead
  const int h0 = g * (a.n_heads / a.n_kv_heads) + r0;          // first query head
  const float* q = a.q + t * a.ldq + static_cast<int64_t>(h0) * D;
  const size_t n = static_cast<size_t>(hi - lo + 1);
  w.scores.resize(n * static_cast<size_t>(rep));
  w.offs.resize(n);
  w.rows.resize(n);
  for (int j = lo; j <= hi; ++j) {
    const int64_t slot =
        static_cast<int64_t>(table[j / a.block_size]) * a.block_size + j % a.block_size;
    const int64_t off = (slot * a.n_kv_heads + g) * D;
    w.offs[static_cast<size_t>(j - lo)] = off;
    for (int r = 0; r < rep; ++r) {
      w.scores[r * n + static_cast<size_t>(j - lo)] =
          dot(q + static_cast<int64_t>(r) * D, kc + off, D) * (k_mul * a.scale);
    }
  }
  for (size_t i = 0; i < n; ++i) w.rows[i] = vc + w.offs[i];
  for (int r = 0; r < rep; ++r) {
    float* sc = w.scores.data() + r * n;
    float mx = -INFINITY;
    for (size_t i = 0; i < n; ++i) mx = std::max(mx, sc[i]);
    const float sum = exp_sub_sum(sc, static_cast<int64_t>(n), mx);
    const float inv = v_mul / sum;
    for (size_t i = 0; i < n; ++i) sc[i] *= inv;
    weighted_rows(sc, reinterpret_cast<const KV* const*>(w.rows.data()), static_cast<int64_t>(n), D,
                  a.out + t * a.ldo + static_cast<int64_t>(h0 + r) * D);
  }
}

}  // namespace

void CpuBackend::attention(const AttentionArgs& a) {
  // Prefill-sized sequences in query tiles (attention_prefill.h); the rest row by row here.
  std::vector<uint8_t> tiled;
  attention_prefill(pool_, a, tiled);
  // Work items: (token, KV head), each for the query heads sharing that KV head. Same math as
  // attention_ref, with vector-friendly dots.
  // Sequence s owns batch rows [q_begin[s], q_begin[s] + n_q[s]) (not necessarily contiguous
  // across sequences: a caller may attend a subset of its rows).
  std::vector<std::pair<int32_t, int64_t>> rows;  // (sequence, batch row)
  for (int s = 0; s < a.n_seqs; ++s) {
    if (tiled[static_cast<size_t>(s)]) continue;
    for (int i = 0; i < a.n_q[s]; ++i) rows.emplace_back(s, int64_t{a.q_begin[s]} + i);
  }
  if (rows.empty()) return;
  const int64_t n_rows = static_cast<int64_t>(rows.size());
  const int G = a.n_kv_heads, rep = a.n_heads / a.n_kv_heads;
  // Fewer (row, KV head) items than threads (a decode step of a model with one or two KV heads,
  // E2B): the query heads of a group are split into S parts, each reading the group's K rows
  // itself. Every head's dots, softmax and sums are the same either way.
  const int64_t want = pool_.size();
  const int S = static_cast<int>(
      std::clamp<int64_t>((want + n_rows * G - 1) / (n_rows * G), 1, static_cast<int64_t>(rep)));
  const int per = (rep + S - 1) / S;
  pool_.parallel_for(n_rows * G * S, 1, [&](int64_t b, int64_t e, int) {
    AttnScratch scratch;
    for (int64_t item = b; item < e; ++item) {
      const auto [s, r] = rows[static_cast<size_t>(item / (G * S))];
      const int g = static_cast<int>(item / S % G), part = static_cast<int>(item % S);
      const int r0 = std::min(rep, part * per), r1 = std::min(rep, r0 + per);
      if (r0 == r1) continue;
      if (a.kv_dtype == DType::kBF16)
        attention_group<uint16_t>(a, s, r, g, r0, r1, scratch, 1.0f, 1.0f);
      else if (a.kv_dtype == DType::kF8_E4M3)
        attention_group<uint8_t>(a, s, r, g, r0, r1, scratch, a.k_scale, a.v_scale);
      else
        attention_group<float>(a, s, r, g, r0, r1, scratch, 1.0f, 1.0f);
    }
  });
}

void CpuBackend::moe_route(const float* logits, int64_t ldl, int64_t T, int E, int k,
                           const Weight& per_expert_scale, int32_t* idx, float* weights) {
  std::vector<float> prob(static_cast<size_t>(E));
  std::vector<int32_t> order(static_cast<size_t>(E));
  for (int64_t t = 0; t < T; ++t) {
    const float* z = logits + t * ldl;
    const float mx = *std::max_element(z, z + E);
    float sum = 0;
    for (int e = 0; e < E; ++e) sum += (prob[static_cast<size_t>(e)] = std::exp(z[e] - mx));
    for (float& p : prob) p /= sum;
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t a, int32_t b) {
      return prob[static_cast<size_t>(a)] > prob[static_cast<size_t>(b)] ||
             (prob[static_cast<size_t>(a)] == prob[static_cast<size_t>(b)] && a < b);
    });
    float top = 0;
    for (int j = 0; j < k; ++j) top += prob[static_cast<size_t>(order[static_cast<size_t>(j)])];
    for (int j = 0; j < k; ++j) {
      const int32_t e = order[static_cast<size_t>(j)];
      idx[t * k + j] = e;
      weights[t * k + j] = prob[static_cast<size_t>(e)] / top * weight_at(per_expert_scale, 0, e);
    }
  }
}

}  // namespace fc::cpu
