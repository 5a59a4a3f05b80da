// Speculative decoding: the drafter seam. A drafter proposes up to k tokens per request; the
// engine verifies them with one target forward of k+1 tokens per request and the rejection
// sampler (rejection.h). Three kinds (spec weight-formats §6.3-6.6): a separate small Gemma 4
// ("draft_model"), an EAGLE-3 head ("eagle3") and the Gemma 4 MTP assistant ("mtp").
//
// Contract (engine thread only, like the scheduler):
//  - after every target forward, observe() tells the drafter which positions of which request are
//    now verified in the target KV, with the target hidden states it asked for at those positions;
//    positions the target computed but rejected are never observed;
//  - propose() gets, per request, the full token sequence (prompt + generated; its last token is
//    the newest sample, not yet in the target KV) and returns at most k drafts. A drafter keeps
//    whatever state it needs (its own KV, hidden rows) keyed by request and must resynchronise by
//    itself when the sequence it sees diverges from what it saw before (rejected drafts, preemption
//    with recompute): the common prefix is what stays valid;
//  - release() ends a request (finished, aborted, preempted): its state is freed at once.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "model/gemma4/media.h"

namespace fc::spec {

using RequestId = int64_t;

// Target hidden states at consecutive positions [pos0, pos0 + n) of one request.
struct HiddenRows {
  int pos0 = 0;
  int n = 0;
  int hidden_size = 0;
  // One [n, hidden_size] block per entry of Drafter::capture_layers(), in that order (the residual
  // stream entering that layer; index L = post-final-norm).
  std::vector<std::span<const float>> captured;
  std::span<const float> final_hidden;  // [n, hidden_size] post-final-norm (if needs_final_hidden)
};

// A media item of the request (engine EngineMedia): soft tokens at [offset, offset + num_tokens).
struct DraftMedia {
  const gemma4::MediaInput* input = nullptr;
  uint64_t key = 0;
  int offset = 0;
  bool bidirectional = false;
};

struct ProposeInput {
  RequestId id = 0;
  std::span<const int32_t> tokens;  // prompt + generated; tokens.back() is not in the target KV
  int k = 0;                        // drafts wanted (>= 1)
  // Target KV block tables of this request, one per target KV group (Model::kv_layout() order),
  // covering positions [0, tokens.size() - 1): the MTP assistant attends to the target's cache.
  std::vector<const std::vector<int32_t>*> target_block_tables;
  std::vector<DraftMedia> media;  // the prompt's media items (a drafter with a tower encodes them)
};

struct DrafterStats {
  int64_t forward_calls = 0;  // drafter forwards run
  double seconds = 0;         // time spent in propose()
};

class Drafter {
 public:
  virtual ~Drafter() = default;
  virtual std::string method() const = 0;  // "draft_model", "eagle3", "mtp"
  // Target layers whose entering residual the drafter needs at every verified position (EAGLE-3
  // aux ids), and whether it needs the post-final-norm hidden state (MTP).
  virtual std::vector<int> capture_layers() const { return {}; }
  virtual bool needs_final_hidden() const { return false; }
  // tokens: the request's whole sequence (at least hidden.pos0 + hidden.n entries).
  virtual void observe(RequestId id, std::span<const int32_t> tokens, const HiddenRows& hidden) {}
  // out[i]: drafts for in[i] (at most in[i].k, possibly none). Throws fc::Error only for bugs or
  // exhausted resources; the engine then verifies without drafts.
  virtual void propose(std::span<const ProposeInput> in,
                       std::vector<std::vector<int32_t>>& out) = 0;
  virtual void release(RequestId id) = 0;
  virtual DrafterStats stats() const { return {}; }
};

}  // namespace fc::spec
