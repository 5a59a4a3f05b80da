// Scalar helpers of the CUDA kernels, compiled by nvcc as __host__ __device__ functions and by
// the host C++ compiler as plain inline functions, so the unit tests (tests/unit/cuda, no GPU
// needed) check them against the CPU reference (core/half.h, quant::activation_qdq, ops.h) bit
// for bit. The FP4 / FP8 codecs are quant/codecs_hd.h itself, shared with the CPU code.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "quant/codecs_hd.h"

#ifdef __CUDACC__
#define FC_HD __host__ __device__ __forceinline__
#else
#define FC_HD inline
#endif

namespace fc::cuda {

// The FP4 / FP8 codecs and bit casts are quant's, written once for host and device.
using quant::hd::bits_f32;
using quant::hd::e2m1_f32;
using quant::hd::e4m3_f32;
using quant::hd::f32_bits;
using quant::hd::f32_e2m1;
using quant::hd::f32_e4m3;

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
