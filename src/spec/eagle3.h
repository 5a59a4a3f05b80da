// EAGLE-3 drafter (spec weight-formats §6.4, §7): a one-layer Llama/Qwen3-style head that reads
// three target residual streams (`capture_layers()`, concatenated and projected by `fc`) and
// proposes a greedy chain of drafts, mapped from its pruned vocabulary to the target's through
// d2t. It keeps its own paged KV (one full-attention kv::KVManager group) at the target's
// positions.
//
// Per request, with tokens x_0..x_m (x_m the newest sample, target KV covering [0, m)):
//  - observe() stores the aux rows (3 x H_t floats per position) of verified positions until the
//    drafter KV covers them;
//  - propose() keeps the drafter KV positions that are still consistent with `tokens` (computed
//    from target rows, input token equal), truncates the rest, and runs the catch-up pass over
//    positions t in [kv_valid, m): input token x_{t+1}, hidden fc(aux_t). The last row (t = m-1)
//    gives draft d_1; each further step feeds d_j at position m + j - 1 with the previous step's
//    pre-norm output `pre` as the hidden input (no fc). Chained positions are never kept: the next
//    propose() recomputes them from target rows once they are verified.
// Requests are batched in every pass. Engine thread only (like the scheduler).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "backend/backend.h"
#include "io/safetensors.h"
#include "kv/kv_manager.h"
#include "kv/kv_storage.h"
#include "model/gemma4/model.h"
#include "spec/drafter.h"
#include "spec/eagle3_config.h"

namespace fc::spec {

struct Eagle3Options {
  int max_seqs = 8;              // requests drafting at once (one spare KV block each)
  int64_t max_tokens = 8192;     // drafter KV capacity in positions, over all requests
  int block_size = 16;           // tokens per drafter KV block
  DType kv_dtype = DType::kF32;  // drafter KV storage (F32 or BF16)
  // Tests: keep the mapped logits [rows, V_target] of the last propose() per request (every
  // catch-up row, then one row per chained step); non-draft tokens are -inf.
  bool record_logits = false;
  // Keep the drafter KV blocks of every request in a prefix cache of their own, so that a request
  // whose prompt the target serves from its prefix cache (engine: prefix_cache_drop_last_block)
  // drafts from its first step. Drafter KV at position t depends on tokens[0..t+1], so its blocks
  // are named by pair_keys (below), not by the tokens alone.
  bool prefix_caching = false;
};

// Prefix-cache names of the drafter's KV positions: key[t] = a 32-bit mix of (tokens[t],
// tokens[t+1]) for t < n, so the chained block hashes over keys cover exactly the tokens the
// drafter KV of those positions was computed from.
std::vector<int32_t> eagle3_pair_keys(std::span<const int32_t> tokens, int n);

// Every tensor of the head (shapes with H = H_d, D = head_dim, V_d = draft vocabulary).
struct Eagle3Weights {
  Weight fc;                        // [H, 3 H_t]
  Weight q_proj, k_proj, v_proj;    // [n_h D, 2H] / [n_kv D, 2H]: input (embedding | hidden)
  Weight o_proj;                    // [H, n_h D]
  Weight q_norm, k_norm;            // [D] (qwen3 only)
  Weight gate_proj, up_proj;        // [I, H]
  Weight down_proj;                 // [H, I]
  Weight input_layernorm;           // [H] on the token embedding
  Weight hidden_norm;               // [H] on fc(aux) / the fed-back `pre`
  Weight post_attention_layernorm;  // [H]
  Weight norm;                      // [H] final
  Weight lm_head;                   // [V_d, H]
  Weight embed_tokens;              // [V, H]: the drafter's own, else the target's table
  bool own_embedding = false;
  std::vector<int32_t> draft_to_target;     // [V_d] target id of draft id d (d + d2t[d])
  int64_t nvfp4_linears = 0;                // linears bound as NVFP4 (ModelOpt / CT exports)
  std::vector<std::vector<uint8_t>> owned;  // host copies of rewritten scale tensors
};

class Eagle3Drafter final : public Drafter {
 public:
  // Loads DIR (config.json + safetensors) for `target`; throws fc::Error naming the file / tensor /
  // key when the drafter is malformed, unsupported or made for another target. `target` and
  // `backend` must outlive the drafter (the target's embedding table may be shared).
  Eagle3Drafter(const std::string& dir, const gemma4::Model& target, Backend& backend,
                Eagle3Options options = {});
  ~Eagle3Drafter() override;

  std::string method() const override { return "eagle3"; }
  std::vector<int> capture_layers() const override { return aux_ids_; }
  // hidden.captured: 3 blocks [n, H_t] (capture_layers() order) at positions [pos0, pos0 + n);
  // tokens: the request's sequence with at least pos0 + n entries (the tokens at those
  // positions and before). Re-observing earlier positions (recompute) replaces what follows.
  void observe(RequestId id, std::span<const int32_t> tokens, const HiddenRows& hidden) override;
  void propose(std::span<const ProposeInput> in, std::vector<std::vector<int32_t>>& out) override;
  void release(RequestId id) override;
  DrafterStats stats() const override { return stats_; }

  const Eagle3Config& config() const { return cfg_; }
  const Eagle3Weights& weights() const { return w_; }
  // record_logits only: [rows, V_target] of the last propose() for `id` (empty if none).
  const std::vector<float>& recorded_logits(RequestId id) const;
  int kv_valid(RequestId id) const;  // drafter KV positions kept from target rows (tests)

 private:
  struct Req {
    std::vector<int32_t> seen;        // tokens of the last propose()
    int kv_valid = 0;                 // drafter KV [0, kv_valid) holds target-row positions
    std::vector<int32_t> obs_tokens;  // tokens at the observed positions [0, aux end)
    int aux_pos0 = 0;                 // position of the first stored aux row
    std::vector<float> aux;           // [rows, 3 H_t] for positions [aux_pos0, ...)
    std::vector<float> logits;        // record_logits
    std::vector<int32_t> keys;        // eagle3_pair_keys of `seen` (prefix_caching)
    int aux_rows(int width) const { return static_cast<int>(aux.size() / width); }
  };
  struct Seq;  // one request's part of a drafter forward
  struct Scratch;

  // One forward over `seqs`; hidden inputs from host aux rows (fc applied) or, when aux is null,
  // the device rows `pre_in` [T, H]. Writes `pre` of each sequence's last row to pre_last_ and the
  // draft logits [R, V_d] of the requested rows to `logits` (host).
  void forward(const std::vector<Seq>& seqs, const float* aux, const float* pre_in,
               std::vector<float>& logits);
  int32_t argmax_target(const float* draft_logits) const;
  void record(Req& r, const float* draft_logits, int rows) const;

  Eagle3Config cfg_;
  Backend& be_;
  Eagle3Options opt_;
  std::unique_ptr<Checkpoint> ckpt_;
  Eagle3Weights w_;
  std::vector<int> aux_ids_;
  float* inv_freq_ = nullptr;  // device [D/2]
  kv::KVManager mgr_;
  std::unique_ptr<kv::KVStorage> kv_;
  std::unique_ptr<Scratch> scratch_;
  float* pre_last_ = nullptr;  // device [n_seqs, H]: `pre` of the last row of each sequence
  size_t pre_last_cap_ = 0;
  std::unordered_map<RequestId, Req> reqs_;
  DrafterStats stats_;
};

}  // namespace fc::spec
