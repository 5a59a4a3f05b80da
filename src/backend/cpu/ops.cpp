#include "backend/cpu/ops.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/nvfp4_linear.h"
#include "core/error.h"
#include "core/half.h"
#include "quant/nvfp4.h"

namespace fc::cpu {

float weight_at(const Weight& w, int64_t row, int64_t col) {
  if (w.nvfp4()) {  // dequantized as quant::dequantize_row does (pre_quant_scale not applied)
    const uint8_t byte = static_cast<const uint8_t*>(w.data)[row * w.ld + col / 2];
    const float sc =
        quant::e4m3_table()[w.block_scale[row * w.scale_ld + col / 16]] * w.global_scale;
    return quant::kE2M1[col % 2 ? byte >> 4 : byte & 0xF] * sc;
  }
  const int64_t i = row * w.ld + col;
  switch (w.dtype) {
    case DType::kF32:
      return static_cast<const float*>(w.data)[i];
    case DType::kBF16:
      return bf16_to_f32(static_cast<const uint16_t*>(w.data)[i]);
    case DType::kF16:
      return f16_to_f32(static_cast<const uint16_t*>(w.data)[i]);
    default:
      fail("weight ", w.name, ": dtype ", dtype_name(w.dtype), " is not usable as a dense weight");
  }
}

void weight_row(const Weight& w, int64_t row, float* dst) {
  if (w.nvfp4()) return quant::dequantize_row(nvfp4_matrix(w), row, dst);
  switch (w.dtype) {
    case DType::kF32: {
      const float* p = static_cast<const float*>(w.data) + row * w.ld;
      std::copy(p, p + w.cols, dst);
      return;
    }
    case DType::kBF16: {
      const uint16_t* p = static_cast<const uint16_t*>(w.data) + row * w.ld;
      for (int64_t c = 0; c < w.cols; ++c) dst[c] = bf16_to_f32(p[c]);
      return;
    }
    default:
      for (int64_t c = 0; c < w.cols; ++c) dst[c] = weight_at(w, row, c);
  }
}

void rmsnorm_row(const float* x, int64_t n, const Weight* w, float eps, float* y) {
  // HF Gemma4RMSNorm: x * pow(mean(x^2) + eps, -0.5) * w, in fp32 (weight used as is, not 1+w).
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float inv = std::pow(static_cast<float>(ss / static_cast<double>(n)) + eps, -0.5f);
  if (!w) {
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] * inv;
    return;
  }
  if (w->dtype == DType::kF32) {
    const float* wv = static_cast<const float*>(w->data);
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] * inv * wv[i];
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] * inv * weight_at(*w, 0, i);
  }
}

void rope_row(float* x, int n_heads, int head_dim, int32_t pos, const float* inv_freq) {
  const int half = head_dim / 2;
  for (int j = 0; j < half; ++j) {
    // HF: theta = inv_freq * position in fp32; cos/sin of that fp32 angle.
    const float theta = inv_freq[j] * static_cast<float>(pos);
    if (theta == 0.0f) continue;  // zero-frequency tail of proportional RoPE: identity
    const float c = std::cos(theta), s = std::sin(theta);
    for (int h = 0; h < n_heads; ++h) {
      float* v = x + static_cast<int64_t>(h) * head_dim;
      const float a = v[j], b = v[j + half];
      v[j] = a * c - b * s;
      v[j + half] = b * c + a * s;
    }
  }
}

float gelu_tanh(float x) {
  // gelu_pytorch_tanh: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
  constexpr float kBeta = 0.7978845608028654f;
  constexpr float kKappa = 0.044715f;
  return 0.5f * x * (1.0f + std::tanh(kBeta * (x + kKappa * x * x * x)));
}

namespace {
float kv_at(const AttentionArgs& a, const void* cache, int64_t i, float scale) {
  switch (a.kv_dtype) {
    case DType::kBF16:
      return bf16_to_f32(static_cast<const uint16_t*>(cache)[i]);
    case DType::kF8_E4M3:
      return quant::e4m3_to_float(static_cast<const uint8_t*>(cache)[i]) * scale;
    default:
      return static_cast<const float*>(cache)[i];
  }
}
}  // namespace

void attention_ref(const AttentionArgs& a) {
  const int rep = a.n_heads / a.n_kv_heads;
  const int D = a.head_dim;
  std::vector<float> scores;
  for (int s = 0; s < a.n_seqs; ++s) {
    const int32_t* table = a.block_tables + a.table_offset[s];
    for (int i = 0; i < a.n_q[s]; ++i) {
      const int64_t t = a.q_begin[s] + i;
      const int p = a.pos0[s] + i;
      const int lo = a.sliding_window > 0 ? std::max(0, p - a.sliding_window + 1) : 0;
      const int hi = a.kv_limit ? std::max(p, a.kv_limit[t]) : p;
      scores.assign(static_cast<size_t>(hi - lo + 1), 0.0f);
      for (int h = 0; h < a.n_heads; ++h) {
        const int g = h / rep;
        const float* q = a.q + t * a.ldq + static_cast<int64_t>(h) * D;
        float mx = -INFINITY;
        for (int j = lo; j <= hi; ++j) {
          const int64_t slot =
              static_cast<int64_t>(table[j / a.block_size]) * a.block_size + j % a.block_size;
          const int64_t kofs = (slot * a.n_kv_heads + g) * D;
          float dot = 0;
          for (int d = 0; d < D; ++d) dot += q[d] * kv_at(a, a.k_cache, kofs + d, a.k_scale);
          scores[static_cast<size_t>(j - lo)] = dot * a.scale;
          mx = std::max(mx, dot * a.scale);
        }
        float sum = 0;
        for (float& sc : scores) sum += (sc = std::exp(sc - mx));
        float* o = a.out + t * a.ldo + static_cast<int64_t>(h) * D;
        std::fill(o, o + D, 0.0f);
        for (int j = lo; j <= hi; ++j) {
          const int64_t slot =
              static_cast<int64_t>(table[j / a.block_size]) * a.block_size + j % a.block_size;
          const int64_t vofs = (slot * a.n_kv_heads + g) * D;
          const float pj = scores[static_cast<size_t>(j - lo)] / sum;
          for (int d = 0; d < D; ++d) o[d] += pj * kv_at(a, a.v_cache, vofs + d, a.v_scale);
        }
      }
    }
  }
}

void attention_segments_ref(const SegmentAttentionArgs& a) {
  const int rep = a.n_heads / a.n_kv_heads, D = a.head_dim;
  std::vector<float> sc;
  for (int s = 0; s < a.n_segments; ++s) {
    const int b = a.seg[s], e = a.seg[s + 1];
    sc.assign(static_cast<size_t>(e - b), 0.0f);
    for (int t = b; t < e; ++t)
      for (int h = 0; h < a.n_heads; ++h) {
        const float* q = a.q + t * a.ldq + static_cast<int64_t>(h) * D;
        const int64_t g = h / rep;
        float mx = -INFINITY;
        for (int j = b; j < e; ++j) {
          float d = 0;
          for (int i = 0; i < D; ++i) d += q[i] * a.k[j * a.ldk + g * D + i];
          sc[static_cast<size_t>(j - b)] = d * a.scale;
          mx = std::max(mx, d * a.scale);
        }
        float sum = 0;
        for (float& v : sc) sum += (v = std::exp(v - mx));
        float* o = a.out + t * a.ldo + static_cast<int64_t>(h) * D;
        std::fill(o, o + D, 0.0f);
        for (int j = b; j < e; ++j)
          for (int i = 0; i < D; ++i)
            o[i] += sc[static_cast<size_t>(j - b)] / sum * a.v[j * a.ldv + g * D + i];
      }
  }
}

void avg_pool_ref(const float* x, int64_t ldx, int grid_h, int grid_w, int k, int64_t n,
                  float scale, float* out, int64_t ldo) {
  const int ow = grid_w / k;
  const float w = 1.0f / static_cast<float>(k * k);
  for (int r = 0; r < grid_h / k; ++r)
    for (int c = 0; c < ow; ++c) {
      float* o = out + (static_cast<int64_t>(r) * ow + c) * ldo;
      for (int64_t i = 0; i < n; ++i) {
        float s = 0;
        for (int dy = 0; dy < k; ++dy)
          for (int dx = 0; dx < k; ++dx)
            s += x[(static_cast<int64_t>(r * k + dy) * grid_w + c * k + dx) * ldx + i] * w;
        o[i] = s * scale;
      }
    }
}

}  // namespace fc::cpu
