// Blocked (prefill) GEMM over packed weight panels, shared by dense matmul and NVFP4 matmul:
// y[t, n] (+)= Σ_k x[t, k] · W[n, k] for kernel sets with a packed-panel micro-kernel
// (KernelSet::gemm, matmul_kernels.h).
//
// Blocking (Zen 3: 32 KiB L1d, 512 KiB L2 per core): W is cut into panels of kPanelRows rows ×
// K blocks of <= kKc columns; a thread fills one panel block as fp32 (the caller's FillFn:
// widening BF16, dequantizing NVFP4), packs it into k-major micro-panels of gemm_nr rows (64 KiB
// at kKc = 256, L2), and sweeps every activation row over it in blocks of <= kMcRows rows (A
// block 120 KiB, L2), each micro-panel (16 KiB) staying in L1 while mr-row register tiles pass.
#pragma once

#include <cstdint>
#include <functional>

#include "backend/cpu/matmul_kernels.h"
#include "core/thread_pool.h"

namespace fc::cpu::detail {

// Weight rows [n0, n0 + rows) × columns [k0, k0 + kc) as fp32: either written into tmp (row
// stride kc floats, 64-byte aligned, room for kPanelRows rows) and tmp returned, or a pointer to
// them in place; *lds = the returned rows' stride in floats.
using FillFn = std::function<const float*(int64_t n0, int64_t rows, int64_t k0, int64_t kc,
                                          float* tmp, int64_t* lds)>;

struct GemmProblem {
  const float* x = nullptr;  // [T, K], row stride ldx
  int64_t T = 0, ldx = 0;
  int64_t N = 0, K = 0;  // W is [N, K]
  float* y = nullptr;    // [T, N], row stride ldy
  int64_t ldy = 0;
  bool accumulate = false;
};

// ks.gemm must be set. k_align: every K block but the last is a multiple of it (16 for NVFP4's
// scale blocks); threads: how many of the pool's threads to use (>= 1).
void packed_gemm(const KernelSet& ks, ThreadPool& pool, const GemmProblem& p, int64_t k_align,
                 int64_t threads, const FillFn& fill);

}  // namespace fc::cpu::detail
