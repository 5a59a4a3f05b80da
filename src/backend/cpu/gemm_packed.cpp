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

void packed_gemm(const KernelSet& ks, ThreadPool& pool, const GemmProblem& p, int64_t k_align,
                 int64_t threads, const FillFn& fill) {
  const int64_t T = p.T, N = p.N, K = p.K;
  // K blocks of near-equal size, multiples of k_align, at most kKc unless k_align is larger.
  const int64_t n_kblocks = (K + kKc - 1) / kKc;
  const int64_t kblock = ((K + n_kblocks - 1) / n_kblocks + k_align - 1) / k_align * k_align;
  // Tasks = (panel, activation block) pairs, panel-major; activations are split only when there
  // are fewer panels than threads, each block keeping >= 4 register tiles of rows.
  const int64_t mr = ks.gemm_mr;
  const int64_t n_panels = (N + kPanelRows - 1) / kPanelRows;
  int64_t t_blocks = 1;
  if (n_panels < threads) {
    t_blocks = std::min((threads + n_panels - 1) / n_panels, std::max<int64_t>(1, T / (4 * mr)));
  }
  const int64_t t_rows = ((T + t_blocks - 1) / t_blocks + mr - 1) / mr * mr;
  t_blocks = (T + t_rows - 1) / t_rows;
  const int64_t tasks = n_panels * t_blocks;
  const int64_t grain = (tasks + threads - 1) / threads;
  const int64_t panel_floats = kPanelRows * kblock;

  pool.parallel_for(tasks, grain, [&](int64_t b, int64_t e, int) {
    // Per-call, per-thread scratch: every element read is written first.
    const Aligned tmp(panel_floats), packed(panel_floats);
    // Consecutive tasks of one panel become one call, so each panel block is packed once.
    for (int64_t i = b; i < e;) {
      const int64_t panel = i / t_blocks;
      const int64_t j = std::min(e, (panel + 1) * t_blocks);
      const int64_t tb0 = i - panel * t_blocks, tb1 = j - panel * t_blocks;
      const int64_t n0 = panel * kPanelRows, n1 = std::min(N, n0 + kPanelRows);
      run_panel(ks, p, n0, n1, tb0 * t_rows, std::min(T, tb1 * t_rows), kblock, fill, tmp.p,
                packed.p);
      i = j;
    }
  });
}

}  // namespace fc::cpu::detail
