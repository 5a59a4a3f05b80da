// The Gemma 4 text model: one forward call over a batch of sequences, each bringing any number of
// new tokens at consecutive positions (a prefill chunk, one decode token, or k+1 verification
// tokens) into a paged KV cache. Reads like HF's Gemma4TextModel.forward (transformers
// models/gemma4/modeling_gemma4.py); spec: ../shared/spec/gemma4-architecture.md §4-§7.
//
// Thread-safety: after construction the model is immutable; forward() uses the caller's
// KVStorage and an internal scratch arena, so one forward at a time per Model.
#pragma once

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "backend/scratch.h"
#include "io/safetensors.h"
#include "kv/kv_storage.h"
#include "model/gemma4/config.h"
#include "model/gemma4/lm_head.h"
#include "model/gemma4/weights.h"

namespace fc::gemma4 {

struct ModelOptions {
  // HF multiplies embeddings by sqrt(H) (and PLE rows by sqrt(P)) cast to the dtype the model
  // runs in: bf16 when served in bf16 (73.5 for the 31B), exact in fp32. true = round to bf16.
  bool bf16_embed_scale = false;
  LoadOptions load;  // how bad quantization scales are treated
  // The LM head as stored, or re-quantized at load time (lm_head.h; changes the logits).
  LmHeadDType lm_head_dtype = LmHeadDType::kCheckpoint;
  // Decode and verification steps (every sequence at most kGraphMaxTokens new tokens) run as
  // recorded op sequences (CUDA graphs) on backends that support them, the batch padded to a
  // bucket (graph_bucket()). No effect on other backends or on MoE models (their expert
  // dispatch reads the routing back to the host); steps carrying media (soft tokens, image-block
  // masks) always run eagerly.
  bool graphs = true;
  // Run every eligible step in the padded bucket layout even without graphs (the test that the
  // padded layout computes what the plain one does).
  bool pad_batches = false;
};

// Graph buckets: sequences rounded up to kGraphSeqBuckets, tokens per sequence to a power of
// two up to kGraphMaxTokens (k + 1 for k <= 7 speculative drafts), at most kGraphMaxRows rows.
constexpr int kGraphMaxTokens = 8;
constexpr int kGraphMaxRows = 512;
struct GraphBucket {
  int seqs = 0, tokens = 0;  // 0: not eligible
  bool operator==(const GraphBucket&) const = default;
};
GraphBucket graph_bucket(int n_seqs, int max_tokens_per_seq);

// One sequence's part of a forward batch.
struct SeqInput {
  const int32_t* tokens = nullptr;  // [n] new token ids
  int n = 0;
  int pos0 = 0;  // position of tokens[0]; the cache holds positions [0, pos0) already
  // Block table of each KV group (kv_layout() order) covering positions [0, pos0 + n).
  std::vector<const std::vector<int32_t>*> block_tables;
  std::vector<int> logit_rows;   // indices into [0, n) whose logits are returned
  std::vector<int> hidden_rows;  // indices into [0, n) whose hidden states are returned
  // Multimodal soft tokens among the new tokens: rows [pos, pos + n) of the sequence get these
  // embeddings (host memory, [n, H], not scaled by sqrt(H)) instead of their token's.
  struct SoftTokens {
    int pos = 0, n = 0;
    const float* embeds = nullptr;
  };
  std::vector<SoftTokens> soft_tokens;
  // Image / video-frame blocks [begin, end) (positions) that attend bidirectionally on sliding
  // layers when the config says use_bidirectional_attention "vision" (26B/31B); every block that
  // intersects the new tokens must end within them (its later keys are written this step).
  std::vector<std::pair<int, int>> bidi_blocks;
};

struct ForwardBatch {
  std::vector<SeqInput> seqs;
  // Layers whose entering residual stream is returned at hidden_rows (EAGLE-3 reads 2, L/2, L-3);
  // index L means the post-final-norm state (also returned in `final_hidden`).
  std::vector<int> capture_layers;
  bool want_final_hidden = false;
};

struct ForwardOutput {
  int n_logit_rows = 0;             // Σ logit_rows over sequences, in batch order
  std::vector<float> logits;        // [n_logit_rows, V] after the final softcap
  int n_hidden_rows = 0;            // Σ hidden_rows, in batch order
  std::vector<float> final_hidden;  // [n_hidden_rows, H] post-final-norm (if want_final_hidden)
  std::vector<std::vector<float>> captured;  // [capture_layers.size()][n_hidden_rows, H]
};

class Model {
 public:
  Model(Config config, std::shared_ptr<const Checkpoint> ckpt, Backend& backend,
        ModelOptions options = {});
  ~Model();

  const Config& config() const { return cfg_; }
  const Weights& weights() const { return w_; }
  // KV groups: [0] sliding-window layers, [1] full-attention layers (a group is omitted when the
  // model has no layer of that type). KV-shared layers appear in no group.
  const std::vector<kv::GroupLayout>& kv_layout() const { return kv_layout_; }

  void forward(const ForwardBatch& batch, kv::KVStorage& kv, ForwardOutput& out);
  // Steps run in the padded bucket layout, recordings made and steps replayed from them so far.
  struct GraphStats {
    int64_t padded_steps = 0, captures = 0, replays = 0;
  };
  GraphStats graph_stats() const;

 private:
  struct Plan;          // one batch in the kernels' layout (model_batch.cpp)
  struct DeviceInputs;  // device copies of a plan's index arrays
  struct Outputs;       // device buffers the kernel sequence leaves its results in
  struct Graphs;        // recorded steps by bucket (model_batch.cpp)
  Plan make_plan(const ForwardBatch& batch, const kv::KVStorage& kv, GraphBucket pad) const;
  // The kernel sequence of one forward, embeddings to logits: reads only device memory, so it can
  // be recorded. recording: captures go to device buffers (read back after the run).
  Outputs compute(const Plan& p, const DeviceInputs& in, kv::KVStorage& kv, DeviceScratch& scratch,
                  bool recording, ForwardOutput& out);
  void read_outputs(const Plan& p, const Outputs& o, ForwardOutput& out);
  bool graphs_usable() const;
  // Soft tokens or an image block among the new tokens: the step runs eagerly (model_batch.cpp).
  bool has_media(const ForwardBatch& batch) const;
  Config cfg_;
  std::shared_ptr<const Checkpoint> ckpt_;
  Backend& be_;
  ModelOptions opt_;
  Weights w_;
  std::vector<kv::GroupLayout> kv_layout_;
  std::vector<float> inv_freq_sliding_, inv_freq_full_;  // [D/2] per layer type (host)
  float* inv_freq_dev_[2] = {nullptr, nullptr};
  std::unique_ptr<DeviceScratch> scratch_;  // eager steps' buffers
  std::unique_ptr<Graphs> graphs_;
};

// Inverse RoPE frequencies [D/2] as HF computes them in fp32 (§3.4): default: theta^(-2j/D);
// proportional: the first int(partial * D / 2) angles with denominator D, the rest zero.
std::vector<float> rope_inv_freq(const RopeConfig& r, int head_dim);

}  // namespace fc::gemma4
