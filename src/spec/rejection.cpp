// Rejection sampling of drafted tokens (see rejection.h). Each row goes through the request's own
// sampling pipeline (sample/sampler.h process_logits), with the history advanced by every token
// emitted before it, so the penalties see accepted drafts exactly as non-speculative decoding
// would have seen the same tokens.
//
// RNG use per request (all from state.rng(), so a seed reproduces the tokens):
//  - greedy: nothing (sample() on a greedy request draws nothing);
//  - random: one uniform per verified draft (the acceptance test), one more on rejection (the
//    recovered token, inverse CDF), or the one sample() draws for the bonus token.
#include "spec/rejection.h"

#include <utility>

#include "core/error.h"

namespace fc::spec {
namespace {

// Inverse-CDF draw in ascending id order over nonnegative weights weight(v), v in [0, n): the
// first v whose inclusive cumulative weight exceeds u * sum (the rule sample() uses). Returns -1
// when every weight is 0. weight() is called twice per id, and must return the same both times.
template <class Weight>
int32_t draw_inverse_cdf(int32_t n, double u, Weight weight) {
  double sum = 0.0;
  for (int32_t v = 0; v < n; ++v) sum += weight(v);
  if (!(sum > 0.0)) return -1;
  const double target = u * sum;
  double cum = 0.0;
  int32_t last_positive = -1;
  for (int32_t v = 0; v < n; ++v) {
    const double w = weight(v);
    if (!(w > 0.0)) continue;
    last_positive = v;
    cum += w;
    if (cum > target) return v;
  }
  // Rounding in the second pass can leave cum a hair below target: take the last positive id.
  return last_positive;
}

// The recovered token after rejecting draft d: a draw from norm(max(p - q, 0)), with q one-hot at
// d when q is empty (then p with d zeroed: p_d - 1 <= 0). A rejection implies p(d) < q(d), so
// the residual has positive mass in exact arithmetic; if rounding leaves none (p == q to the last
// bit), the draw falls back to p itself, which is then the same distribution.
int32_t draw_recovered(std::span<const float> processed, const ProcessedRow& row,
                       std::span<const float> q, int32_t d, double u) {
  const int32_t n = static_cast<int32_t>(processed.size());
  auto residual = [&](int32_t v) {
    const double p = row.prob(processed[static_cast<size_t>(v)]);
    const double qv = q.empty() ? (v == d ? 1.0 : 0.0) : static_cast<double>(q[v]);
    return p > qv ? p - qv : 0.0;
  };
  int32_t token = draw_inverse_cdf(n, u, residual);
  if (token < 0) {
    token = draw_inverse_cdf(
        n, u, [&](int32_t v) { return row.prob(processed[static_cast<size_t>(v)]); });
  }
  FC_CHECK(token >= 0, "verify: no token has positive probability");
  return token;
}

}  // namespace

void verify(std::span<const float> logits, std::span<const int32_t> drafts,
            std::span<const float> draft_probs, SamplerState& state, SamplerScratch& scratch,
            const LogprobsOptions* logprobs, int max_emit, VerifyResult& out) {
  const int32_t vocab = state.vocab_size();
  const size_t v = static_cast<size_t>(vocab);
  const size_t k = drafts.size();
  FC_CHECK(logits.size() == (k + 1) * v, "verify: logits have ", logits.size(),
           " entries, expected (", k, " drafts + 1) x ", vocab);
  FC_CHECK(draft_probs.empty() || draft_probs.size() == k * v, "verify: draft_probs have ",
           draft_probs.size(), " entries, expected 0 or ", k, " x ", vocab);
  for (size_t i = 0; i < k; ++i) {
    FC_CHECK(drafts[i] >= 0 && drafts[i] < vocab, "verify: draft ", i, " has id ", drafts[i],
             ", outside the vocabulary [0, ", vocab, ")");
  }
  out.num_accepted = 0;
  out.tokens.clear();
  out.logprobs.clear();
  const bool greedy = state.params().is_greedy();
  auto row_of = [&](size_t i) { return logits.subspan(i * v, v); };
  // Records one emitted token: its logprobs (computed before accept(), on the row's pipeline as
  // it was when the row was processed) and the history the next row's penalties need.
  auto emit = [&](int32_t token, SampleResult* result) {
    out.tokens.push_back(token);
    if (logprobs) out.logprobs.push_back(std::move(*result));
    state.accept(token);
  };

  SampleResult res;
  for (size_t i = 0; i < k; ++i) {
    if (static_cast<int>(out.tokens.size()) >= max_emit) return;
    const std::span<const float> row = row_of(i);
    const int32_t d = drafts[i];
    if (greedy) {
      // The target token is what sample() picks (argmax of the penalized row, lowest id on ties)
      // and its logprobs are sample()'s own; a draft is accepted iff it equals it.
      sample(row, state, scratch, logprobs, res);
      const bool accepted = res.token == d;
      emit(res.token, &res);
      if (!accepted) return;
      ++out.num_accepted;
      continue;
    }
    const ProcessedRow pr = process_logits(row, state, scratch);
    const std::span<const float> x = scratch.processed();
    const std::span<const float> q =
        draft_probs.empty() ? std::span<const float>() : draft_probs.subspan(i * v, v);
    const double p_d = pr.prob(x[static_cast<size_t>(d)]);
    const double q_d = q.empty() ? 1.0 : static_cast<double>(q[static_cast<size_t>(d)]);
    const double u = state.rng().next_double();
    // Accept with probability min(1, p/q), written p >= u q to avoid dividing. p_d > 0 only
    // excludes u == 0 (probability 2^-53), which would otherwise accept a masked token.
    const bool accepted = q_d > 0.0 && p_d > 0.0 && p_d >= u * q_d;
    const int32_t token = accepted ? d : draw_recovered(x, pr, q, d, state.rng().next_double());
    if (logprobs) token_logprobs(row, scratch, pr, token, *logprobs, res);
    emit(token, &res);
    if (!accepted) return;
    ++out.num_accepted;
  }
  if (static_cast<int>(out.tokens.size()) >= max_emit) return;
  // Every draft accepted: the bonus token is an ordinary sample from row k, so it is drawn
  // exactly as non-speculative decoding would draw it from that row.
  sample(row_of(k), state, scratch, logprobs, res);
  emit(res.token, &res);
}

}  // namespace fc::spec
