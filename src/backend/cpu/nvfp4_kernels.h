// Internal interface between the NVFP4 matmul driver (nvfp4_matmul.cpp: validation, activation
// layout, blocking, threads) and the per-instruction-set kernels (nvfp4_matmul_avx512.cpp,
// nvfp4_matmul_avx2.cpp, scalar in nvfp4_matmul.cpp). Stateless tables of function pointers, as
// in matmul_kernels.h.
#pragma once

#include <cstdint>
#include <utility>

#include "quant/nvfp4.h"

namespace fc::cpu::detail {

// Largest register tile of the direct (decode) kernels: activation rows × weight rows.
inline constexpr int kNvfp4MaxTile = 4;

// The direct kernels read the activations re-arranged per group of G = 8·L columns (L = the
// set's x_lanes, the SIMD width in floats) so that they match the codes as the kernels decode
// them: G/2 packed bytes are loaded as L dwords, and dword j shifted right by 4s holds in its low
// nibble the code of column 8j + s (s < 8). So activation row i, group g, vector s, lane j is
//   xd[i*ldxd + g*G + s*L + j] = x[i, g*G + 8j + s]
// with zeros for columns >= K, and ldxd = K rounded up to G. L = 1 is the plain layout.
//
// Kernels that multiply in bf16 (Nvfp4XLayout::kBf16HiLo) take each activation as two bf16
// parts hi = bf16(x), lo = bf16(x - hi), per group of 128 columns 256 bf16 (= 128 floats of the
// buffer, so ldxd is the same): hi then lo, each as 4 vectors s of 32 lanes w holding
// x[i, g*128 + 4w + s] (nvfp4_matmul_avx512bf16.cpp), zeros for columns >= K.
//
// Kernels that multiply in integers (Nvfp4XLayout::kI16Planes: vpmaddubsw's int16 sums) take
// each activation as 24-bit fixed point per 16-column block, 256 bytes (64 floats of the buffer)
// per group of 64 columns: three int8 planes, int32 corrections and fp32 block scales
// (nvfp4_matmul_avx2i16.cpp); ldxd is then 64 floats per group (nvfp4_x_row_floats).
//
// Direct tile: for i < mr, j < nr (fixed per table entry),
//   s[i][j] = Σ_{k < K} x[i, k] · W[j, k],  W[j, k] = e2m1(code) · e4m3(scale) · gs
//   y[i*ldy + j] = add ? y[i*ldy + j] + s[i][j] : s[i][j]
// codes: row j at codes + j*ld bytes; scales: row j at scales + j*sld bytes; K % 16 == 0.
using Nvfp4TileFn = void (*)(const float* xd, int64_t ldxd, const uint8_t* codes, int64_t ld,
                             const uint8_t* scales, int64_t sld, int64_t K, float gs, float* y,
                             int64_t ldy, bool add);

// Dequantizes rows × cols weights starting at column k0 (k0 and cols multiples of 16) into fp32
// dst (row stride ldd floats), bit-identical to quant::dequantize_row.
using Nvfp4DequantFn = void (*)(const uint8_t* codes, int64_t ld, const uint8_t* scales,
                                int64_t sld, int64_t rows, int64_t k0, int64_t cols, float gs,
                                float* dst, int64_t ldd);

// Writes x [T, K] (row stride ldx) in a set's activation layout (row stride ldxd floats).
using Nvfp4ArrangeFn = void (*)(const float* x, int64_t T, int64_t ldx, int64_t K, float* xd,
                                int64_t ldxd);

// Kernels that multiply with vpdpbusd (Nvfp4XLayout::kI8Planes) take the activations as the
// kI16Planes numbers, laid out per group of 128 columns in 512 bytes (128 floats of the buffer,
// so ldxd is as for kBf16HiLo; nvfp4_matmul_avx512vnni.cpp).
// The 24-bit fixed point of the integer direct kernels (kI16Planes, kI8Planes), one scale per
// 16-column block of an activation row whose largest |x| is mx: x ≈ as · q with q = rint(x · inv),
// |q| <= kQ24Max (+1 from the rounding of x · inv), which keeps q's top int8 plane within
// [-127, 127]. A block holding a non-finite value gets as = NaN (every output it touches is NaN)
// and inv = 0; an all-zero block as = inv = 0. Shared so both kernel families see the same q.
inline constexpr float kQ24Max = 8323072.0f;  // 32512 · 256
struct Q24BlockScale {
  float as = 0.0f, inv = 0.0f;
};
inline Q24BlockScale q24_block_scale(float mx, bool finite) {
  if (!finite) return {__builtin_nanf(""), 0.0f};
  if (mx > 0.0f) return {mx / kQ24Max, kQ24Max / mx};
  return {};
}

enum class Nvfp4XLayout { kF32Lanes, kBf16HiLo, kI16Planes, kI8Planes };

struct Nvfp4KernelSet {
  const char* name = "";
  Nvfp4XLayout x_layout = Nvfp4XLayout::kF32Lanes;
  int x_lanes = 1;                   // L of the kF32Lanes activation layout
  Nvfp4ArrangeFn arrange = nullptr;  // kBf16HiLo: the set's own; kF32Lanes: the driver's
  int mr = 1;                        // activation rows per direct tile (<= kNvfp4MaxTile)
  int nr = 1;                        // weight rows per direct tile (<= kNvfp4MaxTile)
  Nvfp4TileFn tile[kNvfp4MaxTile][kNvfp4MaxTile] = {};  // [mr-1][nr-1]
  Nvfp4DequantFn dequant = nullptr;
};

// Fills ks.tile[i][j] with &Kernel<i+1, j+1>::run for every i < MR, j < NR.
template <template <int, int> class Kernel, int MR, int NR, int... I>
void fill_nvfp4_tiles(Nvfp4KernelSet& ks, std::integer_sequence<int, I...>) {
  static_assert(MR <= kNvfp4MaxTile && NR <= kNvfp4MaxTile);
  ks.mr = MR;
  ks.nr = NR;
  ((ks.tile[I / NR][I % NR] = &Kernel<I / NR + 1, I % NR + 1>::run), ...);
}

template <template <int, int> class Kernel, int MR, int NR>
void fill_nvfp4_tiles(Nvfp4KernelSet& ks) {
  fill_nvfp4_tiles<Kernel, MR, NR>(ks, std::make_integer_sequence<int, MR * NR>());
}

// Argument checks of the NVFP4 matmul entry points (fn names the caller in the fc::Error):
// sizes, cols % 16, code / scale / activation / output strides, null pointers.
void check_nvfp4_args(const char* fn, const float* x, int64_t T, int64_t ldx,
                      const quant::Nvfp4Matrix& w, const float* y, int64_t ldy);

// The SIMD sets must only be used when the CPU supports them (the driver checks).
Nvfp4KernelSet nvfp4_kernels_scalar();
Nvfp4KernelSet nvfp4_kernels_avx2();         // AVX2 + FMA + F16C
Nvfp4KernelSet nvfp4_kernels_avx2_i16();     // the same, direct tiles in integers (vpmaddubsw)
Nvfp4KernelSet nvfp4_kernels_avx512();       // AVX-512 F/BW/VL + FMA
Nvfp4KernelSet nvfp4_kernels_avx512_bf16();  // the same + AVX512_BF16 (direct tiles in bf16)
Nvfp4KernelSet nvfp4_kernels_avx512_vnni();  // AVX-512 + AVX512_VNNI (direct tiles in integers)
// Columns per activation group of a set's direct-kernel layout.
inline int64_t nvfp4_x_group(const Nvfp4KernelSet& ks) {
  switch (ks.x_layout) {
    case Nvfp4XLayout::kBf16HiLo:
    case Nvfp4XLayout::kI8Planes:
      return 128;
    case Nvfp4XLayout::kI16Planes:
      return 64;
    default:
      return 8 * int64_t{ks.x_lanes};
  }
}

// Floats of the arranged activation buffer per row of K columns (ldxd, a multiple of 16).
inline int64_t nvfp4_x_row_floats(const Nvfp4KernelSet& ks, int64_t K) {
  const int64_t G = nvfp4_x_group(ks), groups = (K + G - 1) / G;
  return ks.x_layout == Nvfp4XLayout::kI16Planes ? 64 * groups : G * groups;
}

}  // namespace fc::cpu::detail
