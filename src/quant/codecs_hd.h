// Scalar FP4 (E2M1) and FP8 (E4M3) codecs written once for the host and the CUDA kernels:
// compiled by nvcc as __host__ __device__ functions and by the host compiler as plain inline
// ones. quant/nvfp4.h's float_to_e2m1 / e4m3_to_float / float_to_e4m3 are these functions, and
// backend/cuda/device_math.h uses them in the kernels, so both sides round identically by
// construction (spec weight-formats §1.1 thresholds, E4M3 round-half-even saturating at ±448).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#ifdef __CUDACC__
#define FC_QUANT_HD __host__ __device__ __forceinline__
#else
#define FC_QUANT_HD inline
#endif

namespace fc::quant::hd {

FC_QUANT_HD float bits_f32(uint32_t u) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, 4);
  return f;
#endif
}
FC_QUANT_HD uint32_t f32_bits(float f) {
#ifdef __CUDA_ARCH__
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
#endif
}

// E2M1 code (bit 3 = sign; higher bits ignored) to fp32 without a table: magnitudes 2..7 are
// 0x3F000000 + (mag << 22) (spec weight-formats §4.3), 1 is 0.5, 0 is 0.
FC_QUANT_HD float e2m1_f32(uint32_t code) {
  const uint32_t mag = code & 7u;
  const uint32_t bits = mag >= 2 ? 0x3F000000u + (mag << 22) : (mag ? 0x3F000000u : 0u);
  return bits_f32(bits | ((code & 8u) << 28));
}

// fp32 to E2M1 code: round to nearest, ties to the even code (closed bounds), saturating at ±6;
// NaN gives 0, -0 keeps its sign bit.
FC_QUANT_HD uint8_t f32_e2m1(float x) {
  if (x != x) return 0;
  const float a = fabsf(x);
  uint8_t m;
  if (a <= 0.25f)
    m = 0;
  else if (a < 0.75f)
    m = 1;
  else if (a <= 1.25f)
    m = 2;
  else if (a < 1.75f)
    m = 3;
  else if (a <= 2.5f)
    m = 4;
  else if (a < 3.5f)
    m = 5;
  else if (a <= 5.0f)
    m = 6;
  else
    m = 7;
  return static_cast<uint8_t>(m | ((f32_bits(x) >> 31) ? 8 : 0));
}

// FP8 E4M3 ("e4m3fn") byte to fp32: 0x7F / 0xFF are (positive, quiet) NaN, subnormals m · 2⁻⁹.
FC_QUANT_HD float e4m3_f32(uint8_t b) {
  const uint32_t s = b >> 7, e = (b >> 3) & 0xFu, m = b & 7u;
  if (e == 15 && m == 7) return bits_f32(0x7fc00000u);
  if (e == 0) {
    const float v = static_cast<float>(m) * 0.001953125f;
    return s ? -v : v;
  }
  return bits_f32((s << 31) | ((e + 120u) << 23) | (m << 20));
}

// fp32 to E4M3: round to nearest even, saturating at ±448, NaN gives 0x7F.
FC_QUANT_HD uint8_t f32_e4m3(float x) {
  if (x != x) return 0x7F;
  const uint8_t sign = (f32_bits(x) >> 31) ? 0x80 : 0;
  const float a = fabsf(x);
  if (a >= 448.0f) return sign | 0x7E;
  if (a < 0.015625f) {  // below 2⁻⁶: subnormal step 2⁻⁹ (8 rounds up into the first normal)
    const int m = static_cast<int>(rintf(a * 512.0f));
    return static_cast<uint8_t>(sign | m);
  }
  int e = 0;
  const float f = frexpf(a, &e);  // a = f·2^e, f in [0.5, 1)
  int ex = e - 1;                 // a = (2f)·2^ex, 2f in [1, 2)
  int m = static_cast<int>(rintf((2.0f * f - 1.0f) * 8.0f));
  if (m == 8) {
    m = 0;
    ++ex;
  }
  if (ex > 8 || (ex == 8 && m > 6)) return sign | 0x7E;
  return static_cast<uint8_t>(sign | ((ex + 7) << 3) | m);
}

}  // namespace fc::quant::hd
