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

// How a blocked GEMM y[T, N] (+)= x[T, K] · W[N, K]ᵀ is cut up (shared by the blocked paths of
// matmul, nvfp4_matmul, packed_gemm and nvfp4_matmul_i8): K blocks of near-equal size, multiples
// of k_align, at most k_max unless k_align is larger; tasks = (weight panel of panel_rows rows,
// activation block) pairs, panel-major, activations split only when there are fewer panels than
// threads (small N), each block keeping >= 4 register tiles of mr rows.
struct BlockedSplit {
  int64_t T = 0, N = 0, panel_rows = 0;
  int64_t kblock = 0;    // columns per K block
  int64_t t_blocks = 1;  // activation blocks per panel
  int64_t t_rows = 0;    // rows per activation block (a multiple of mr)
  int64_t tasks = 0;     // panels × t_blocks
  int64_t grain = 1;     // tasks per thread (parallel_for grain)

  // Calls f(n0, n1, t0, t1) for the tasks [b, e) of one parallel_for range: weight rows
  // [n0, n1) × activation rows [t0, t1), consecutive tasks of one panel as one call (so each
  // panel is prepared once per thread).
  template <typename F>
  void for_runs(int64_t b, int64_t e, F&& f) const {
    for (int64_t i = b; i < e;) {
      const int64_t panel = i / t_blocks;
      const int64_t j = e < (panel + 1) * t_blocks ? e : (panel + 1) * t_blocks;
      const int64_t n0 = panel * panel_rows, n1 = N < n0 + panel_rows ? N : n0 + panel_rows;
      const int64_t t1 = (j - panel * t_blocks) * t_rows;
      f(n0, n1, (i - panel * t_blocks) * t_rows, T < t1 ? T : t1);
      i = j;
    }
  }
};

BlockedSplit split_blocked(int64_t T, int64_t N, int64_t K, int64_t panel_rows, int64_t mr,
                           int64_t k_max, int64_t k_align, int64_t threads);

// ks.gemm must be set. k_align: every K block but the last is a multiple of it (16 for NVFP4's
// scale blocks); threads: how many of the pool's threads to use (>= 1).
void packed_gemm(const KernelSet& ks, ThreadPool& pool, const GemmProblem& p, int64_t k_align,
                 int64_t threads, const FillFn& fill);

}  // namespace fc::cpu::detail
