// CudaBackend's encoder ops (vision tower): argument checks and launches (kernels_encoder.cu).
#include <cuda_runtime.h>

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

void CudaBackend::attention_segments(const SegmentAttentionArgs& a) {
  FC_CHECK(a.head_dim > 0 && a.head_dim <= kAttnMaxHeadDim, "CUDA backend: segment attention ",
           "head_dim ", a.head_dim, " outside [1, ", kAttnMaxHeadDim, "]");
  FC_CHECK(a.n_kv_heads > 0 && a.n_heads % a.n_kv_heads == 0, "CUDA backend: segment attention ",
           "with ", a.n_heads, " query heads over ", a.n_kv_heads, " KV heads");
  if (a.n_segments <= 0) return;
  SegAttnParams p{};
  p.q = a.q;
  p.k = a.k;
  p.v = a.v;
  p.ldq = a.ldq;
  p.ldk = a.ldk;
  p.ldv = a.ldv;
  p.out = a.out;
  p.ldo = a.ldo;
  p.n_heads = a.n_heads;
  p.n_kv_heads = a.n_kv_heads;
  p.head_dim = a.head_dim;
  p.scale = a.scale;
  p.seg = a.seg;
  p.n_segments = a.n_segments;
  int32_t total = 0;  // the grid size: one small read of the last offset
  to_host(&total, a.seg + a.n_segments, sizeof total);
  p.total_rows = total;
  launch_attention_segments(p, st(*this));
  ck_launch("attention_segments");
}

void CudaBackend::avg_pool(const float* x, int64_t ldx, int grid_h, int grid_w, int k, int64_t n,
                           float scale, float* out, int64_t ldo) {
  FC_CHECK(k > 0 && grid_h % k == 0 && grid_w % k == 0, "CUDA backend: avg_pool grid ", grid_h, "x",
           grid_w, " not divisible by the kernel ", k);
  launch_avg_pool(x, ldx, grid_h, grid_w, k, n, scale, out, ldo, st(*this));
  ck_launch("avg_pool");
}

void CudaBackend::sub_mul(float* x, int64_t ldx, int64_t T, int64_t n, const Weight& sub,
                          const Weight& mul) {
  FC_CHECK(sub.rows * sub.cols == n && mul.rows * mul.cols == n,
           "CUDA backend: sub_mul: ", sub.name, " / ", mul.name, " must hold ", n, " values");
  launch_sub_mul(x, ldx, T, n, sub.data, wdt_of(sub.dtype, "sub_mul " + sub.name, false), mul.data,
                 wdt_of(mul.dtype, "sub_mul " + mul.name, false), st(*this));
  ck_launch("sub_mul");
}

}  // namespace fc::cuda
