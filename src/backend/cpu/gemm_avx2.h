// Internal: the AVX2 prefill GEMM on packed weight panels (gemm_avx2.cpp), shared by the dense
// (matmul.cpp) and NVFP4 (nvfp4_matmul.cpp) drivers. Call only on CPUs with AVX2 + FMA + F16C.
#pragma once

#include <cstdint>

#include "backend/cpu/matmul_kernels.h"
#include "core/thread_pool.h"

namespace fc::cpu::detail {

// Fills a panel with weights W[n0 + r, k0 + c] as fp32 at dst[c * 16 + r] for r < 16, c < kc
// (rows >= `rows` zero); dst is 32-byte aligned. scratch: scratch_floats(kc) floats of the
// calling thread. Must be safe to call from several threads at once.
struct PanelPacker {
  virtual ~PanelPacker() = default;
  virtual int64_t scratch_floats(int64_t kc) const = 0;
  virtual void pack(int64_t n0, int64_t rows, int64_t k0, int64_t kc, float* dst,
                    float* scratch) const = 0;
};

// dst[c * 16 + r] = widen(src[r * lds + c]) for r < rows (<= 16), c < kc; rows >= `rows` zero.
void pack_panel_avx2(const void* src, WKind kind, int64_t lds, int64_t rows, int64_t kc,
                     float* dst);

// y[t, n] (+)= Σ_k x[t, k] · W[n, k] for t < T, n < N, k < K, W given by `pack`.
void packed_gemm_avx2(ThreadPool& pool, const float* x, int64_t T, int64_t ldx, int64_t N,
                      int64_t K, const PanelPacker& pack, float* y, int64_t ldy, bool accumulate);

}  // namespace fc::cpu::detail
