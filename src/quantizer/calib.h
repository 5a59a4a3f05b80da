// Calibration: run the unquantized model over calibration token sequences and record, for every
// linear layer, statistics of its input activations (what ModelOpt's max / awq_lite calibrators
// and llm-compressor's observers collect), plus the K/V amax of every attention layer for FP8
// KV-cache scales (spec weight-formats §2.5, §2.9, §5).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "model/gemma4/model.h"
#include "quantizer/forwarding_backend.h"

namespace fc::quantizer {

// Input statistics of one linear layer (one expert projection counts as one linear).
struct ActStats {
  int64_t cols = 0;                // K, the input width
  int64_t rows_seen = 0;           // tokens that reached this layer
  float amax = 0.0f;               // max |x| over every row and column
  std::vector<float> ch_amax;      // [K] max |x_c| over rows
  std::vector<double> ch_abs_sum;  // [K] Σ |x_c| over rows
  // A deterministic reservoir sample of at most `cap` input rows, [sample_rows, K] row-major.
  std::vector<float> sample;
  int64_t sample_rows = 0;
  uint64_t rng = 0;  // reservoir state, seeded from the module name

  void add(const float* x, int64_t T, int64_t ldx, int64_t cap);
  std::vector<float> mean_abs() const;  // [K] Σ|x_c| / rows_seen (ModelOpt act_scale)
};

struct CalibStats {
  std::map<std::string, ActStats> linear;  // keyed by HF module path (no ".weight")
  std::map<int, float> k_amax, v_amax;     // layer -> max |K| (post-norm, post-RoPE) / max |V|
  int64_t tokens = 0;
};

// Observes a forward pass: records inputs of linear() and moe_experts() (per expert, including
// the down projection's input gelu(gate(x))·up(x), recomputed here) and the K/V rows kv_write()
// stores. `kv_layer_of` maps a K cache base pointer to its layer.
class RecordingBackend final : public ForwardingBackend {
 public:
  RecordingBackend(Backend& inner, CalibStats& stats, int64_t sample_cap)
      : ForwardingBackend(inner), stats_(stats), cap_(sample_cap) {}
  std::map<const void*, int> kv_layer_of;

  void linear(const float* x, int64_t T, int64_t ldx, const Weight& w, float* y, int64_t ldy,
              bool accumulate) override;
  void kv_write(const float* k, int64_t ldk, const float* v, int64_t ldv, int64_t T,
                int64_t row_elems, const int32_t* slots, void* k_cache, void* v_cache,
                DType cache_dtype, float k_scale, float v_scale) override;
  void moe_experts(const float* x, int64_t ldx, int64_t T, const int32_t* idx, const float* weights,
                   int k, const Weight* gate, const Weight* up, const Weight* down, int E,
                   float* out, int64_t ldo) override;

 private:
  ActStats& stats_for(const std::string& module, int64_t cols);
  CalibStats& stats_;
  int64_t cap_;
};

struct CalibOptions {
  int64_t sample_rows = 512;  // reservoir size per linear
  bool progress = true;       // sequences done / ETA on stderr
};

// Runs `model` (whose backend must be `rec`) over each sequence (one prefill each, positions from
// 0) with a KV cache sized for the longest one. Returns the statistics gathered in `rec`.
void calibrate(gemma4::Model& model, Backend& backend,
               const std::vector<std::vector<int32_t>>& seqs, RecordingBackend* rec,
               const CalibOptions& opt);

// Runs `model` over `seqs` and returns the fp32 logits [Σ n, V] of every position (for KL).
std::vector<float> all_logits(gemma4::Model& model, Backend& backend,
                              const std::vector<std::vector<int32_t>>& seqs, bool progress,
                              const char* what);

// Calibration / evaluation token sequences: ids split into chunks of at most seq_len tokens, each
// starting with `bos` (when >= 0), at most max_tokens tokens in all.
std::vector<std::vector<int32_t>> chunk_tokens(const std::vector<int32_t>& ids, int seq_len,
                                               int64_t max_tokens, int32_t bos);

// Built-in deterministic English text: hand-written sentences plus template sentences from a
// seeded generator (calibration: seed 1; the default held-out evaluation text: other hand-written
// sentences and seed 2, i.e. the same distribution, different sentences).
const std::string& builtin_calib_text();
const std::string& builtin_eval_text();

}  // namespace fc::quantizer
