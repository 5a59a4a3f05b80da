// Scalar CPU kernels for the element-wise and normalisation ops (fp32 in, fp32 out). These are
// both the CPU backend's implementation and the reference other backends are tested against.
#pragma once

#include <cstdint>

#include "backend/backend.h"

namespace fc::cpu {

// Reads element i of a weight vector/matrix row as fp32 (F32, BF16, F16 or NVFP4 dequantized).
float weight_at(const Weight& w, int64_t row, int64_t col);
// Widens row r of w into dst[0..w.cols).
void weight_row(const Weight& w, int64_t row, float* dst);

void rmsnorm_row(const float* x, int64_t n, const Weight* w, float eps, float* y);
void rope_row(float* x, int n_heads, int head_dim, int32_t pos, const float* inv_freq);
float gelu_tanh(float x);
void attention_ref(const AttentionArgs& a);
void attention_segments_ref(const SegmentAttentionArgs& a);
void avg_pool_ref(const float* x, int64_t ldx, int grid_h, int grid_w, int k, int64_t n,
                  float scale, float* out, int64_t ldo);

}  // namespace fc::cpu
