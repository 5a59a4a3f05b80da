// Verification of drafted tokens against the target's distributions, as vLLM's rejection sampler
// (spec weight-formats §6.2, Leviathan et al. 2022): greedy requests accept while the draft equals
// the target argmax; random requests accept draft d at position i with probability
// min(1, p_i(d) / q_i(d)) (q one-hot at d when the drafter gives no probabilities: accept iff
// u <= p_i(d)), and on rejection emit a token drawn from norm(max(p_i - q_i, 0)); when every draft
// is accepted a bonus token is sampled from row k. p_i is the target distribution after the
// request's full sampling pipeline (penalties over the tokens accepted so far, temperature, min_p,
// top-k, top-p). The output distribution equals sampling from the target alone.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "sample/sampler.h"

namespace fc::spec {

struct VerifyResult {
  int num_accepted = 0;         // drafts accepted (0 .. k)
  std::vector<int32_t> tokens;  // emitted: accepted drafts, then the recovered or bonus token
  std::vector<SampleResult> logprobs;  // one per emitted token when logprobs were requested
};

// logits: [k + 1, vocab] target rows for (last verified token, d_0, ..., d_{k-1}); drafts: k
// tokens; draft_probs: empty (one-hot) or [k, vocab] drafter probabilities over the target vocab.
// Uses and advances state's RNG and records every emitted token with state.accept().
// `max_emit` caps the emitted tokens (max_tokens ending mid-draft): verification stops there.
void verify(std::span<const float> logits, std::span<const int32_t> drafts,
            std::span<const float> draft_probs, SamplerState& state, SamplerScratch& scratch,
            const LogprobsOptions* logprobs, int max_emit, VerifyResult& out);

}  // namespace fc::spec
