// The "mtp" method: Gemma 4's MTP assistant (HF `Gemma4AssistantForCausalLM`, model_type
// gemma4_assistant; spec gemma4-architecture §9, weight-formats §6.6). A few Q-only decoder layers
// that attend to the TARGET's KV cache; no KV of their own. One draft step, for a request whose
// token sequence has n + 1 tokens (positions 0..n, the newest token at n not yet in the target KV):
//
//   x      = pre_projection( concat( E_target[tok] · √H_t , h_prev ) )      [H_d]
//   layers : q = RoPE(q_norm(input_norm(x) Wqᵀ), pos = n); attention over the target K/V of the
//            last non-KV-shared target layer of the same type; o_proj, sandwich norms, GeGLU MLP,
//            layer_scalar
//   d      = norm(x);  logits = d · E_draftᵀ (or the centroid-masked form);  h_next = d · W_postᵀ
//
// Step 1: tok = the newest token, h_prev = the target's post-final-norm hidden state at position
// n - 1 (kept by observe()); step j > 1: tok = argmax of step j - 1, h_prev = its h_next. The
// position stays n for every step of a round, and the target KV is not extended with drafts.
//
// Reference: transformers 5.23 (gemma4_assistant + SinglePositionMultiTokenCandidateGenerator):
//  - query RoPE position n = len(input_ids) - 1 (vLLM uses n - 1, the EAGLE convention);
//  - full layers see all target K/V at positions [0, n); sliding layers see the last W + 1 of
//    them, [n - 1 - W, n - 1] (HF's bidirectional |q - kv| <= W mask, flipped). vLLM/llama.cpp use
//    the target's window, one or two entries fewer. The target's KV manager must therefore keep
//    kSlidingHistoryExtra positions more than its own next query needs (max_rollback >= k + 2
//    with drafts of k); where they were released anyway the window is clamped to what is
//    resident and a warning is logged once;
//  - logits are NOT soft-capped (HF applies no final_logit_softcapping to the assistant; vLLM
//    does on the dense path): MtpOptions::softcap_logits. Greedy drafts are the same either way;
//  - centroid path: the top-k clusters' tokens get d · E_draft[token], every other logit
//    min(selected) - 1 (per request; HF takes the min over its whole batch, always 1 in HF's
//    assisted generation);
//  - generation_config suppress_tokens are set to -inf (vLLM; HF's candidate generator ignores
//    them).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "backend/backend.h"
#include "io/safetensors.h"
#include "kv/kv_storage.h"
#include "model/gemma4/config.h"
#include "model/gemma4/model.h"
#include "spec/drafter.h"

namespace fc::spec {

// Positions the MTP drafter reads in the target's sliding-window KV beyond what the target's own
// next query reads: HF's window covers [n - 1 - W, n - 1], the target's query at n sees
// [n - W + 1, n].
inline constexpr int kMtpSlidingHistoryExtra = 2;

// config.json of a gemma4_assistant checkpoint.
struct MtpConfig {
  gemma4::Config text;  // text_config (tensor prefix "model."; num_kv_shared_layers read as 0)
  int backbone_hidden_size = 1536;
  bool use_ordered_embeddings = false;
  int num_centroids = 2048;
  int centroid_intermediate_top_k = 32;
  bool tie_word_embeddings = true;
  std::vector<int32_t> suppress_tokens;  // generation_config.json, if present
};

// Parses DIR/config.json (+ DIR/generation_config.json). Throws fc::Error naming the key.
MtpConfig load_mtp_config(const std::string& dir);

struct MtpOptions {
  // Round √H_t to bf16 as HF does when the target runs in bf16: set it like the target's
  // gemma4::ModelOptions::bf16_embed_scale.
  bool bf16_embed_scale = false;
  // Apply text_config.final_logit_softcapping to the dense-path logits (vLLM); HF does not.
  bool softcap_logits = false;
  // Keep the draft logits of the last propose() (tests, debugging): last_logits().
  bool keep_logits = false;
};

class MtpDrafter final : public Drafter {
 public:
  // Loads the assistant in `assistant_dir` and pairs it with `target` and the storage its KV lives
  // in (which must outlive the drafter). Throws fc::Error when the pair is incompatible:
  // backbone_hidden_size != target hidden size, vocabulary sizes differ, a layer type the target
  // has no KV-owning layer of, head_dim / KV-head count / sliding window of an assistant layer !=
  // those of the target layer whose K/V it reads.
  MtpDrafter(const std::string& assistant_dir, const gemma4::Model& target,
             const kv::KVStorage& target_kv, Backend& backend, MtpOptions options = {});
  ~MtpDrafter() override;

  std::string method() const override { return "mtp"; }
  bool needs_final_hidden() const override { return true; }
  // Keeps the last row of hidden.final_hidden (the post-final-norm state at position
  // hidden.pos0 + hidden.n - 1) for `id`.
  void observe(RequestId id, std::span<const int32_t> tokens, const HiddenRows& hidden) override;
  // Requests without a kept hidden state at position tokens.size() - 2 get no drafts.
  void propose(std::span<const ProposeInput> in, std::vector<std::vector<int32_t>>& out) override;
  void release(RequestId id) override;
  DrafterStats stats() const override { return stats_; }

  const MtpConfig& config() const { return cfg_; }
  // With keep_logits: [request of the last propose()][step * V + v], V = vocab size; empty for
  // requests that got no drafts.
  const std::vector<std::vector<float>>& last_logits() const { return last_logits_; }
  // Target layer whose K/V assistant layer i reads.
  int source_layer(int i) const;

 private:
  struct Layer;
  struct Scratch;
  struct State {
    int pos = -1;               // position of `hidden`
    std::vector<float> hidden;  // [H_t] post-final-norm target hidden state
  };
  void bind(const Checkpoint& ckpt);
  void check_pair();

  MtpConfig cfg_;
  std::shared_ptr<const Checkpoint> ckpt_;
  const gemma4::Model& target_;
  const kv::KVStorage& kv_;
  Backend& be_;
  MtpOptions opt_;
  std::vector<Layer> layers_;
  Weight pre_projection_, post_projection_, norm_, lm_head_, centroids_;
  std::vector<int32_t> token_ordering_;          // [V] cluster c owns entries [c*V/C, (c+1)*V/C)
  float* inv_freq_dev_[2] = {nullptr, nullptr};  // [D/2] per layer type (sliding, full)
  std::unique_ptr<Scratch> scratch_;
  std::unordered_map<RequestId, State> state_;
  std::vector<std::vector<float>> last_logits_;
  DrafterStats stats_;
  bool warned_window_ = false;
};

}  // namespace fc::spec
