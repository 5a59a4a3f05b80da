// Packed-panel GEMM driver (gemm_packed.h) and the portable scalar micro-kernel.
#include "backend/cpu/gemm_packed.h"

#include <algorithm>
#include <memory>

namespace fc::cpu::detail {
namespace {

constexpr int64_t kPanelRows = 64;  // a multiple of every set's gemm_nr (8, 16)
constexpr int64_t kKc = 256;
constexpr int64_t kMcRows = 120;

// ---- Portable scalar micro-kernel: 4 × 8 -------------------------------------------------------

constexpr int kScalarMR = 4, kScalarNR = 8;

void scalar_gemm(const float* a, int64_t lda, const float* bp, int64_t ldb, int64_t kc, float* c,
                 int64_t ldc, int mr, int nr, bool add) {
  float s[kScalarMR][kScalarNR] = {};
  for (int64_t k = 0; k < kc; ++k) {
    const float* b = bp + k * ldb;
    for (int i = 0; i < mr; ++i) {
      const float av = a[i * lda + k];
      for (int j = 0; j < nr; ++j) s[i][j] += av * b[j];
    }
  }
  for (int i = 0; i < mr; ++i) {
    for (int j = 0; j < nr; ++j) c[i * ldc + j] = add ? c[i * ldc + j] + s[i][j] : s[i][j];
  }
}

void scalar_pack(const float* src, int64_t lds, int64_t rows, int64_t kc, float* dst) {
  for (int64_t p = 0; p * kScalarNR < rows; ++p) {
    for (int64_t k = 0; k < kc; ++k) {
      for (int j = 0; j < kScalarNR; ++j) {
        const int64_t r = p * kScalarNR + j;
        dst[(p * kc + k) * kScalarNR + j] = r < rows ? src[r * lds + k] : 0.0f;
      }
    }
  }
}

// 64-byte aligned view into an owned buffer of n floats (+ slack).
struct Aligned {
  std::unique_ptr<float[]> buf;
  float* p = nullptr;
  explicit Aligned(int64_t n) : buf(new float[static_cast<size_t>(n + 16)]) {
    const auto addr = reinterpret_cast<uintptr_t>(buf.get());
    p = buf.get() + ((64 - addr % 64) % 64) / sizeof(float);
  }
};

// y[t0:t1, n0:n1] for one weight panel, every K block.
void run_panel(const KernelSet& ks, const GemmProblem& p, int64_t n0, int64_t n1, int64_t t0,
               int64_t t1, int64_t kblock, const FillFn& fill, float* tmp, float* packed) {
  const int64_t rows = n1 - n0, nr = ks.gemm_nr, mr = ks.gemm_mr;
  const int64_t mc = std::max(mr, kMcRows / mr * mr);
  for (int64_t kb = 0; kb < p.K; kb += kblock) {
    const int64_t kc = std::min(kblock, p.K - kb);
    int64_t lds = kc;
    const float* w = fill(n0, rows, kb, kc, tmp, &lds);
    ks.pack(w, lds, rows, kc, packed);
    const bool add = p.accumulate || kb > 0;  // later K blocks add onto the partial sums
    for (int64_t tb = t0; tb < t1; tb += mc) {
      const int64_t te = std::min(t1, tb + mc);
      for (int64_t j = 0; j < rows; j += nr) {
        const float* bp = packed + j * kc;
        const int jn = static_cast<int>(std::min(nr, rows - j));
        for (int64_t t = tb; t < te; t += mr) {
          ks.gemm(p.x + t * p.ldx + kb, p.ldx, bp, nr, kc, p.y + t * p.ldy + n0 + j, p.ldy,
                  static_cast<int>(std::min(mr, te - t)), jn, add);
        }
      }
    }
  }
}

}  // namespace

void set_gemm_scalar(KernelSet& ks) {
  ks.gemm_mr = kScalarMR;
  ks.gemm_nr = kScalarNR;
  ks.gemm = &scalar_gemm;
  ks.pack = &scalar_pack;
}

BlockedSplit split_blocked(int64_t T, int64_t N, int64_t K, int64_t panel_rows, int64_t mr,
                           int64_t k_max, int64_t k_align, int64_t threads) {
  BlockedSplit s;
  s.T = T;
  s.N = N;
  s.panel_rows = panel_rows;
  const int64_t n_kblocks = (K + k_max - 1) / k_max;
  s.kblock = ((K + n_kblocks - 1) / n_kblocks + k_align - 1) / k_align * k_align;
  const int64_t n_panels = (N + panel_rows - 1) / panel_rows;
  if (n_panels < threads) {
    s.t_blocks = std::min((threads + n_panels - 1) / n_panels, std::max<int64_t>(1, T / (4 * mr)));
  }
  s.t_rows = ((T + s.t_blocks - 1) / s.t_blocks + mr - 1) / mr * mr;
  s.t_blocks = (T + s.t_rows - 1) / s.t_rows;
  s.tasks = n_panels * s.t_blocks;
  s.grain = (s.tasks + threads - 1) / threads;
  return s;
}

void packed_gemm(const KernelSet& ks, ThreadPool& pool, const GemmProblem& p, int64_t k_align,
                 int64_t threads, const FillFn& fill) {
  const BlockedSplit sp =
      split_blocked(p.T, p.N, p.K, kPanelRows, ks.gemm_mr, kKc, k_align, threads);
  const int64_t panel_floats = kPanelRows * sp.kblock;
  pool.parallel_for(sp.tasks, sp.grain, [&](int64_t b, int64_t e, int) {
    // Per-call, per-thread scratch: every element read is written first.
    const Aligned tmp(panel_floats), packed(panel_floats);
    sp.for_runs(b, e, [&](int64_t n0, int64_t n1, int64_t t0, int64_t t1) {
      run_panel(ks, p, n0, n1, t0, t1, sp.kblock, fill, tmp.p, packed.p);
    });
  });
}

}  // namespace fc::cpu::detail
