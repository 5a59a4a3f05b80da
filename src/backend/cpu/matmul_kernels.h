// Internal interface between the matmul driver (matmul.cpp: validation, blocking, threads) and
// the per-instruction-set kernels (matmul_avx512.cpp, matmul_avx2.cpp, scalar in matmul.cpp).
// A kernel set is a table of plain function pointers; it holds no state, so one set may be used
// from any number of threads at once.
#pragma once

#include <cstdint>
#include <utility>

namespace fc::cpu::detail {

// Weight element type as the kernels see it (the DTypes matmul accepts), used as a table index.
enum class WKind : int { kF32 = 0, kBF16 = 1, kF16 = 2 };
inline constexpr int kNumWKinds = 3;
inline constexpr int64_t wkind_bytes(WKind k) {
  return k == WKind::kF32 ? 4 : 2;
}

// Largest register tile any kernel set uses (activation rows × weight rows).
inline constexpr int kMaxTile = 4;

// Register-tile kernel: for i < mr, j < nr (mr, nr fixed per table entry)
//   s[i][j] = sum_{k < K} x[i*ldx + k] * widen(w_j[k]),  w_j = row j of w, rows ldw elements apart
//   y[i*ldy + j] = add ? y[i*ldy + j] + s[i][j] : s[i][j]
// x: fp32 activations; w: weights of the table's WKind (any alignment); strides in elements.
using TileFn = void (*)(const float* x, int64_t ldx, const void* w, int64_t ldw, int64_t K,
                        float* y, int64_t ldy, bool add);

// Widens a rows × cols block of weights (row stride lds elements) into fp32 dst (row stride
// ldd floats): dst[r*ldd + c] = widen(src[r*lds + c]).
using WidenFn = void (*)(const void* src, WKind kind, int64_t lds, int64_t rows, int64_t cols,
                         float* dst, int64_t ldd);

// Packed-panel GEMM micro-kernel (prefill, gemm_packed.h): for i < mr, j < nr
//   s[i][j] = sum_{k < kc} a[i*lda + k] * bp[k*ldb + j]
//   c[i*ldc + j] = add ? c[i*ldc + j] + s[i][j] : s[i][j]
// a: fp32 activations; bp: kc rows of (at least) gemm_nr readable floats, ldb apart (a packed
// micro-panel: ldb = gemm_nr; any fp32 matrix whose rows are the k index, e.g. attention's V);
// any alignment; mr <= gemm_mr, nr <= gemm_nr. Each s[i][j] is summed in k order.
using GemmFn = void (*)(const float* a, int64_t lda, const float* bp, int64_t ldb, int64_t kc,
                        float* c, int64_t ldc, int mr, int nr, bool add);

// Packs rows × kc fp32 weights (row-major, row stride lds floats) into ceil(rows / gemm_nr)
// micro-panels of kc × gemm_nr floats each, one after the other (dst 32-byte aligned):
//   dst[(p*kc + k)*gemm_nr + j] = src[(p*gemm_nr + j)*lds + k], 0 for rows >= `rows`.
using PackFn = void (*)(const float* src, int64_t lds, int64_t rows, int64_t kc, float* dst);

struct KernelSet {
  const char* name = "";
  int mr = 1;                                        // activation rows per tile (<= kMaxTile)
  int nr = 1;                                        // weight rows per tile (<= kMaxTile)
  TileFn tile[kNumWKinds][kMaxTile][kMaxTile] = {};  // [kind][mr-1][nr-1]
  WidenFn widen = nullptr;
  // The packed-panel GEMM of the blocked (prefill) path; gemm == nullptr: the set has none and
  // the blocked path sweeps widened row-major panels with `tile` instead.
  int gemm_mr = 0, gemm_nr = 0;  // register tile: activation rows × weight rows
  GemmFn gemm = nullptr;
  PackFn pack = nullptr;
};

// Fills table[i][j] with &Kernel<W, i+1, j+1>::run for every i < MR, j < NR.
template <template <WKind, int, int> class Kernel, WKind W, int MR, int NR, int... I>
void fill_tiles(TileFn (&table)[kMaxTile][kMaxTile], std::integer_sequence<int, I...>) {
  static_assert(MR <= kMaxTile && NR <= kMaxTile);
  ((table[I / NR][I % NR] = &Kernel<W, I / NR + 1, I % NR + 1>::run), ...);
}

template <template <WKind, int, int> class Kernel, int MR, int NR>
void fill_all_tiles(KernelSet& ks) {
  ks.mr = MR;
  ks.nr = NR;
  constexpr auto seq = std::make_integer_sequence<int, MR * NR>();
  fill_tiles<Kernel, WKind::kF32, MR, NR>(ks.tile[0], seq);
  fill_tiles<Kernel, WKind::kBF16, MR, NR>(ks.tile[1], seq);
  fill_tiles<Kernel, WKind::kF16, MR, NR>(ks.tile[2], seq);
}

// Kernel sets. The SIMD ones must only be called when the CPU supports them (the driver checks
// with __builtin_cpu_supports).
KernelSet kernels_scalar();
KernelSet kernels_avx2();  // AVX2 + FMA + F16C
// The packed-panel GEMM parts of kernels_scalar / kernels_avx2 (gemm_packed.cpp / gemm_avx2.cpp).
void set_gemm_scalar(KernelSet& ks);
void set_gemm_avx2(KernelSet& ks);  // 6 × 16 register tile
KernelSet kernels_avx512();         // AVX-512 F/BW/VL + FMA

}  // namespace fc::cpu::detail
