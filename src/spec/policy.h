// How many tokens to draft for each request at each step (adaptive speculation).
//
// A verification step with k drafts returns E(k) = (1 - a^(k+1)) / (1 - a) tokens on average when
// each draft is accepted with probability a (chain drafting stops at the first rejection). It
// costs the request a share of the target step, whose time the policy fits online as
// t(n) = fixed + per_token · n over the batch's token count n, plus the drafter's time:
//   cost(k) = fixed / running + per_token · (1 + k) + draft_per_token · k.
// The policy picks the k in [0, k_max] with the most tokens per unit of cost. With few running
// requests the fixed part (reading the weights) dominates and long drafts are nearly free; as the
// batch grows the fixed share shrinks, verification tokens cost real compute and k falls, to 0
// when drafts no longer pay. The acceptance a of each request is an exponential moving average
// of its observed per-draft acceptance, starting optimistic; a request at k = 0 probes with k = 1
// every `probe_every` steps so a drafter that recovers is noticed.
#pragma once

#include <cstdint>
#include <deque>
#include <unordered_map>

namespace fc::spec {

struct PolicyConfig {
  int k_max = 4;         // num_speculative_tokens of --speculative-config
  bool adaptive = true;  // false: always k_max (unless a request overrides)
  double ema = 0.3;      // weight of the newest acceptance observation
  double prior_acceptance = 0.7;
  int probe_every = 8;
};

class SpecPolicy {
 public:
  explicit SpecPolicy(PolicyConfig cfg) : cfg_(cfg) {}

  // k for `id` when `running` requests share the next step. override_k: < 0 none, 0 off, > 0
  // fixed (capped at k_max).
  int choose_k(int64_t id, int running, int override_k);
  // A verification of `drafted` drafts of which the first `accepted` were accepted.
  void record(int64_t id, int drafted, int accepted);
  // A target step over `batch_tokens` tokens took `seconds`.
  void record_step(int batch_tokens, double seconds);
  // The drafter spent `seconds` proposing `tokens` drafts in one call.
  void record_draft(int tokens, double seconds);
  void release(int64_t id) { reqs_.erase(id); }

  double acceptance(int64_t id) const;
  // The fitted step-time model (seconds): fixed + per_token · n.
  double fixed_cost() const { return fixed_; }
  double per_token_cost() const { return per_token_; }
  // Expected tokens per verification with k drafts at per-draft acceptance a.
  static double expected_tokens(double a, int k);

 private:
  struct Req {
    double acceptance;
    int steps_at_zero = 0;
  };
  void refit();

  PolicyConfig cfg_;
  std::unordered_map<int64_t, Req> reqs_;
  std::deque<std::pair<int, double>> samples_;  // recent (batch tokens, seconds)
  // Until measured: a memory-bound step whose extra tokens cost 2% of the fixed part each.
  double fixed_ = 1.0, per_token_ = 0.02;
  double draft_per_token_ = 0.0;
};

}  // namespace fc::spec
