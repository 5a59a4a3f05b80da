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

// Direct (decode) path, for T < kI8DirectMaxT + 1 rows: the weights are read in checkpoint layout
// and decoded in registers (no packing); the quantized activations are re-arranged per group of
// kI8DirectGroup = 64 columns into kI8DirectGroupBytes = 128 bytes, matching the order in which
// one 32-byte load of codes decodes (low nibbles: even columns, high nibbles: odd columns):
//   bytes [0, 32):   int8 q of columns 0, 2, .., 62      bytes [32, 64): columns 1, 3, .., 63
//   bytes [64, 96):  int32 c[n] = 12 · Σ_{k<8} q[8n + k]  (the +12 of the kernel's unsigned codes)
//   bytes [96, 128): fp32 a[n] = 256 · xs[block n / 2]   (256 undoes the E4M3-as-FP16 placement)
// with q, c, a = 0 past K; q and xs exactly as quantize_row_i8 (q = xq - 128).
inline constexpr int64_t kI8DirectMaxT = 32;
inline constexpr int64_t kI8DirectGroup = 64;
inline constexpr int64_t kI8DirectGroupBytes = 128;
inline constexpr int kI8DirectMR = 2, kI8DirectNR = 4;  // largest direct register tile

// Bytes of one arranged activation row of K columns.
inline int64_t i8_direct_row_bytes(int64_t K) {
  return (K + kI8DirectGroup - 1) / kI8DirectGroup * kI8DirectGroupBytes;
}

// Quantized rows (xq / xs of quantize_row_i8, T rows) into the direct layout above.
void arrange_i8_direct(const uint8_t* xq, int64_t ldq, const float* xs, int64_t ldxs, int64_t T,
                       int64_t K, uint8_t* xd, int64_t ldxd);

// Direct tile: for i < mr, j < nr (fixed per table entry), with the activations of row i at
// xd + i*ldxd (32-byte aligned) and weight row j at codes + j*ld, scales + j*sld:
//   s[i][j] = gs · Σ over 8-column halves h of a block b of float(Σ_{k in h} q·2e2m1) · e4m3 · xs
//   y[i*ldy + j] = add ? y[i*ldy + j] + s : s     (fp32 sums in the kernel's order)
using I8DirectFn = void (*)(const uint8_t* xd, int64_t ldxd, const uint8_t* codes, int64_t ld,
                            const uint8_t* scales, int64_t sld, int64_t K, float gs, float* y,
                            int64_t ldy, bool add);

struct I8Kernels {
  I8PackFn pack = nullptr;
  I8QuantFn quantize = nullptr;
  I8TileFn tile = nullptr;
  I8DirectFn direct[kI8DirectMR][kI8DirectNR] = {};  // [mr-1][nr-1]; empty: no direct path
};

I8Kernels i8_kernels_scalar();
I8Kernels i8_kernels_avx2();  // AVX2 + FMA + F16C (the driver checks the CPU)
// The direct tiles of i8_kernels_avx2 (nvfp4_decode_i8_avx2.cpp), filled into ks.direct.
void fill_i8_direct_avx2(I8Kernels& ks);

}  // namespace fc::cpu::detail
