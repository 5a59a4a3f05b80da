// The "draft_model" method (spec weight-formats §6.3): a separate small Gemma 4 with the target's
// tokenizer and its own KV cache, drafting greedily. Per request it remembers which tokens its
// cache holds; propose() keeps the common prefix with the request's real sequence (rolling back
// drafts the target rejected), feeds the rest in one batched pass (the first proposal prefills
// the prompt), then k - 1 single-token passes, all requests together.
#pragma once

#include <memory>
#include <unordered_map>
#include <vector>

#include "model/gemma4/model.h"
#include "spec/drafter.h"
#include "spec/session.h"

namespace fc::spec {

struct DraftModelOptions {
  int max_seqs = 8;
  int64_t kv_tokens = 8192;  // full-attention KV capacity of the drafter
  int max_step_tokens = 8192;
  int k_max = 4;
  DType kv_dtype = DType::kF32;
  // The draft model's own vision (or audio) tower: its prefill then sees the request's media as
  // the target does. Null: placeholders embed as pad in the drafter.
  gemma4::MediaEncoder* encoder = nullptr;
};

class DraftModelDrafter final : public Drafter {
 public:
  // Refuses a drafter whose vocabulary differs from the target's.
  DraftModelDrafter(gemma4::Model& drafter, const gemma4::Model& target, Backend& backend,
                    const DraftModelOptions& opt);
  std::string method() const override { return "draft_model"; }
  void propose(std::span<const ProposeInput> in, std::vector<std::vector<int32_t>>& out) override;
  void release(RequestId id) override;
  DrafterStats stats() const override { return stats_; }

 private:
  gemma4::Model& model_;
  Session session_;
  std::unordered_map<RequestId, std::vector<int32_t>> cached_;  // tokens in the drafter's KV
  // Its tower's output per request and media key (the soft tokens of its own embedding space).
  std::unordered_map<RequestId, std::unordered_map<uint64_t, std::vector<float>>> media_out_;
  gemma4::MediaEncoder* encoder_ = nullptr;
  Session::StepMedia media_for(const ProposeInput& p, int begin, int end);
  gemma4::ForwardOutput out_;
  DrafterStats stats_;
};

}  // namespace fc::spec
