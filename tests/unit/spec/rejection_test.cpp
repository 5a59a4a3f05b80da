// Rejection sampler tests: greedy verification on hand-made rows, losslessness (the emitted
// tokens are distributed as sampling from the target alone) by chi-square over seeded trials,
// max_emit, logprobs against sample()'s own report, and seeding.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "../../common/chi_square.h"
#include "core/error.h"
#include "sample/sampler.h"
#include "spec/rejection.h"

namespace fc::spec {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Gaussian logits (Box-Muller on the project's generator: platform-independent test data).
std::vector<float> random_logits(int n, uint64_t seed, double scale) {
  Rng rng(seed);
  std::vector<float> x(static_cast<size_t>(n));
  for (float& v : x) {
    const double u1 = 1.0 - rng.next_double(), u2 = rng.next_double();
    v = static_cast<float>(scale * std::sqrt(-2.0 * std::log(u1)) *
                           std::cos(6.283185307179586 * u2));
  }
  return x;
}

std::vector<double> softmax(const std::vector<float>& x) {
  double m = -INFINITY;
  for (float v : x) m = std::max(m, static_cast<double>(v));
  std::vector<double> p(x.size());
  double s = 0.0;
  for (size_t i = 0; i < x.size(); ++i) s += p[i] = std::exp(static_cast<double>(x[i]) - m);
  for (double& v : p) v /= s;
  return p;
}

// The distribution sample() draws from for this row and state (the target p of the spec).
std::vector<double> target_probs(const std::vector<float>& row, const SamplerState& state) {
  SamplerScratch scratch;
  const ProcessedRow pr = process_logits(row, state, scratch);
  std::vector<double> p(row.size());
  for (size_t i = 0; i < row.size(); ++i) p[i] = pr.prob(scratch.processed()[i]);
  return p;
}

int draw(const std::vector<double>& p, Rng& rng) {
  const double u = rng.next_double();
  double cum = 0.0;
  for (size_t i = 0; i < p.size(); ++i) {
    cum += p[i];
    if (u < cum) return static_cast<int>(i);
  }
  return static_cast<int>(p.size()) - 1;
}

// ---- Chi-square goodness of fit (tests/common/chi_square.h) ----

using test::chi_square;
using test::ChiSquare;
using test::gamma_q;

TEST(ChiSquare, IncompleteGammaMatchesTables) {
  // Chi-square critical values (upper tail): dof 1 at 0.05 = 3.841459, dof 7 at 0.01 = 18.475307,
  // dof 30 at 0.01 = 50.892181, dof 100 at 0.05 = 124.342113.
  EXPECT_NEAR(gamma_q(0.5, 3.841459 / 2), 0.05, 1e-6);
  EXPECT_NEAR(gamma_q(3.5, 18.475307 / 2), 0.01, 1e-6);
  EXPECT_NEAR(gamma_q(15.0, 50.892181 / 2), 0.01, 1e-6);
  EXPECT_NEAR(gamma_q(50.0, 124.342113 / 2), 0.05, 1e-6);
  EXPECT_NEAR(gamma_q(2.0, 1.0), 2.0 * std::exp(-1.0), 1e-12);  // Q(2, x) = (1 + x) e^-x
}

// ---- Greedy ----

SamplingParams greedy_params() {
  SamplingParams p;
  p.temperature = 0.0f;
  return p;
}

// Rows of a 6-token vocabulary whose argmax is best[i].
std::vector<float> rows_with_argmax(const std::vector<int>& best) {
  std::vector<float> x;
  for (size_t i = 0; i < best.size(); ++i) {
    for (int v = 0; v < 6; ++v) x.push_back(v == best[i] ? 3.0f : 0.1f * static_cast<float>(v));
  }
  return x;
}

TEST(Greedy, AllAcceptedThenBonus) {
  SamplerState state(greedy_params(), {}, 6);
  SamplerScratch scratch;
  const std::vector<float> logits = rows_with_argmax({4, 1, 2, 5});
  const std::vector<int32_t> drafts = {4, 1, 2};
  VerifyResult out;
  verify(logits, drafts, {}, state, scratch, nullptr, 10, out);
  EXPECT_EQ(out.num_accepted, 3);
  EXPECT_EQ(out.tokens, (std::vector<int32_t>{4, 1, 2, 5}));
  EXPECT_TRUE(out.logprobs.empty());
  EXPECT_EQ(state.num_generated(), 4);
}

TEST(Greedy, FirstMismatchEmitsArgmaxAndStops) {
  SamplerState state(greedy_params(), {}, 6);
  SamplerScratch scratch;
  const std::vector<float> logits = rows_with_argmax({4, 1, 2, 5});
  VerifyResult out;
  const std::vector<int32_t> drafts = {4, 3, 2};
  verify(logits, drafts, {}, state, scratch, nullptr, 10, out);
  EXPECT_EQ(out.num_accepted, 1);
  EXPECT_EQ(out.tokens, (std::vector<int32_t>{4, 1}));
  EXPECT_EQ(state.num_generated(), 2);
  const std::vector<int32_t> wrong_first = {0, 1, 2};
  verify(logits, wrong_first, {}, state, scratch, nullptr, 10, out);
  EXPECT_EQ(out.num_accepted, 0);
  EXPECT_EQ(out.tokens, (std::vector<int32_t>{4}));
}

TEST(Greedy, TiesGoToLowestId) {
  SamplerState state(greedy_params(), {}, 4);
  SamplerScratch scratch;
  const std::vector<float> logits = {1, 2, 2, 0, /*row 1*/ 0, 0, 0, 0};
  VerifyResult out;
  const std::vector<int32_t> drafts = {2};
  verify(logits, drafts, {}, state, scratch, nullptr, 10, out);
  EXPECT_EQ(out.tokens, (std::vector<int32_t>{1}));
}

TEST(Greedy, RepetitionPenaltyCountsAcceptedDraft) {
  // Row 1 prefers token 1 (2.0 vs 1.5) unless token 1 was generated: 2.0 / 2 = 1.0 < 1.5.
  const std::vector<float> logits = {0, 3, 1, 0, /*row 1*/ 0, 2.0f, 1.5f, 0, /*row 2*/ 0, 0, 0, 1};
  const std::vector<int32_t> drafts = {1, 1};
  VerifyResult out;
  SamplerScratch scratch;
  SamplerState plain(greedy_params(), {}, 4);
  verify(logits, drafts, {}, plain, scratch, nullptr, 10, out);
  EXPECT_EQ(out.tokens, (std::vector<int32_t>{1, 1, 3}));
  EXPECT_EQ(out.num_accepted, 2);

  SamplingParams pen = greedy_params();
  pen.repetition_penalty = 2.0f;
  SamplerState penalized(pen, {}, 4);
  verify(logits, drafts, {}, penalized, scratch, nullptr, 10, out);
  EXPECT_EQ(out.tokens, (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(out.num_accepted, 1);

  // Presence penalty: the same through the generated counts.
  SamplingParams pres = greedy_params();
  pres.presence_penalty = 1.0f;
  SamplerState presence(pres, {}, 4);
  verify(logits, drafts, {}, presence, scratch, nullptr, 10, out);
  EXPECT_EQ(out.tokens, (std::vector<int32_t>{1, 2}));
}

// ---- Losslessness ----

struct LosslessCase {
  std::string name;
  int vocab = 8;
  SamplingParams params;
  std::vector<int32_t> prompt;  // for the repetition penalty
};

std::vector<LosslessCase> lossless_cases() {
  std::vector<LosslessCase> cases;
  for (int vocab : {8, 32}) {
    const std::string v = "V" + std::to_string(vocab);
    LosslessCase plain{v + " plain", vocab, {}, {}};
    cases.push_back(plain);
    LosslessCase top_p = plain;
    top_p.name = v + " top_p=0.9";
    top_p.params.top_p = 0.9f;
    // A min_p that masks nothing here (exp(x - max) >= 1e-9 for these logits) sends the row down
    // the sampler's sparse path: its dense top-p (two 65536-bucket histograms per row) would make
    // this test take ~30 s. The dense path's normaliser is checked in the logprobs test.
    top_p.params.min_p = 1e-9f;
    cases.push_back(top_p);
    LosslessCase top_k = plain;
    top_k.name = v + " top_k=5";
    top_k.params.top_k = 5;
    cases.push_back(top_k);
  }
  // Penalties and the remaining steps: the history must include drafts accepted in the same call.
  LosslessCase pen{"V8 penalties+T0.8+min_p", 8, {}, {0, 3}};
  pen.params.temperature = 0.8f;
  pen.params.min_p = 0.05f;
  pen.params.repetition_penalty = 1.5f;
  pen.params.frequency_penalty = 0.7f;
  cases.push_back(pen);
  return cases;
}

// A toy target with memory one: row 0 is fixed, the row after token a is after[a], and rows
// further on are a fixed `rest`. The drafter proposes d_i ~ q_i, independent of the target.
struct ToyModel {
  int vocab;
  std::vector<float> row0, rest;
  std::vector<std::vector<float>> after;
  std::vector<std::vector<double>> q;  // q[i]: draft distribution at position i (i = 0..2)

  ToyModel(int v, uint64_t seed) : vocab(v) {
    row0 = random_logits(v, seed, 1.5);
    rest = random_logits(v, seed + 1, 1.5);
    for (int a = 0; a < v; ++a) after.push_back(random_logits(v, seed + 100 + a, 1.5));
    // Draft distributions differ from the target's (other logits, flatter), so both accepts and
    // rejects are frequent, and they put mass on tokens the target masks.
    for (int i = 0; i < 3; ++i) q.push_back(softmax(random_logits(v, seed + 50 + i, 1.0)));
  }

  // Logits [k + 1, vocab] for drafts that follow the newest token (row 0 = `first`).
  std::vector<float> logits(const std::vector<float>& first, const std::vector<int32_t>& d) const {
    std::vector<float> x = first;
    for (size_t i = 0; i < d.size(); ++i) {
      const std::vector<float>& r = i == 0 ? after[static_cast<size_t>(d[0])] : rest;
      x.insert(x.end(), r.begin(), r.end());
    }
    return x;
  }

  std::vector<float> draft_probs(int k) const {
    std::vector<float> p;
    for (int i = 0; i < k; ++i) {
      for (double v : q[static_cast<size_t>(i)]) p.push_back(static_cast<float>(v));
    }
    return p;
  }
};

TEST(Lossless, FirstTokenAndFirstPairMatchTarget) {
  constexpr int kTrials = 20000;
  double min_p = 1.0;
  int tests = 0;
  for (const LosslessCase& c : lossless_cases()) {
    const ToyModel model(c.vocab, 1000 + static_cast<uint64_t>(c.vocab));
    const int v = c.vocab;
    // Target: p_0 from row 0, then p_1|a from after[a] with a in the history.
    SamplerState fresh(c.params, c.prompt, v);
    const std::vector<double> p0 = target_probs(model.row0, fresh);
    std::vector<double> joint(static_cast<size_t>(v * v));
    for (int a = 0; a < v; ++a) {
      SamplerState hist(c.params, c.prompt, v);
      hist.accept(a);
      const std::vector<double> p1 = target_probs(model.after[static_cast<size_t>(a)], hist);
      for (int b = 0; b < v; ++b) joint[static_cast<size_t>(a * v + b)] = p0[a] * p1[b];
    }
    for (bool with_probs : {false, true}) {
      for (int k = 1; k <= 3; ++k) {
        SCOPED_TRACE(c.name + (with_probs ? " q given" : " one-hot") + " k=" + std::to_string(k));
        const std::vector<float> q = with_probs ? model.draft_probs(k) : std::vector<float>();
        const std::vector<float> q1 = with_probs ? model.draft_probs(1) : std::vector<float>();
        Rng drafter(77 + static_cast<uint64_t>(k) + (with_probs ? 10 : 0));
        std::vector<int64_t> first(static_cast<size_t>(v)), pair(static_cast<size_t>(v * v));
        SamplerScratch scratch;
        VerifyResult out, next;
        int64_t accepted = 0;
        for (int t = 0; t < kTrials; ++t) {
          SamplingParams params = c.params;
          params.seed = 0x5eed0000u + static_cast<uint64_t>(t);
          SamplerState state(params, c.prompt, v);
          std::vector<int32_t> d(static_cast<size_t>(k));
          for (int i = 0; i < k; ++i) d[i] = draw(model.q[static_cast<size_t>(i)], drafter);
          verify(model.logits(model.row0, d), d, q, state, scratch, nullptr, k + 1, out);
          ASSERT_FALSE(out.tokens.empty());
          ASSERT_EQ(state.num_generated(), static_cast<int64_t>(out.tokens.size()));
          accepted += out.num_accepted;
          const int32_t t0 = out.tokens[0];
          int32_t t1 = -1;
          if (out.tokens.size() >= 2) {
            ASSERT_EQ(t0, d[0]);  // a second token only follows an accepted draft
            t1 = out.tokens[1];
          } else {
            // The sequence ended with a recovered token: the next engine step verifies a new
            // draft after it, on the target's row for t0.
            const std::vector<int32_t> e = {draw(model.q[0], drafter)};
            verify(model.logits(model.after[static_cast<size_t>(t0)], e), e, q1, state, scratch,
                   nullptr, 1, next);
            t1 = next.tokens[0];
          }
          ++first[static_cast<size_t>(t0)];
          ++pair[static_cast<size_t>(t0 * v + t1)];
        }
        const ChiSquare c1 = chi_square(first, p0);
        const ChiSquare c2 = chi_square(pair, joint);
        std::printf(
            "  %-28s %-8s k=%d  accept %.3f  first: chi2 %7.2f dof %3d p %.3f  pair: "
            "chi2 %7.2f dof %3d p %.3f\n",
            c.name.c_str(), with_probs ? "q" : "one-hot", k,
            static_cast<double>(accepted) / (static_cast<double>(kTrials) * k), c1.stat, c1.dof,
            c1.p_value, c2.stat, c2.dof, c2.p_value);
        EXPECT_EQ(c1.impossible, 0);
        EXPECT_EQ(c2.impossible, 0);
        EXPECT_GT(c1.p_value, 0.01);
        EXPECT_GT(c2.p_value, 0.01);
        min_p = std::min({min_p, c1.p_value, c2.p_value});
        tests += 2;
        // The test has power: the same counts against the drafter's distribution are rejected.
        if (k == 1 && !with_probs) {
          EXPECT_LT(chi_square(first, model.q[0]).p_value, 1e-6);
        }
      }
    }
  }
  std::printf("  %d chi-square tests, smallest p-value %.4f\n", tests, min_p);
}

TEST(Lossless, MaskedOrUnproposedDraftIsAlwaysRejected) {
  // top_k = 2 masks token 0; a draft of 0 must never be accepted, with or without q. With q
  // given, q(d) = 0 rejects too, and the recovered token never is a masked one.
  SamplingParams params;
  params.top_k = 2;
  params.seed = 5;
  SamplerState state(params, {}, 4);
  SamplerScratch scratch;
  const std::vector<float> logits = {0.0f, 1.0f, 1.2f, 0.9f, /*row 1*/ 0, 0, 0, 0};
  const std::vector<float> zero_q = {0.5f, 0.5f, 0.0f, 0.0f};  // q(2) = 0 < p(2)
  VerifyResult out;
  for (int t = 0; t < 2000; ++t) {
    const std::vector<int32_t> masked = {0};
    verify(logits, masked, {}, state, scratch, nullptr, 2, out);
    ASSERT_EQ(out.num_accepted, 0);
    ASSERT_TRUE(out.tokens[0] == 1 || out.tokens[0] == 2) << out.tokens[0];
    const std::vector<int32_t> unproposed = {2};
    verify(logits, unproposed, zero_q, state, scratch, nullptr, 2, out);
    ASSERT_EQ(out.num_accepted, 0);
    ASSERT_TRUE(out.tokens[0] == 1 || out.tokens[0] == 2) << out.tokens[0];
  }
}

// ---- max_emit ----

TEST(MaxEmit, StopsEarly) {
  const std::vector<float> logits = rows_with_argmax({4, 1, 2, 5});
  const std::vector<int32_t> drafts = {4, 1, 2};
  SamplerScratch scratch;
  VerifyResult out;
  for (int cap = 0; cap <= 4; ++cap) {
    SamplerState state(greedy_params(), {}, 6);
    verify(logits, drafts, {}, state, scratch, nullptr, cap, out);
    EXPECT_EQ(out.tokens.size(), static_cast<size_t>(cap));
    EXPECT_EQ(out.num_accepted, std::min(cap, 3));
    EXPECT_EQ(state.num_generated(), cap);
  }
  // Random request whose drafts are certain (top_k = 1): the cap ends on an accepted draft, so
  // no recovered or bonus token follows and no extra random draw is taken.
  SamplingParams params;
  params.top_k = 1;
  params.seed = 9;
  for (int cap = 1; cap <= 4; ++cap) {
    SamplerState state(params, {}, 6);
    const std::vector<float> row = rows_with_argmax({4, 1, 2, 5});
    const std::vector<float> probs(18, 1.0f / 6);
    verify(row, drafts, probs, state, scratch, nullptr, cap, out);
    EXPECT_EQ(out.tokens.size(), static_cast<size_t>(cap));
    EXPECT_EQ(out.num_accepted, std::min(cap, 3));
    EXPECT_EQ(state.num_generated(), cap);
    Rng ref(9);
    for (int i = 0; i < cap; ++i) ref.next_double();  // one uniform per draft or the bonus
    EXPECT_EQ(state.rng().next_u64(), ref.next_u64());
  }
}

// ---- Logprobs ----

bool same_result(const SampleResult& a, const SampleResult& b) {
  if (a.token != b.token || a.has_logprobs != b.has_logprobs || a.rank != b.rank ||
      a.top.size() != b.top.size()) {
    return false;
  }
  // Bitwise: -inf == -inf, and the values must come from the same arithmetic.
  if (!(a.logprob == b.logprob)) return false;
  for (size_t i = 0; i < a.top.size(); ++i) {
    if (a.top[i].token != b.top[i].token || !(a.top[i].logprob == b.top[i].logprob)) return false;
  }
  return true;
}

// What sample() reports for `token` on `row` after `history`: run sample() on states with that
// history and successive seeds until it draws `token` (small vocabulary, so this is quick).
SampleResult reference_report(const std::vector<float>& row, const SamplingParams& params,
                              const std::vector<int32_t>& prompt,
                              const std::vector<int32_t>& history, int32_t token,
                              const LogprobsOptions& lo) {
  SamplerScratch scratch;
  for (uint64_t seed = 0; seed < 100000; ++seed) {
    SamplingParams p = params;
    p.seed = seed;
    SamplerState st(p, prompt, static_cast<int32_t>(row.size()));
    for (int32_t t : history) st.accept(t);
    const SampleResult r = sample(row, st, scratch, &lo);
    if (r.token == token) return r;
  }
  ADD_FAILURE() << "sample() never drew token " << token;
  return {};
}

TEST(Logprobs, MatchSampleForEveryEmittedToken) {
  constexpr int kV = 16;
  std::vector<float> logits;
  for (int i = 0; i < 4; ++i) {
    const std::vector<float> r = random_logits(kV, 300 + static_cast<uint64_t>(i), 2.0);
    logits.insert(logits.end(), r.begin(), r.end());
  }
  SamplingParams random_p;
  random_p.temperature = 0.7f;
  random_p.top_k = 8;
  random_p.top_p = 0.95f;
  random_p.repetition_penalty = 1.3f;
  random_p.presence_penalty = 0.5f;
  SamplingParams dense_top_p;  // no mask before top-p: the sampler's dense path
  dense_top_p.top_p = 0.8f;
  dense_top_p.frequency_penalty = 0.4f;
  SamplingParams greedy_p = greedy_params();
  greedy_p.frequency_penalty = 1.0f;
  const std::vector<int32_t> prompt = {1, 2, 3};
  const LogprobsMode modes[] = {LogprobsMode::kRawLogprobs, LogprobsMode::kRawLogits,
                                LogprobsMode::kProcessedLogprobs, LogprobsMode::kProcessedLogits};
  int checked = 0;
  for (const SamplingParams& base : {random_p, dense_top_p, greedy_p}) {
    for (LogprobsMode mode : modes) {
      const LogprobsOptions lo{3, mode};
      for (uint64_t seed = 0; seed < 12; ++seed) {
        SamplingParams params = base;
        params.seed = seed;
        SamplerState state(params, prompt, kV);
        SamplerScratch scratch;
        // Drafts: the first row's best token (often accepted), then arbitrary ones.
        const std::vector<int32_t> drafts = {argmax(std::span<const float>(logits).subspan(0, kV)),
                                             static_cast<int32_t>(seed % kV), 5};
        VerifyResult out;
        verify(logits, drafts, {}, state, scratch, &lo, 10, out);
        ASSERT_EQ(out.logprobs.size(), out.tokens.size());
        std::vector<int32_t> history;
        for (size_t i = 0; i < out.tokens.size(); ++i) {
          const std::vector<float> row(logits.begin() + static_cast<ptrdiff_t>(i * kV),
                                       logits.begin() + static_cast<ptrdiff_t>((i + 1) * kV));
          const SampleResult ref =
              reference_report(row, params, prompt, history, out.tokens[i], lo);
          EXPECT_EQ(out.logprobs[i].token, out.tokens[i]);
          EXPECT_TRUE(same_result(out.logprobs[i], ref))
              << "mode " << static_cast<int>(mode) << " seed " << seed << " position " << i << ": "
              << out.logprobs[i].logprob << " vs " << ref.logprob << ", rank "
              << out.logprobs[i].rank << " vs " << ref.rank;
          history.push_back(out.tokens[i]);
          ++checked;
        }
      }
    }
  }
  EXPECT_GT(checked, 200);
}

// ---- Seeding ----

TEST(Seeding, SameSeedSameTokens) {
  const ToyModel model(32, 4242);
  auto run = [&](uint64_t seed, bool with_probs) {
    SamplingParams params;
    params.top_p = 0.9f;
    params.seed = seed;
    SamplerState state(params, {}, 32);
    SamplerScratch scratch;
    Rng drafter(1);
    std::vector<int32_t> all;
    std::vector<float> row0 = model.row0;
    VerifyResult out;
    for (int step = 0; step < 200; ++step) {
      std::vector<int32_t> d(3);
      for (int i = 0; i < 3; ++i) d[i] = draw(model.q[static_cast<size_t>(i)], drafter);
      verify(model.logits(row0, d), d, with_probs ? model.draft_probs(3) : std::vector<float>(),
             state, scratch, nullptr, 4, out);
      all.insert(all.end(), out.tokens.begin(), out.tokens.end());
      row0 = model.after[static_cast<size_t>(out.tokens.back())];
    }
    return all;
  };
  for (bool with_probs : {false, true}) {
    EXPECT_EQ(run(123, with_probs), run(123, with_probs));
    EXPECT_NE(run(123, with_probs), run(124, with_probs));
  }
}

TEST(Seeding, BonusIsOrdinarySample) {
  // With q = p the ratio test passes (but for float rounding of q), so verify() takes one uniform
  // per draft and the bonus must be exactly sample() on row k after the same number of draws.
  const std::vector<float> logits = rows_with_argmax({4, 1, 2, 5});
  std::vector<float> bonus_row(logits.begin() + 18, logits.end());
  bonus_row[0] = 2.9f;  // a real choice between tokens 0 and 5 for the bonus (no top_k there)
  std::vector<float> rows(logits.begin(), logits.begin() + 18);
  rows.insert(rows.end(), bonus_row.begin(), bonus_row.end());
  SamplingParams params;
  SamplerScratch scratch;
  for (uint64_t seed = 0; seed < 50; ++seed) {
    params.seed = seed;
    SamplerState state(params, {}, 6);
    const std::vector<int32_t> drafts = {4, 1, 2};
    VerifyResult out;
    std::vector<float> q;
    for (int i = 0; i < 3; ++i) {
      const std::vector<float> r(rows.begin() + i * 6, rows.begin() + (i + 1) * 6);
      const std::vector<double> p = target_probs(r, state);
      for (double x : p) q.push_back(static_cast<float>(x));
    }
    verify(rows, drafts, q, state, scratch, nullptr, 10, out);
    if (out.num_accepted != 3) continue;  // float rounding of q may reject; then no bonus
    SamplerState ref(params, {}, 6);
    for (int i = 0; i < 3; ++i) ref.rng().next_double();
    for (int32_t d : drafts) ref.accept(d);
    EXPECT_EQ(out.tokens[3], sample(bonus_row, ref, scratch).token);
  }
}

TEST(Seeding, NoDraftsIsOneSample) {
  // k = 0 (the drafter proposed nothing): verify() is sample() on the single row.
  const std::vector<float> row = random_logits(32, 7, 2.0);
  SamplingParams params;
  params.top_k = 10;
  const LogprobsOptions lo{2, LogprobsMode::kProcessedLogprobs};
  SamplerScratch scratch;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    params.seed = seed;
    SamplerState a(params, {}, 32), b(params, {}, 32);
    VerifyResult out;
    verify(row, {}, {}, a, scratch, &lo, 5, out);
    const SampleResult ref = sample(row, b, scratch, &lo);
    ASSERT_EQ(out.tokens.size(), 1u);
    EXPECT_EQ(out.num_accepted, 0);
    EXPECT_TRUE(same_result(out.logprobs[0], ref));
    EXPECT_EQ(a.num_generated(), 1);
  }
}

TEST(Errors, BadShapes) {
  SamplerState state(greedy_params(), {}, 4);
  SamplerScratch scratch;
  VerifyResult out;
  const std::vector<float> two_rows(8, 0.0f);
  const std::vector<int32_t> one = {1};
  const std::vector<int32_t> bad = {4};
  EXPECT_THROW(verify(std::vector<float>(4, 0.0f), one, {}, state, scratch, nullptr, 2, out),
               Error);
  EXPECT_THROW(verify(two_rows, bad, {}, state, scratch, nullptr, 2, out), Error);
  EXPECT_THROW(verify(two_rows, one, std::vector<float>(3), state, scratch, nullptr, 2, out),
               Error);
  EXPECT_EQ(state.num_generated(), 0);
}

}  // namespace
}  // namespace fc::spec
