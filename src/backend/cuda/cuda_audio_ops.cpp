// CudaBackend's audio-tower ops: argument checks and kernel launches (kernels_audio.cu).
#include <cuda_runtime.h>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/host_checks.h"
#include "backend/cuda/kernels.h"
#include "core/error.h"

namespace fc::cuda {
namespace {

cudaStream_t st(const CudaBackend& b) {
  return static_cast<cudaStream_t>(b.stream());
}

}  // namespace

void CudaBackend::clamp(float* x, int64_t ldx, int64_t T, int64_t n, float lo, float hi) {
  launch_clamp(x, ldx, T, n, lo, hi, st(*this));
  ck_launch("clamp");
}

void CudaBackend::silu(const float* x, int64_t ldx, int64_t T, int64_t n, float* out, int64_t ldo) {
  launch_silu(x, ldx, T, n, out, ldo, st(*this));
  ck_launch("silu");
}

void CudaBackend::glu(const float* a, int64_t lda, const float* b, int64_t ldb, int64_t T,
                      int64_t n, float* out, int64_t ldo) {
  launch_glu_sigmoid(a, lda, b, ldb, T, n, out, ldo, st(*this));
  ck_launch("glu");
}

void CudaBackend::layernorm(const float* x, int64_t rows, int64_t n, int64_t ldx, const Weight* w,
                            const Weight* b, float eps, float* y, int64_t ldy) {
  FC_CHECK(!(w && w->nvfp4()) && !(b && b->nvfp4()), "CUDA backend: NVFP4 LayerNorm weight");
  const WDType wdt = w ? wdt_of(w->dtype, "layernorm weight " + w->name, false) : WDType::kF32;
  const WDType bdt = b ? wdt_of(b->dtype, "layernorm bias " + b->name, false) : WDType::kF32;
  launch_layernorm(x, rows, n, ldx, w ? w->data : nullptr, wdt, b ? b->data : nullptr, bdt, eps, y,
                   ldy, st(*this));
  ck_launch("layernorm");
}

void CudaBackend::conv2d_patches(const float* x, int64_t T, int64_t F, int64_t C, int k, int s,
                                 int p, int64_t t0, int64_t n_t, float* out) {
  FC_CHECK(k > 0 && s > 0 && p >= 0 && F + 2 * p >= k, "conv2d_patches: kernel ", k, " stride ", s,
           " padding ", p, " over ", F, " columns");
  launch_conv2d_patches(x, T, F, C, k, s, p, t0, n_t, out, st(*this));
  ck_launch("conv2d_patches");
}

void CudaBackend::depthwise_conv1d_causal(const float* x, int64_t ldx, int64_t T, int64_t C,
                                          const Weight& w, float* out, int64_t ldo) {
  FC_CHECK(w.rows == C && !w.nvfp4(), "depthwise_conv1d_causal: weight ", w.name, " has ", w.rows,
           " rows for ", C, " channels");
  launch_depthwise_conv1d_causal(x, ldx, T, C, w.data, wdt_of(w.dtype, "conv " + w.name, false),
                                 w.cols, w.ld, out, ldo, st(*this));
  ck_launch("depthwise_conv1d_causal");
}

void CudaBackend::local_attention(const LocalAttentionArgs& a) {
  FC_CHECK(a.window > 0 && a.window <= kLocalAttnMaxWindow && a.logit_cap > 0,
           "CUDA backend: local_attention window ", a.window, " outside [1, ", kLocalAttnMaxWindow,
           "] or logit cap ", a.logit_cap);
  LocalAttnParams p{a.q,       a.k,     a.v,      a.ldq,     a.ldk,      a.ldv,
                    a.out,     a.ldo,   a.T,      a.n_heads, a.head_dim, a.q_scale,
                    a.k_scale, a.rel_k, a.ld_rel, a.window,  a.logit_cap};
  launch_local_attention(p, st(*this));
  ck_launch("local_attention");
}

}  // namespace fc::cuda
