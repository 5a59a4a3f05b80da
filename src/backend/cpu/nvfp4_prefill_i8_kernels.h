// Internal interface of the int8 NVFP4 prefill (nvfp4_prefill_i8.h): the driver
// (nvfp4_prefill_i8.cpp: scalar definitions, blocking, threads) and its AVX2 kernels
// (nvfp4_prefill_i8_avx2.cpp).
#pragma once

#include <cstdint>

namespace fc::cpu::detail {

// Quantized activations: xq[t*ldq + k] = q[t, k] + 128 (bytes, 1..255), xs[t*ldxs + b] = the
// value of one unit of q · (2·e2m1) in block b: max_b |x| / 127 / 2 (0 for an all-zero block).
//
// Packed weights: micro-panels of kI8PanelRows weight rows; per 16-column block kI8BlockBytes:
//   bytes [0, 128):   4 vectors s of 8 lanes r × 4 bytes: byte 32s + 4r + i = 2·e2m1 of row r,
//                     column 16b + 4s + i (int8, -12..12; 0 for rows past the matrix)
//   bytes [128, 160): int32 corr[r] = 128 · Σ_{k in b} 2·e2m1[r, k] (the +128 of xq)
//   bytes [160, 192): float wsc[r] = e4m3(scale[r, b]) · gs (0 for rows past the matrix)
inline constexpr int kI8PanelRows = 8;
inline constexpr int64_t kI8BlockBytes = 192;
inline constexpr int kI8TileRows = 4;  // activation rows per register tile

// The scalar definition of one row's quantization (the AVX2 one equals it bit for bit).
void quantize_row_i8(const float* x, int64_t K, uint8_t* xq, float* xs);

// Rows [0, rows) (rows <= kPanelRows of the driver) × columns [k0, k0 + kc) of an NVFP4 matrix
// (codes row stride ld bytes, scales row stride sld) into ceil(rows / 8) micro-panels of
// kc / 16 blocks each, one after the other. k0, kc: multiples of 16.
using I8PackFn = void (*)(const uint8_t* codes, int64_t ld, const uint8_t* scales, int64_t sld,
                          int64_t rows, int64_t k0, int64_t kc, float gs, uint8_t* dst);
// Quantizes T rows of x (row stride ldx, K % 16 == 0) into xq / xs as above.
using I8QuantFn = void (*)(const float* x, int64_t T, int64_t ldx, int64_t K, uint8_t* xq,
                           int64_t ldq, float* xs, int64_t ldxs);
// For i < mr (<= kI8TileRows), j < nr (<= 8): s = Σ over `blocks` blocks b (in order) of
//   acc = fma(float(Σ_k q[i, 16b + k] · v[j, 16b + k]), wsc[j, b] · xs[i, b], acc)
// with xq / xs at the panel's first column; y[i*ldy + j] = add ? y + s : s.
using I8TileFn = void (*)(const uint8_t* xq, int64_t ldq, const float* xs, int64_t ldxs,
                          const uint8_t* panel, int64_t blocks, float* y, int64_t ldy, int mr,
                          int nr, bool add);

struct I8Kernels {
  I8PackFn pack = nullptr;
  I8QuantFn quantize = nullptr;
  I8TileFn tile = nullptr;
};

I8Kernels i8_kernels_scalar();
I8Kernels i8_kernels_avx2();  // AVX2 + FMA (the driver checks the CPU)

}  // namespace fc::cpu::detail
