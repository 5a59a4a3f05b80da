#include "spec/policy.h"

#include <algorithm>
#include <cmath>

namespace fc::spec {

double SpecPolicy::expected_tokens(double a, int k) {
  if (a >= 1.0) return k + 1.0;
  return (1.0 - std::pow(a, k + 1)) / (1.0 - a);
}

double SpecPolicy::acceptance(int64_t id) const {
  auto it = reqs_.find(id);
  return it == reqs_.end() ? cfg_.prior_acceptance : it->second.acceptance;
}

int SpecPolicy::choose_k(int64_t id, int running, int override_k) {
  if (override_k == 0 || cfg_.k_max <= 0) return 0;
  if (override_k > 0) return std::min(override_k, cfg_.k_max);
  if (!cfg_.adaptive) return cfg_.k_max;
  Req& r = reqs_.try_emplace(id, Req{cfg_.prior_acceptance}).first->second;
  const double share = fixed_ / std::max(1, running);
  int best = 0;
  double best_rate = 0;
  for (int k = 0; k <= cfg_.k_max; ++k) {
    const double cost = share + per_token_ * (1 + k) + draft_per_token_ * k;
    const double rate = expected_tokens(r.acceptance, k) / cost;
    if (rate > best_rate * (1 + 1e-9)) {
      best_rate = rate;
      best = k;
    }
  }
  if (best == 0) {
    if (++r.steps_at_zero >= cfg_.probe_every) {
      r.steps_at_zero = 0;
      return 1;
    }
    return 0;
  }
  r.steps_at_zero = 0;
  return best;
}

void SpecPolicy::record(int64_t id, int drafted, int accepted) {
  if (drafted <= 0) return;
  // Per-draft acceptance of this chain: accepted successes out of accepted (+1 if one was
  // rejected) trials.
  const int trials = accepted + (accepted < drafted ? 1 : 0);
  const double a = static_cast<double>(accepted) / std::max(1, trials);
  Req& r = reqs_.try_emplace(id, Req{cfg_.prior_acceptance}).first->second;
  r.acceptance = (1 - cfg_.ema) * r.acceptance + cfg_.ema * a;
}

void SpecPolicy::record_step(int batch_tokens, double seconds) {
  if (batch_tokens <= 0 || !(seconds > 0)) return;
  samples_.emplace_back(batch_tokens, seconds);
  if (samples_.size() > 256) samples_.pop_front();
  refit();
}

void SpecPolicy::record_draft(int tokens, double seconds) {
  if (tokens <= 0 || !(seconds > 0)) return;
  const double per = seconds / tokens;
  draft_per_token_ = draft_per_token_ == 0 ? per : 0.8 * draft_per_token_ + 0.2 * per;
}

void SpecPolicy::refit() {
  // Least squares t = fixed + per_token · n; needs at least two distinct batch sizes.
  double sn = 0, st = 0, snn = 0, snt = 0;
  int lo = samples_.front().first, hi = lo;
  for (const auto& [n, t] : samples_) {
    sn += n;
    st += t;
    snn += static_cast<double>(n) * n;
    snt += n * t;
    lo = std::min(lo, n);
    hi = std::max(hi, n);
  }
  const double m = static_cast<double>(samples_.size());
  if (hi == lo) {
    // One batch size seen: keep the ratio, scale to the measured time.
    const double ratio = per_token_ / fixed_;
    fixed_ = (st / m) / (1 + ratio * lo);
    per_token_ = ratio * fixed_;
    return;
  }
  const double slope = (m * snt - sn * st) / (m * snn - sn * sn);
  const double icept = (st - slope * sn) / m;
  // Physical bounds: both parts non-negative, the fixed part not vanishing.
  per_token_ = std::max(slope, 1e-9);
  fixed_ = std::max(icept, 0.05 * (st / m));
}

}  // namespace fc::spec
