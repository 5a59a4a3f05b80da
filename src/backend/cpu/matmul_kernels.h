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

struct KernelSet {
  const char* name = "";
  int mr = 1;                                        // activation rows per tile (<= kMaxTile)
  int nr = 1;                                        // weight rows per tile (<= kMaxTile)
  TileFn tile[kNumWKinds][kMaxTile][kMaxTile] = {};  // [kind][mr-1][nr-1]
  WidenFn widen = nullptr;
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
KernelSet kernels_avx2();    // AVX2 + FMA + F16C
KernelSet kernels_avx512();  // AVX-512 F/BW/VL + FMA

}  // namespace fc::cpu::detail
