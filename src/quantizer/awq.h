// AWQ-lite scale search and per-tensor amax clip search for NVFP4 (spec weight-formats §2.5,
// ModelOpt model_calib.awq_lite / awq_clip). Works on groups of linears that read one input
// (q/k/v, gate/up, or a single linear) so that one smoothing vector and one per-tensor amax serve
// the whole group, as the exported checkpoint needs.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/backend.h"
#include "quant/nvfp4.h"

namespace fc::quantizer {

// One linear of a group: its fp32 weight [rows, cols] (cols = the shared input width K).
struct GroupMember {
  const float* w = nullptr;
  int64_t rows = 0;
};

// y[n, N] = x[n, K] · w[N, K]ᵀ through the backend (fp32 weights).
void matmul_f32(Backend& be, const float* x, int64_t n, int64_t K, const float* w, int64_t N,
                float* y);

// The weight as the checkpoint will hold it: quantize with per-tensor `amax`, dequantize.
std::vector<float> fake_quant(const float* w, int64_t rows, int64_t cols, float amax,
                              quant::Producer producer);

// ModelOpt get_weight_scale with block size 16: w̄[c] = mean over all rows of all members of
// |W[r, c]| / max |W[r, block(c)]|.
std::vector<float> weight_mean_normalised(const std::vector<GroupMember>& group, int64_t K);

// ModelOpt get_scale: s = clamp(x̄^α / w̄^(1-α), 1e-4, 1e4) / sqrt(max(s)·min(s)).
std::vector<float> awq_scale(const std::vector<float>& x_mean, const std::vector<float>& w_mean,
                             float alpha);

struct AwqSearch {
  std::vector<float> s;      // [K] chosen smoothing (W ← W·s, x ← x/s); all ones if none helps
  float alpha = -1.0f;       // chosen α; -1: identity kept (no α beat unsmoothed quantization)
  double loss = 0.0;         // Σ over members of the output MSE at the choice
  double loss_identity = 0;  // the same without smoothing (max calibration)
};

// Searches α ∈ {0, 0.1, …, 1} for the group reading x (sample rows X [n, K], per-channel mean |x|
// over all calibration rows x_mean [K]). Loss: Σ_m mean((X/s)·Q(W_m·s)ᵀ − X·W_mᵀ)² with the group
// sharing one per-tensor amax (max |W_m·s|), W4A16 numerics. `keep_identity`: also consider s = 1
// and keep it when no α is better.
AwqSearch awq_lite_search(Backend& be, const std::vector<GroupMember>& group, const float* X,
                          int64_t n, int64_t K, const std::vector<float>& x_mean,
                          quant::Producer producer, bool keep_identity);

// Per-tensor amax clip search (ModelOpt awq_clip for NVFP4): ratio r ∈ {0.5, 0.55, …, 1.0} of the
// group amax, best Σ_m output MSE on X_eff [n, K] (the input as the quantized weights see it).
// Returns the chosen amax.
float clip_search(Backend& be, const std::vector<GroupMember>& group, const float* X_eff, int64_t n,
                  int64_t K, float amax, quant::Producer producer);

}  // namespace fc::quantizer
