// A set of live sequences over one model: owns the KV bookkeeping (kv::KVManager) and the KV
// memory (kv::KVStorage), turns "these new tokens for these sequences" into one Model::forward,
// and rolls sequences back. The serving scheduler and the speculative decoder drive this.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "kv/kv_manager.h"
#include "kv/kv_storage.h"
#include "model/gemma4/model.h"

namespace fc {

struct SessionOptions {
  int block_size = 16;
  // KV capacity in tokens for the full-attention group; the sliding group gets what its window
  // needs for max_seqs sequences (it never holds more).
  int64_t max_tokens = 8192;
  // > 0: capacity of the sliding group in tokens (engine/kv_plan.h sizes it from the budget);
  // 0: what max_seqs sequences can hold at once.
  int64_t sliding_tokens = 0;
  int max_seqs = 8;
  int max_rollback = 0;          // see kv::ManagerConfig::max_rollback
  int max_step_tokens = 2048;    // most new tokens one step brings, over all sequences
  DType kv_dtype = DType::kF32;  // KV cache storage: F32 or BF16
};

class Session {
 public:
  Session(gemma4::Model& model, Backend& backend, const SessionOptions& opt);

  using SeqId = kv::SeqId;
  void add(SeqId id) { mgr_.add_sequence(id); }
  void remove(SeqId id) { mgr_.remove_sequence(id); }
  int length(SeqId id) const { return mgr_.length(id); }
  void truncate(SeqId id, int len) { mgr_.truncate(id, len); }

  struct Step {
    SeqId id = 0;
    std::vector<int32_t> tokens;   // appended at positions length(id) ...
    std::vector<int> logit_rows;   // indices into tokens
    std::vector<int> hidden_rows;  // indices into tokens
  };
  // Multimodal soft tokens among a step's new tokens and the image blocks they form
  // (gemma4::SeqInput); positions are the sequence's.
  struct StepMedia {
    std::vector<gemma4::SeqInput::SoftTokens> soft_tokens;
    std::vector<std::pair<int, int>> bidi_blocks;
  };
  // Runs one forward over all steps (each sequence at most once). On failure (out of KV blocks,
  // bad token) every sequence is left as it was and fc::Error is thrown.
  // `media`, when given, is index-aligned with `steps`.
  void run(const std::vector<Step>& steps, gemma4::ForwardOutput& out,
           const std::vector<int>& capture_layers = {}, bool want_final_hidden = false,
           const std::vector<StepMedia>& media = {});

  gemma4::Model& model() { return model_; }
  const kv::KVManager& kv_manager() const { return mgr_; }
  const kv::KVStorage& kv_storage() const { return *storage_; }

 private:
  gemma4::Model& model_;
  kv::KVManager mgr_;
  std::unique_ptr<kv::KVStorage> storage_;
};

// Builds the KV manager configuration for a model and options (exposed for tests and sizing).
kv::ManagerConfig make_kv_config(const gemma4::Model& model, const SessionOptions& opt);

}  // namespace fc
