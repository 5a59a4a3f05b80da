// CudaBackend's element-wise, attention and MoE ops: argument checks and kernel launches.
#include <cuda_runtime.h>

#include <algorithm>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/host_checks.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/plan.h"
#include "core/error.h"

namespace fc::cuda {
namespace {

cudaStream_t st(const CudaBackend& b) {
  return static_cast<cudaStream_t>(b.stream());
}

}  // namespace

void CudaBackend::rmsnorm(const float* x, int64_t rows, int64_t n, int64_t ldx, const Weight* w,
                          float eps, float* y, int64_t ldy) {
  const WDType wdt = w ? wdt_of(w->dtype, "rmsnorm weight " + w->name, false) : WDType::kF32;
  FC_CHECK(!w || !w->nvfp4(), "CUDA backend: NVFP4 rmsnorm weight ", w ? w->name : "");
  launch_rmsnorm(x, rows, n, ldx, w ? w->data : nullptr, wdt, eps, y, ldy, st(*this));
  ck_launch("rmsnorm");
}

void CudaBackend::rope(float* x, int64_t T, int64_t ldx, int n_heads, int head_dim,
                       const int32_t* pos, const float* inv_freq) {
  launch_rope(x, T, ldx, n_heads, head_dim, pos, inv_freq, st(*this));
  ck_launch("rope");
}

void CudaBackend::gelu_mul(const float* gate, int64_t ldg, const float* up, int64_t ldu, int64_t T,
                           int64_t n, float* out, int64_t ldo) {
  launch_glu(gate, ldg, up, ldu, T, n, out, ldo, false, st(*this));
  ck_launch("gelu_mul");
}

void CudaBackend::silu_mul(const float* gate, int64_t ldg, const float* up, int64_t ldu, int64_t T,
                           int64_t n, float* out, int64_t ldo) {
  launch_glu(gate, ldg, up, ldu, T, n, out, ldo, true, st(*this));
  ck_launch("silu_mul");
}

void CudaBackend::add(const float* a, int64_t lda, const float* b, int64_t ldb, int64_t T,
                      int64_t n, float* y, int64_t ldy) {
  launch_add(a, lda, b, ldb, T, n, y, ldy, st(*this));
  ck_launch("add");
}

void CudaBackend::scale(float* x, int64_t ldx, int64_t T, int64_t n, float s) {
  launch_scale(x, ldx, T, n, s, st(*this));
  ck_launch("scale");
}

void CudaBackend::embed(const Weight& table, const int32_t* ids, int64_t T, float s, float* out,
                        int64_t ldo) {
  FC_CHECK(!table.nvfp4(), "CUDA backend: NVFP4 embedding table ", table.name, " unsupported");
  launch_embed(table.data, wdt_of(table.dtype, "embedding " + table.name, false), table.rows,
               table.cols, table.ld, ids, T, s, out, ldo, embed_error_flag(), st(*this));
  ck_launch("embed");
}

void CudaBackend::softcap(float* x, int64_t ldx, int64_t T, int64_t n, float c) {
  launch_softcap(x, ldx, T, n, c, st(*this));
  ck_launch("softcap");
}

void CudaBackend::kv_write(const float* k, int64_t ldk, const float* v, int64_t ldv, int64_t T,
                           int64_t row_elems, const int32_t* slots, void* k_cache, void* v_cache,
                           DType cache_dtype, float k_scale, float v_scale) {
  WDType dt = WDType::kF32;
  if (cache_dtype == DType::kBF16)
    dt = WDType::kBF16;
  else if (cache_dtype == DType::kF8_E4M3)
    dt = WDType::kFP8;
  else
    FC_CHECK(cache_dtype == DType::kF32, "CUDA backend: KV cache dtype ", dtype_name(cache_dtype),
             " unsupported (F32, BF16, F8_E4M3)");
  launch_kv_write(k, ldk, v, ldv, T, row_elems, slots, k_cache, v_cache, dt, k_scale, v_scale,
                  st(*this));
  ck_launch("kv_write");
}

void CudaBackend::attention(const AttentionArgs& a) {
  FC_CHECK(a.head_dim > 0 && a.head_dim <= kAttnMaxHeadDim, "CUDA backend: attention head_dim ",
           a.head_dim, " outside [1, ", kAttnMaxHeadDim, "]");
  FC_CHECK(a.n_kv_heads > 0 && a.n_heads % a.n_kv_heads == 0, "CUDA backend: attention with ",
           a.n_heads, " query heads over ", a.n_kv_heads, " KV heads");
  FC_CHECK(a.block_size > 0, "CUDA backend: attention block_size ", a.block_size);
  AttnParams p{};
  p.q = a.q;
  p.ldq = a.ldq;
  p.out = a.out;
  p.ldo = a.ldo;
  p.k_cache = a.k_cache;
  p.v_cache = a.v_cache;
  p.kv = a.kv_dtype == DType::kBF16      ? WDType::kBF16
         : a.kv_dtype == DType::kF8_E4M3 ? WDType::kFP8
                                         : WDType::kF32;
  FC_CHECK(p.kv != WDType::kF32 || a.kv_dtype == DType::kF32, "CUDA backend: KV dtype ",
           dtype_name(a.kv_dtype), " unsupported");
  p.k_scale = a.k_scale;
  p.v_scale = a.v_scale;
  p.n_heads = a.n_heads;
  p.n_kv_heads = a.n_kv_heads;
  p.head_dim = a.head_dim;
  p.block_size = a.block_size;
  p.scale = a.scale;
  p.sliding_window = a.sliding_window;
  p.n_seqs = a.n_seqs;
  p.q_begin = a.q_begin;
  p.n_q = a.n_q;
  p.pos0 = a.pos0;
  p.block_tables = a.block_tables;
  p.table_offset = a.table_offset;
  p.kv_limit = a.kv_limit;
  if (a.max_q_per_seq == 1 && a.kv_limit == nullptr && attention_decode_split_ok(p)) {
    // Decode: keys split over blocks (flash-decoding), so few sequences still fill the GPU. The
    // split kernel is causal only: steps with image-block limits take the general kernel (a
    // one-row query could only have kv_limit <= its own position anyway).
    const int keys = a.max_keys > 0 ? a.max_keys : (a.sliding_window > 0 ? a.sliding_window : 4096);
    const int splits =
        attention_key_splits(a.n_seqs, a.n_kv_heads * attention_decode_head_chunks(p), keys);
    float* part = reinterpret_cast<float*>(
        scratch(attention_split_ws_bytes(a.n_seqs, a.n_heads, a.head_dim, splits)));
    launch_attention_decode(p, splits, part, st(*this));
    ck_launch("attention_decode");
    return;
  }
  launch_attention(p, st(*this));
  ck_launch("attention");
}

void CudaBackend::moe_route(const float* logits, int64_t ldl, int64_t T, int E, int k,
                            const Weight& per_expert_scale, int32_t* idx, float* weights) {
  FC_CHECK(k >= 1 && k <= 32 && k <= E, "CUDA backend: moe_route top-k ", k, " of ", E);
  launch_moe_route(
      logits, ldl, T, E, k, per_expert_scale.data,
      wdt_of(per_expert_scale.dtype, "per_expert_scale " + per_expert_scale.name, false), idx,
      weights, st(*this));
  ck_launch("moe_route");
}

void CudaBackend::moe_experts(const float* x, int64_t ldx, int64_t T, const int32_t* idx,
                              const float* weights, int k, const Weight* gate, const Weight* up,
                              const Weight* down, int E, float* out, int64_t ldo) {
  if (T <= 0) return;
  const int64_t H = gate[0].cols, I = gate[0].rows;
  cudaStream_t s = st(*this);
  launch_zero_rows(out, ldo, T, H, s);
  // The routing decides which rows each expert multiplies: read it back (one sync per MoE layer;
  // a device-side grouped GEMM would remove it), group rows per expert in ascending expert id.
  const size_t tk = static_cast<size_t>(T) * static_cast<size_t>(k);
  std::vector<int32_t> hidx(tk);
  std::vector<float> hw(tk);
  to_host(hidx.data(), idx, tk * 4);
  to_host(hw.data(), weights, tk * 4);
  std::vector<int32_t> rows, offs(static_cast<size_t>(E) + 1, 0);
  std::vector<float> rw;
  for (int e = 0; e < E; ++e) {
    offs[static_cast<size_t>(e)] = static_cast<int32_t>(rows.size());
    for (int64_t t = 0; t < T; ++t)
      for (int j = 0; j < k; ++j)
        if (hidx[static_cast<size_t>(t * k + j)] == e) {
          rows.push_back(static_cast<int32_t>(t));
          rw.push_back(hw[static_cast<size_t>(t * k + j)]);
        }
  }
  offs[static_cast<size_t>(E)] = static_cast<int32_t>(rows.size());
  size_t lin = 0;
  for (int e = 0; e < E; ++e) {
    const int64_t n = offs[static_cast<size_t>(e) + 1] - offs[static_cast<size_t>(e)];
    if (n == 0) continue;
    lin = std::max(
        {lin, linear_ws_need(n, gate[e]), linear_ws_need(n, up[e]), linear_ws_need(n, down[e])});
  }
  char* ws = scratch(moe_ws_bytes(T, k, H, I, lin));
  auto take = [&](size_t bytes) {
    char* p = ws;
    ws += ws_align(bytes);
    return p;
  };
  const size_t th = static_cast<size_t>(T * H) * 4, ti = static_cast<size_t>(T * I) * 4;
  float* xs = reinterpret_cast<float*>(take(th));
  float* gu = reinterpret_cast<float*>(take(2 * ti));
  float* act = reinterpret_cast<float*>(take(ti));
  float* yb = reinterpret_cast<float*>(take(th));
  int32_t* rows_d = reinterpret_cast<int32_t*>(take(tk * 4));
  float* w_d = reinterpret_cast<float*>(take(tk * 4));
  char* lin_ws = ws;
  if (!rows.empty()) {
    to_device(rows_d, rows.data(), rows.size() * 4);
    to_device(w_d, rw.data(), rw.size() * 4);
  }
  for (int e = 0; e < E; ++e) {  // ascending expert id, as HF's index_add loop
    const int32_t o = offs[static_cast<size_t>(e)];
    const int64_t n = offs[static_cast<size_t>(e) + 1] - o;
    if (n == 0) continue;
    launch_gather_rows(x, ldx, rows_d + o, n, H, xs, s);
    linear_ws(xs, n, H, gate[e], gu, 2 * I, false, lin_ws);
    linear_ws(xs, n, H, up[e], gu + I, 2 * I, false, lin_ws);
    launch_glu(gu, 2 * I, gu + I, 2 * I, n, I, act, I, false, s);
    linear_ws(act, n, I, down[e], yb, H, false, lin_ws);
    launch_scatter_add_rows(yb, rows_d + o, w_d + o, n, H, out, ldo, s);
    ck_launch("moe_experts");
  }
}

}  // namespace fc::cuda
