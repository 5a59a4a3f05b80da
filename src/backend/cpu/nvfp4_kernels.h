// Internal interface between the NVFP4 matmul driver (nvfp4_matmul.cpp: validation, activation
// layout, blocking, threads) and the per-instruction-set kernels (nvfp4_matmul_avx512.cpp,
// nvfp4_matmul_avx2.cpp, scalar in nvfp4_matmul.cpp). Stateless tables of function pointers, as
// in matmul_kernels.h.
#pragma once

#include <cstdint>
#include <utility>

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

struct Nvfp4KernelSet {
  const char* name = "";
  int x_lanes = 1;  // L of the activation layout above
  int mr = 1;       // activation rows per direct tile (<= kNvfp4MaxTile)
  int nr = 1;       // weight rows per direct tile (<= kNvfp4MaxTile)
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

// The SIMD sets must only be used when the CPU supports them (the driver checks).
Nvfp4KernelSet nvfp4_kernels_scalar();
Nvfp4KernelSet nvfp4_kernels_avx2();    // AVX2 + FMA + F16C
Nvfp4KernelSet nvfp4_kernels_avx512();  // AVX-512 F/BW/VL + FMA

}  // namespace fc::cpu::detail
