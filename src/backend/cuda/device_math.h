// Scalar number-format helpers shared by the CUDA kernels and the host: compiled by nvcc as
// __host__ __device__ functions and by the host C++ compiler as plain inline functions, so the
// unit tests (tests/unit/cuda_host, no GPU needed) check them against the CPU reference
// (quant/nvfp4.h, core/half.h) bit for bit. Every function mirrors the fp32 operation order of
// its CPU counterpart.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#ifdef __CUDACC__
#define FC_HD __host__ __device__ __forceinline__
#else
#define FC_HD inline
#endif

namespace fc::cuda {

FC_HD float bits_f32(uint32_t u) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, 4);
  return f;
#endif
}
FC_HD uint32_t f32_bits(float f) {
#ifdef __CUDA_ARCH__
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
#endif
}

FC_HD float bf16_f32(uint16_t h) {
  return bits_f32(static_cast<uint32_t>(h) << 16);
}
// Round to nearest even; NaN stays a (quiet) NaN. Same as fc::f32_to_bf16.
FC_HD uint16_t f32_bf16(float f) {
  uint32_t u = f32_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

// IEEE binary16 to fp32 (exact), subnormals, infinities and NaN included.
FC_HD float f16_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1Fu, m = h & 0x3FFu;
  if (e == 0) {  // zero or subnormal: m · 2⁻²⁴, exact in fp32
    const float v = static_cast<float>(m) * 5.9604644775390625e-8f;
    return sign ? -v : v;
  }
  if (e == 31) return bits_f32(sign | 0x7f800000u | (m << 13));
  return bits_f32(sign | ((e + 112u) << 23) | (m << 13));
}

// E2M1 code (bit 3 = sign) to fp32 without a table: magnitudes 2..7 are 0x3F000000 + (mag << 22)
// (spec weight-formats §4.3), 1 is 0.5, 0 is 0.
FC_HD float e2m1_f32(uint32_t code) {
  const uint32_t mag = code & 7u;
  const uint32_t bits = mag >= 2 ? 0x3F000000u + (mag << 22) : (mag ? 0x3F000000u : 0u);
  return bits_f32(bits | ((code & 8u) << 28));
}

// fp32 to E2M1 code: round to nearest, ties to the even code, saturating at ±6; NaN gives 0.
// Same thresholds as quant::float_to_e2m1.
FC_HD uint8_t f32_e2m1(float x) {
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

// FP8 E4M3 ("e4m3fn") byte to fp32: 0x7F / 0xFF are NaN, subnormals m · 2⁻⁹.
FC_HD float e4m3_f32(uint8_t b) {
  const uint32_t s = b >> 7, e = (b >> 3) & 0xFu, m = b & 7u;
  if (e == 15 && m == 7) return bits_f32(0x7fc00000u);
  if (e == 0) {
    const float v = static_cast<float>(m) * 0.001953125f;
    return s ? -v : v;
  }
  return bits_f32((s << 31) | ((e + 120u) << 23) | (m << 20));
}

// fp32 to E4M3: round to nearest even, saturating at ±448, NaN gives 0x7F. Same operations as
// quant::float_to_e4m3 (rintf rounds half to even like nearbyint in the default mode).
FC_HD uint8_t f32_e4m3(float x) {
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
  int ex = e - 1;
  int m = static_cast<int>(rintf((2.0f * f - 1.0f) * 8.0f));
  if (m == 8) {
    m = 0;
    ++ex;
  }
  if (ex > 8 || (ex == 8 && m > 6)) return sign | 0x7E;
  return static_cast<uint8_t>(sign | ((ex + 7) << 3) | m);
}

FC_HD float clampf(float x, float lo, float hi) {
  return x < lo ? lo : (hi < x ? hi : x);
}

// W4A4 activation quantize-dequantize of one 16-element block (spec weight-formats §2.3), the
// fp32 operation order of quant::activation_qdq: in and out may alias.
FC_HD void qdq_block16(const float* x, float input_scale, float* out) {
  const float ga = 1.0f / input_scale;
  const float inv_ga = 1.0f / ga;
  float amax = 0.0f;
  for (int i = 0; i < 16; ++i) amax = fmaxf(amax, fabsf(x[i]));
  const float sa = e4m3_f32(f32_e4m3(clampf(ga * (amax * (1.0f / 6.0f)), -448.0f, 448.0f)));
  const float inv = sa == 0.0f ? 0.0f : 1.0f / (sa * inv_ga);
  const float deq = sa / ga;
  for (int i = 0; i < 16; ++i) out[i] = e2m1_f32(f32_e2m1(clampf(x[i] * inv, -6.0f, 6.0f))) * deq;
}

// gelu_pytorch_tanh(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x³))), as ops.cpp gelu_tanh.
FC_HD float gelu_tanh_f(float x) {
  return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
}
FC_HD float silu_f(float x) {
  return x / (1.0f + expf(-x));
}

}  // namespace fc::cuda
