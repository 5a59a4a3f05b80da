#include "quant/nvfp4.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "core/error.h"
#include "quant/codecs_hd.h"

namespace fc::quant {

const float kE2M1[16] = {0.0f,  0.5f,  1.0f,  1.5f,  2.0f,  3.0f,  4.0f,  6.0f,
                         -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};

// The codecs are shared with the CUDA kernels (quant/codecs_hd.h).
uint8_t float_to_e2m1(float x) {
  return hd::f32_e2m1(x);
}

float e4m3_to_float(uint8_t b) {
  return hd::e4m3_f32(b);
}

uint8_t float_to_e4m3(float x) {
  return hd::f32_e4m3(x);
}

const float* e4m3_table() {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> t{};
    for (int i = 0; i < 256; ++i)
      t[static_cast<size_t>(i)] = e4m3_to_float(static_cast<uint8_t>(i));
    return t;
  }();
  return table.data();
}

void dequantize_row(const Nvfp4Matrix& w, int64_t r, float* dst) {
  const uint8_t* p = w.packed + r * w.ld;
  const uint8_t* s = w.scales + r * w.scale_ld;
  const float* e4m3 = e4m3_table();
  for (int64_t k = 0; k < w.cols; k += 2) {
    const uint8_t byte = p[k / 2];
    const float sc = e4m3[s[k / 16]] * w.global_scale;
    dst[k] = kE2M1[byte & 0xF] * sc;
    dst[k + 1] = kE2M1[byte >> 4] * sc;
  }
}

float abs_max(const float* w, int64_t rows, int64_t cols, int64_t ld) {
  float m = 0.0f;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) m = std::max(m, std::fabs(w[r * ld + c]));
  return m;
}

Nvfp4Tensor quantize(const float* w, int64_t rows, int64_t cols, int64_t ld, float amax,
                     Producer producer) {
  FC_CHECK(cols % 16 == 0, "NVFP4 quantization needs a column count divisible by 16, got ", cols);
  FC_CHECK(std::isfinite(amax) && amax > 0.0f, "NVFP4 quantization: invalid amax ", amax);
  Nvfp4Tensor t;
  t.rows = rows;
  t.cols = cols;
  t.packed.assign(static_cast<size_t>(rows * cols / 2), 0);
  t.scales.assign(static_cast<size_t>(rows * cols / 16), 0);
  const float* e4m3 = e4m3_table();
  // Operation order follows each producer's fp32 arithmetic (spec §2.3, §3.1).
  const float s2 = amax / 2688.0f;  // ModelOpt weight_scale_2
  const float gs = ct_global_scale(amax);
  t.global_scale = producer == Producer::kModelOpt ? s2 : 1.0f / gs;
  t.stored_scale = producer == Producer::kModelOpt ? s2 : gs;
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = w + r * ld;
    for (int64_t b = 0; b < cols / 16; ++b) {
      float amax_b = 0.0f;
      for (int i = 0; i < 16; ++i) amax_b = std::max(amax_b, std::fabs(row[b * 16 + i]));
      uint8_t sb;
      float step;  // the divisor of W in the code rounding
      if (producer == Producer::kModelOpt) {
        // An all-zero block gets scale 1.0 before the clamp (modelopt nvfp4_tensor.py
        // get_weights_scaling_factor).
        const float raw = amax_b == 0.0f ? 1.0f : amax_b / (6.0f * s2);
        sb = float_to_e4m3(std::clamp(raw, 0.001953125f, 448.0f));
        step = e4m3[sb] * s2;
      } else {
        const float raw = gs * (amax_b / 6.0f);
        // CT clamps to the fp8 range and replaces scales that are exactly 0 by 0.125
        // (calculate_qparams).
        sb = float_to_e4m3(std::clamp(raw, -448.0f, 448.0f));
        if (e4m3[sb] == 0.0f) sb = float_to_e4m3(0.125f);
        step = e4m3[sb] / gs;
      }
      t.scales[static_cast<size_t>(r * (cols / 16) + b)] = sb;
      // ModelOpt takes the sign from x < 0 (so -0.0 gets code 0); CT from the sign bit.
      auto code = [&](float w) {
        const uint8_t c = float_to_e2m1(std::clamp(w / step, -6.0f, 6.0f));
        return producer == Producer::kModelOpt && w == 0.0f ? static_cast<uint8_t>(0) : c;
      };
      for (int i = 0; i < 16; i += 2) {
        const int64_t k = b * 16 + i;
        const uint8_t lo = code(row[k]);
        const uint8_t hi = code(row[k + 1]);
        t.packed[static_cast<size_t>(r * (cols / 2) + k / 2)] =
            static_cast<uint8_t>(lo | (hi << 4));
      }
    }
  }
  return t;
}

void activation_qdq(const float* x, int64_t n, float input_scale, float* out) {
  // fp32 operation order of vLLM's ref_nvfp4_quant + dequantize_to_dtype (spec §2.3).
  const float ga = 1.0f / input_scale;
  const float inv_ga = 1.0f / ga;
  const float* e4m3 = e4m3_table();
  for (int64_t b = 0; b < n; b += 16) {
    float amax_b = 0.0f;
    for (int i = 0; i < 16; ++i) amax_b = std::max(amax_b, std::fabs(x[b + i]));
    const float sa =
        e4m3[float_to_e4m3(std::clamp(ga * (amax_b * (1.0f / 6.0f)), -448.0f, 448.0f))];
    const float inv = sa == 0.0f ? 0.0f : 1.0f / (sa * inv_ga);
    const float deq = sa / ga;
    for (int i = 0; i < 16; ++i)
      out[b + i] = e2m1_to_float(float_to_e2m1(std::clamp(x[b + i] * inv, -6.0f, 6.0f))) * deq;
  }
}

}  // namespace fc::quant
