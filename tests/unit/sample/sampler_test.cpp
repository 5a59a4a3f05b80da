// Sampler tests: every step against hand-computed numbers or a slow, obvious double-precision
// reference; the random draw against softmax probabilities; seeding and logprobs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"
#include "sample/sample_ops.h"
#include "sample/sampler.h"

namespace fc {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Gaussian logits (Box-Muller on our own generator, so the test data is platform independent).
std::vector<float> random_logits(int64_t n, uint64_t seed, double scale) {
  Rng rng(seed);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) {
    const double u1 = 1.0 - rng.next_double(), u2 = rng.next_double();
    v = static_cast<float>(scale * std::sqrt(-2.0 * std::log(u1)) *
                           std::cos(6.283185307179586 * u2));
  }
  return x;
}

// softmax in double over the finite entries.
std::vector<double> ref_softmax(const std::vector<float>& x) {
  double m = -INFINITY;
  for (float v : x) m = std::max(m, static_cast<double>(v));
  std::vector<double> p(x.size(), 0.0);
  double s = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    p[i] = std::isinf(x[i]) ? 0.0 : std::exp(static_cast<double>(x[i]) - m);
    s += p[i];
  }
  for (double& v : p) v /= s;
  return p;
}

// A reference mask: masked[i] is the decision, unsure[i] marks tokens sitting within rounding of
// the threshold, whose decision is not compared.
struct RefMask {
  std::vector<bool> masked, unsure;
};

RefMask ref_min_p(const std::vector<float>& x, double min_p) {
  const std::vector<double> p = ref_softmax(x);
  const double pmax = *std::max_element(p.begin(), p.end());
  RefMask r{std::vector<bool>(x.size()), std::vector<bool>(x.size())};
  for (size_t i = 0; i < x.size(); ++i) {
    r.masked[i] = std::isinf(x[i]) || p[i] < pmax * min_p;
    r.unsure[i] = !std::isinf(x[i]) && std::fabs(p[i] / pmax - min_p) < 1e-5;
  }
  return r;
}

RefMask ref_top_k(const std::vector<float>& x, int64_t k) {
  std::vector<float> s = x;
  std::sort(s.begin(), s.end(), std::greater<float>());
  RefMask r{std::vector<bool>(x.size()), std::vector<bool>(x.size())};
  if (k <= 0 || k >= static_cast<int64_t>(x.size())) {
    for (size_t i = 0; i < x.size(); ++i) r.masked[i] = std::isinf(x[i]);
    return r;
  }
  const float t = s[static_cast<size_t>(k - 1)];
  for (size_t i = 0; i < x.size(); ++i) r.masked[i] = std::isinf(x[i]) || x[i] < t;
  return r;
}

RefMask ref_top_p(const std::vector<float>& x, double top_p) {
  const std::vector<double> p = ref_softmax(x);
  std::vector<size_t> order(x.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return x[a] > x[b] || (x[a] == x[b] && a < b); });
  RefMask r{std::vector<bool>(x.size()), std::vector<bool>(x.size())};
  double ahead = 0.0;
  for (size_t id : order) {
    r.masked[id] = std::isinf(x[id]) || !(ahead < top_p);
    r.unsure[id] = !std::isinf(x[id]) && std::fabs(ahead - top_p) < 1e-6;
    ahead += p[id];
  }
  return r;
}

void apply_ref(std::vector<float>& x, const RefMask& m) {
  for (size_t i = 0; i < x.size(); ++i) {
    if (m.masked[i]) x[i] = kNegInf;
  }
}

// Compares an implementation's row with a reference mask; returns the number of unsure tokens.
int expect_mask(const std::vector<float>& got, const RefMask& ref, const char* what) {
  int unsure = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (ref.unsure[i]) {
      ++unsure;
      continue;
    }
    EXPECT_EQ(std::isinf(got[i]) && got[i] < 0, ref.masked[i]) << what << " token " << i;
  }
  return unsure;
}

// Quantized logits with many exact ties.
std::vector<float> tied_logits(int64_t n, uint64_t seed) {
  std::vector<float> x = random_logits(n, seed, 2.0);
  for (float& v : x) v = std::round(v * 2.0f) / 2.0f;
  return x;
}

// ---------------------------------------------------------------------------------------------

TEST(SampleOps, FastExpAccuracy) {
  double worst = 0.0;
  for (int i = 0; i <= 870000; ++i) {
    const float x = -static_cast<float>(i) * 1e-4f;
    const double want = std::exp(static_cast<double>(x));
    const double rel = std::fabs(sample_ops::exp_nonpos(x) - want) / want;
    worst = std::max(worst, rel);
  }
  EXPECT_LT(worst, 4e-7);  // ~3 ulp
  EXPECT_EQ(sample_ops::exp_nonpos(0.0f), 1.0f);
  EXPECT_EQ(sample_ops::exp_nonpos(-88.0f), 0.0f);
  EXPECT_EQ(sample_ops::exp_nonpos(kNegInf), 0.0f);
}

TEST(SampleOps, FloatKeyIsOrderPreserving) {
  const std::vector<float> v = {kNegInf, -1e30f, -2.5f, -1e-30f, -0.0f,
                                0.0f,    1e-30f, 3.0f,  1e30f,   INFINITY};
  for (size_t i = 1; i < v.size(); ++i) {
    EXPECT_LT(sample_ops::float_key(v[i - 1]), sample_ops::float_key(v[i])) << i;
    EXPECT_EQ(sample_ops::key_float(sample_ops::float_key(v[i])), v[i]);
  }
}

TEST(Greedy, LowestIdWinsTies) {
  EXPECT_EQ(argmax(std::vector<float>{1, 5, 3, 5, 5}), 1);
  EXPECT_EQ(argmax(std::vector<float>{7}), 0);
  EXPECT_EQ(argmax(std::vector<float>{kNegInf, kNegInf}), 0);
  // Ties in different SIMD lanes and in the scalar tail.
  for (int64_t n : {17, 1000, 262144 + 5}) {
    std::vector<float> x = random_logits(n, 3, 1.0);
    x[static_cast<size_t>(n - 1)] = 50.0f;
    EXPECT_EQ(argmax(x), n - 1);
    x[static_cast<size_t>(n / 2)] = 50.0f;
    EXPECT_EQ(argmax(x), n / 2);
    x[3] = 50.0f;
    EXPECT_EQ(argmax(x), 3);
  }
  // Through sample(): temperature 0 takes the first maximum and draws nothing.
  SamplingParams p;
  p.temperature = 0.0f;
  SamplerState st(p, {}, 5);
  SamplerScratch sc;
  const std::vector<float> x = {0.5f, 2.0f, -1.0f, 2.0f, 1.0f};
  Rng before = st.rng();
  EXPECT_EQ(sample(x, st, sc).token, 1);
  EXPECT_EQ(st.rng().next_u64(), before.next_u64());
}

TEST(Penalties, HandComputed) {
  const std::vector<float> logits = {2.0f, -1.0f, 0.5f, 3.0f, -2.0f, 0.0f};
  const std::vector<int32_t> prompt = {0, 1, 1};
  auto run = [&](float rep, float pres, float freq) {
    SamplingParams p;
    p.repetition_penalty = rep;
    p.presence_penalty = pres;
    p.frequency_penalty = freq;
    SamplerState st(p, prompt, 6);
    for (int32_t t : {3, 3, 4}) st.accept(t);
    std::vector<float> x = logits;
    st.apply_penalties(x);
    return x;
  };
  // Repetition only: prompt ∪ generated = {0, 1, 3, 4}; positive / 2, negative * 2.
  EXPECT_EQ(run(2.0f, 0, 0), (std::vector<float>{1.0f, -2.0f, 0.5f, 1.5f, -4.0f, 0.0f}));
  // Frequency only: generated counts {3: 2, 4: 1}; the prompt does not count.
  EXPECT_EQ(run(1.0f, 0, 0.25f), (std::vector<float>{2.0f, -1.0f, 0.5f, 2.5f, -2.25f, 0.0f}));
  // Presence only: generated tokens once each.
  EXPECT_EQ(run(1.0f, 0.5f, 0), (std::vector<float>{2.0f, -1.0f, 0.5f, 2.5f, -2.5f, 0.0f}));
  // All three, in vLLM's order: repetition, then frequency, then presence.
  EXPECT_EQ(run(2.0f, 0.5f, 0.25f), (std::vector<float>{1.0f, -2.0f, 0.5f, 0.5f, -4.75f, 0.0f}));
  // Negative penalties reward repeats; repetition < 1 boosts.
  // Token 4: -2 * 0.5 = -1, then + 0.5 * 1, then + 1.
  EXPECT_EQ(run(0.5f, -1.0f, -0.5f), (std::vector<float>{4.0f, -0.5f, 0.5f, 8.0f, 0.5f, 0.0f}));
}

TEST(Processors, AllowedTokensLogitBiasMinTokensHandComputed) {
  const std::vector<float> logits = {2.0f, -1.0f, 0.5f, 3.0f, -2.0f, 0.0f};
  SamplingParams p;
  p.temperature = 0.0f;
  p.allowed_token_ids = {1, 2, 5};
  p.logit_bias = {{2, -1.0f}, {5, 0.75f}};
  p.min_tokens = 2;
  p.min_tokens_stop_ids = {5};
  SamplerState st(p, {}, 6);
  std::vector<float> x = logits;
  st.apply_processors(x);
  // Not allowed: -inf; biased: 0.5 - 1, 0 + 0.75, then the stop id 5 banned (0 of 2 generated).
  EXPECT_EQ(x, (std::vector<float>{kNegInf, -1.0f, -0.5f, kNegInf, kNegInf, kNegInf}));
  SamplerScratch sc;
  LogprobsOptions lo;  // raw logprobs: taken before the processors
  SampleResult r;
  sample(logits, st, sc, &lo, r);
  EXPECT_EQ(r.token, 2);
  EXPECT_NEAR(r.logprob,
              0.5 - std::log(std::exp(2.0) + std::exp(-1.0) + std::exp(0.5) + std::exp(3.0) +
                             std::exp(-2.0) + std::exp(0.0)),
              1e-5);
  st.accept(r.token);
  st.accept(1);  // two generated: the stop id may be drawn now
  x = logits;
  st.apply_processors(x);
  EXPECT_EQ(x[5], 0.75f);
  EXPECT_EQ(sample(logits, st, sc).token, 5);
  // Random draws never leave the allowed set.
  SamplingParams q;
  q.temperature = 1.5f;
  q.seed = 3;
  q.allowed_token_ids = {0, 4};
  SamplerState rs(q, {}, 6);
  for (int i = 0; i < 200; ++i) {
    const int32_t t = sample(logits, rs, sc).token;
    ASSERT_TRUE(t == 0 || t == 4) << t;
  }
}

TEST(Processors, BadWordsBanTheirLastTokenAfterTheirPrefix) {
  const std::vector<float> logits = {2.0f, -1.0f, 0.5f, 3.0f, -2.0f, 0.0f};
  SamplingParams p;
  p.temperature = 0.0f;
  p.bad_words_ids = {{3}, {1, 2}, {4, 1, 0}};
  const std::vector<int32_t> prompt = {3, 1};  // does not count (vLLM: output tokens only)
  SamplerState st(p, prompt, 6);
  std::vector<float> x = logits;
  st.apply_processors(x);
  EXPECT_EQ(x, (std::vector<float>{2.0f, -1.0f, 0.5f, kNegInf, -2.0f, 0.0f}));
  st.accept(1);  // output ends with 1: token 2 banned next
  x = logits;
  st.apply_processors(x);
  EXPECT_EQ(x, (std::vector<float>{2.0f, -1.0f, kNegInf, kNegInf, -2.0f, 0.0f}));
  st.accept(4);
  st.accept(1);  // ends with 4, 1: token 0 banned, and 2 again
  x = logits;
  st.apply_processors(x);
  EXPECT_EQ(x, (std::vector<float>{kNegInf, -1.0f, kNegInf, kNegInf, -2.0f, 0.0f}));
  SamplerScratch sc;
  EXPECT_EQ(sample(logits, st, sc).token, 5);  // 0 and 3 gone: 0.0 is the best left
  p.bad_words_ids = {{}};
  EXPECT_THROW(SamplerState(p, {}, 6), Error);
  p.bad_words_ids = {{1, 9}};
  EXPECT_THROW(SamplerState(p, {}, 6), Error);
}

TEST(Processors, BadIdsAndValuesRefused) {
  SamplingParams p;
  p.allowed_token_ids = {6};
  EXPECT_THROW(SamplerState(p, {}, 6), Error);
  p.allowed_token_ids.clear();
  p.logit_bias = {{-1, 1.0f}};
  EXPECT_THROW(SamplerState(p, {}, 6), Error);
  p.logit_bias = {{1, std::numeric_limits<float>::quiet_NaN()}};
  EXPECT_THROW(validate_sampling_params(p), Error);
  p.logit_bias.clear();
  p.min_tokens = -1;
  EXPECT_THROW(validate_sampling_params(p), Error);
}

TEST(Penalties, ZeroLogitAndGreedyInteraction) {
  SamplingParams p;
  p.temperature = 0.0f;
  p.repetition_penalty = 10.0f;
  SamplerState st(p, std::vector<int32_t>{0, 2}, 3);
  SamplerScratch sc;
  // Token 0 (logit 3) becomes 0.3, token 2 (logit 0) stays 0, token 1 (logit 1) wins.
  const std::vector<float> x = {3.0f, 1.0f, 0.0f};
  EXPECT_EQ(sample(x, st, sc).token, 1);
  EXPECT_FLOAT_EQ(sc.processed()[0], 0.3f);
  EXPECT_EQ(sc.processed()[2], 0.0f);
  EXPECT_EQ(st.generated_count(1), 0);  // repetition only: counts are not tracked
  EXPECT_THROW(st.accept(3), Error);
  EXPECT_THROW(SamplerState(p, std::vector<int32_t>{5}, 3), Error);
}

TEST(Masks, MinPTopKTopPAgainstReference) {
  SamplerScratch sc;
  int unsure = 0, compared = 0;
  for (int64_t n : {1, 2, 17, 1000, 5000}) {
    for (uint64_t seed = 1; seed <= 6; ++seed) {
      const std::vector<float> base = seed % 2 ? random_logits(n, seed, 1.5) : tied_logits(n, seed);
      for (double min_p : {0.01, 0.3, 1.0}) {
        std::vector<float> x = base;
        apply_min_p(x, static_cast<float>(min_p));
        unsure += expect_mask(x, ref_min_p(base, min_p), "min_p");
      }
      for (int64_t k : {int64_t{1}, int64_t{2}, int64_t{5}, n / 2, n - 1, int64_t{1500}}) {
        std::vector<float> x = base;
        apply_top_k(x, k, sc);
        unsure += expect_mask(x, ref_top_k(base, k), "top_k");
      }
      for (double top_p : {0.05, 0.5, 0.9, 0.999}) {
        std::vector<float> x = base;
        apply_top_p(x, static_cast<float>(top_p), sc);
        unsure += expect_mask(x, ref_top_p(base, static_cast<float>(top_p)), "top_p");
        // The most likely token always survives.
        EXPECT_GT(x[static_cast<size_t>(argmax(base))], kNegInf);
      }
      compared += static_cast<int>(n) * 13;
    }
  }
  std::printf("mask comparisons: %d tokens, %d unsure\n", compared, unsure);
  EXPECT_LT(unsure, compared / 1000);  // the reference is decisive almost everywhere
}

TEST(Masks, TopKRadixPathAndTies) {
  SamplerScratch sc;
  // k > 1024 goes through the radix select; values with many ties keep every tie of the k-th.
  for (uint64_t seed : {11, 12}) {
    const std::vector<float> base = tied_logits(70000, seed);
    for (int64_t k : {1025, 20000, 69999}) {
      std::vector<float> x = base;
      apply_top_k(x, k, sc);
      expect_mask(x, ref_top_k(base, k), "top_k radix");
      const int64_t kept = std::count_if(x.begin(), x.end(), [](float v) { return v > kNegInf; });
      EXPECT_GE(kept, k);
    }
  }
  std::vector<float> x = {5, 5, 5, 1};
  apply_top_k(x, 2, sc);
  EXPECT_EQ(x, (std::vector<float>{5, 5, 5, kNegInf}));
}

TEST(Masks, TopPSplitsTiesByLowerId) {
  SamplerScratch sc;
  // Four equal tokens of 0.25 each: top_p 0.45 keeps the two lowest ids (0.25 ahead of id 1 is
  // < 0.45, 0.5 ahead of id 2 is not). Thresholds stay clear of the exact sums, which rounding
  // of the probabilities may put on either side.
  std::vector<float> x = {1, 1, 1, 1};
  apply_top_p(x, 0.45f, sc);
  EXPECT_EQ(x, (std::vector<float>{1, 1, kNegInf, kNegInf}));
  x = {1, 1, 1, 1};
  apply_top_p(x, 0.55f, sc);
  EXPECT_EQ(x, (std::vector<float>{1, 1, 1, kNegInf}));
}

// The whole random pipeline (temperature, min_p, top-k, top-p), including the sparse path used
// after a small top-k, against the references applied in vLLM's order.
TEST(Pipeline, ProcessedLogitsMatchReference) {
  SamplerScratch sc;
  struct Case {
    float t, min_p;
    int k;
    float p;
  };
  const std::vector<Case> cases = {
      {1.0f, 0, 0, 1.0f}, {0.7f, 0.05f, 0, 1.0f},    {1.3f, 0, 40, 1.0f},   {0.9f, 0, 40, 0.8f},
      {1.0f, 0, 0, 0.9f}, {0.5f, 0.1f, 3000, 0.95f}, {1.0f, 0.2f, 7, 0.3f}, {2.0f, 0, 1, 0.5f}};
  for (int64_t n : {1, 2, 17, 1000, 9000}) {
    for (const Case& c : cases) {
      SamplingParams p;
      p.temperature = c.t;
      p.min_p = c.min_p;
      p.top_k = c.k;
      p.top_p = c.p;
      p.seed = 7;
      SamplerState st(p, {}, static_cast<int32_t>(n));
      const std::vector<float> logits = random_logits(n, 100 + n, 2.0);
      const SampleResult r = sample(logits, st, sc);
      std::vector<float> ref = logits;
      for (float& v : ref) v /= c.t;
      RefMask m1 = ref_min_p(ref, c.min_p);
      if (c.min_p > 0) apply_ref(ref, m1);
      RefMask m2 = ref_top_k(ref, c.k);
      apply_ref(ref, m2);
      RefMask m3 = ref_top_p(ref, c.p);
      if (c.p < 1.0f) apply_ref(ref, m3);
      const std::span<const float> got = sc.processed();
      ASSERT_EQ(got.size(), static_cast<size_t>(n));
      for (size_t i = 0; i < ref.size(); ++i) {
        if (m1.unsure[i] || m3.unsure[i]) continue;
        EXPECT_EQ(got[i], ref[i]) << "n=" << n << " k=" << c.k << " p=" << c.p << " i=" << i;
      }
      EXPECT_GT(ref[static_cast<size_t>(r.token)], kNegInf);  // the draw respects the masks
    }
  }
}

double chi_square(const std::vector<int>& counts, const std::vector<double>& probs, int n) {
  double chi2 = 0.0;
  for (size_t i = 0; i < counts.size(); ++i) {
    if (probs[i] == 0.0) continue;
    const double e = probs[i] * n;
    chi2 += (counts[i] - e) * (counts[i] - e) / e;
  }
  return chi2;
}

// Draws 20000 seeded tokens and compares the histogram with the expected distribution.
// `critical` is the chi-square value with tail probability 1e-6 for the support size - 1
// degrees of freedom; a wrong distribution (`wrong`) must land far above it.
void check_distribution(const SamplingParams& params, const std::vector<float>& logits,
                        const std::vector<double>& expected, const std::vector<double>& wrong,
                        double critical) {
  constexpr int kDraws = 20000;
  SamplerState st(params, {}, static_cast<int32_t>(logits.size()));
  SamplerScratch sc;
  std::vector<int> counts(logits.size(), 0);
  for (int i = 0; i < kDraws; ++i) ++counts[static_cast<size_t>(sample(logits, st, sc).token)];
  for (size_t i = 0; i < counts.size(); ++i) {
    if (expected[i] == 0.0) {
      EXPECT_EQ(counts[i], 0) << "masked token " << i << " was drawn";
    }
    const double sd = std::sqrt(expected[i] * (1 - expected[i]) / kDraws);
    EXPECT_NEAR(counts[i] / double(kDraws), expected[i], 5 * sd + 1e-9) << "token " << i;
  }
  EXPECT_LT(chi_square(counts, expected, kDraws), critical);
  EXPECT_GT(chi_square(counts, wrong, kDraws), 10 * critical);  // the test has power
}

std::vector<double> masked_softmax(const std::vector<float>& x, float t,
                                   const std::vector<int>& keep) {
  std::vector<float> y(x.size(), kNegInf);
  for (int i : keep) y[static_cast<size_t>(i)] = x[static_cast<size_t>(i)] / t;
  return ref_softmax(y);
}

TEST(Distribution, DenseSoftmaxWithTemperature) {
  const std::vector<float> x = {1.0f, 0.5f, 2.0f, -1.0f, 0.0f, 1.5f, 0.2f, -0.5f, 3.0f, 0.1f};
  SamplingParams p;
  p.temperature = 0.8f;
  p.seed = 1234;
  std::vector<float> scaled = x;
  for (float& v : scaled) v /= 0.8f;
  check_distribution(p, x, ref_softmax(scaled), ref_softmax(x), 44.81 /* df 9 */);
}

TEST(Distribution, SparseTopKTopP) {
  // 1000 tokens, five clear leaders; top_k 5 then top_p 0.9 keeps the first four.
  std::vector<float> x = random_logits(1000, 5, 0.5);
  const std::vector<int> leaders = {17, 400, 3, 999, 512};
  const std::vector<float> lv = {6.0f, 5.6f, 5.2f, 4.8f, 4.0f};
  for (size_t i = 0; i < leaders.size(); ++i) x[static_cast<size_t>(leaders[i])] = lv[i];
  SamplingParams p;
  p.top_k = 5;
  p.top_p = 0.9f;
  p.seed = 99;
  // Probabilities of the five after top-k: e^6, e^5.6, ... normalized; mass ahead of the fifth is
  // about 0.95 > 0.9 and ahead of the fourth about 0.84 < 0.9, so four survive.
  const std::vector<double> expected = masked_softmax(x, 1.0f, {17, 400, 3, 999});
  const std::vector<double> wrong = masked_softmax(x, 1.0f, {17, 400, 3, 999, 512});
  check_distribution(p, x, expected, wrong, 30.66 /* df 3 */);
}

TEST(Distribution, DenseTopPAndMinP) {
  const std::vector<float> x = {2.0f, 1.9f, 1.0f, 0.0f, -1.0f, 1.95f, 0.5f};
  SamplingParams p;
  p.top_p = 0.75f;
  p.seed = 5;
  // Sorted: 0 (2.0), 5 (1.95), 1 (1.9), 2 (1.0), ... The first three hold ~0.76 of the mass;
  // ahead of token 1 is ~0.52 < 0.75 so it survives, ahead of token 2 ~0.76 so it does not.
  const std::vector<double> sm = ref_softmax(x);
  ASSERT_LT(sm[0] + sm[5], 0.75);
  ASSERT_GT(sm[0] + sm[5] + sm[1], 0.75);
  check_distribution(p, x, masked_softmax(x, 1.0f, {0, 1, 5}),
                     masked_softmax(x, 1.0f, {0, 1, 2, 5}), 27.63 /* df 2 */);
  SamplingParams q;
  q.min_p = 0.3f;  // keeps tokens with prob >= 0.3 * max: exp(x - 2) >= 0.3 <=> x >= 0.796
  q.seed = 6;
  check_distribution(q, x, masked_softmax(x, 1.0f, {0, 1, 2, 5}), ref_softmax(x), 30.66 /* df 3 */);
}

// Predicts the draw from a copy of the generator: the first token (ascending id) whose inclusive
// cumulative probability exceeds u, computed in double.
TEST(Distribution, InverseCdfMapping) {
  SamplerScratch sc;
  for (int64_t n : {3, 300, 262144}) {
    SamplingParams p;
    p.seed = static_cast<uint64_t>(n);
    SamplerState st(p, {}, static_cast<int32_t>(n));
    const std::vector<float> x = random_logits(n, 77, 3.0);
    const std::vector<double> probs = ref_softmax(x);
    int checked = 0;
    for (int rep = 0; rep < 20; ++rep) {
      Rng peek = st.rng();
      const double u = peek.next_double();
      const int32_t got = sample(x, st, sc).token;
      double cum = 0.0;
      int32_t want = -1;
      bool near_edge = false;
      for (int64_t i = 0; i < n; ++i) {
        cum += probs[static_cast<size_t>(i)];
        if (std::fabs(cum - u) < 1e-6) near_edge = true;
        if (cum > u && want < 0) want = static_cast<int32_t>(i);
      }
      if (near_edge) continue;
      EXPECT_EQ(got, want) << "n=" << n << " u=" << u;
      ++checked;
    }
    EXPECT_GE(checked, 15);
  }
}

TEST(Seeding, SameSeedSameTokensDifferentSeedDifferent) {
  const std::vector<float> x = random_logits(1000, 8, 0.3);  // nearly flat
  auto draw = [&](std::optional<uint64_t> seed) {
    SamplingParams p;
    p.seed = seed;
    SamplerState st(p, {}, 1000);
    SamplerScratch sc;
    std::vector<int32_t> out;
    for (int i = 0; i < 100; ++i) out.push_back(sample(x, st, sc).token);
    return out;
  };
  const auto a = draw(42), b = draw(42), c = draw(43);
  EXPECT_EQ(a, b);
  int differ = 0;
  for (size_t i = 0; i < a.size(); ++i) differ += a[i] != c[i];
  EXPECT_GE(differ, 95);
  // Unseeded states draw their own seeds.
  SamplingParams p;
  SamplerState s1(p, {}, 10), s2(p, {}, 10);
  EXPECT_NE(s1.seed(), s2.seed());
  // The generator itself is fixed: the first outputs of seed 0 never change across builds.
  Rng r(0);
  const uint64_t first = r.next_u64();
  EXPECT_EQ(Rng(0).next_u64(), first);
  EXPECT_NE(first, Rng(1).next_u64());
}

TEST(Seeding, BatchIndependentOfNeighboursAndThreads) {
  constexpr int kReqs = 6, kSteps = 30, kVocab = 3000;
  std::vector<std::vector<float>> rows;
  for (int r = 0; r < kReqs; ++r) rows.push_back(random_logits(kVocab, 500 + r, 1.0));
  auto run = [&](int threads, const std::vector<int>& members) {
    ThreadPool pool(threads);
    std::vector<SamplerScratch> scratch(static_cast<size_t>(threads));
    std::vector<SamplerState> states;
    for (int r : members) {
      SamplingParams p;
      p.seed = 1000 + r;
      p.top_k = r % 2 ? 50 : 0;
      p.top_p = r % 3 ? 0.9f : 1.0f;
      states.emplace_back(p, std::vector<int32_t>{1, 2, 3}, kVocab);
    }
    std::vector<SampleResult> results(members.size());
    std::vector<std::vector<int32_t>> tokens(kReqs);
    for (int s = 0; s < kSteps; ++s) {
      std::vector<SampleJob> jobs;
      for (size_t j = 0; j < members.size(); ++j) {
        jobs.push_back({rows[static_cast<size_t>(members[j])], &states[j], nullptr, &results[j]});
      }
      sample_batch(pool, jobs, scratch);
      for (size_t j = 0; j < members.size(); ++j) {
        tokens[static_cast<size_t>(members[j])].push_back(results[j].token);
        states[j].accept(results[j].token);
      }
    }
    return tokens;
  };
  const auto solo = run(1, {3});
  const auto all1 = run(1, {0, 1, 2, 3, 4, 5});
  const auto all2 = run(2, {5, 4, 3, 2, 1, 0});
  EXPECT_EQ(all1, all2);
  EXPECT_EQ(solo[3], all1[3]);
}

TEST(Logprobs, RawModeMatchesDirectComputation) {
  const std::vector<float> x = random_logits(500, 21, 2.0);
  double m = -INFINITY, s = 0.0;
  for (float v : x) m = std::max(m, double(v));
  for (float v : x) s += std::exp(double(v) - m);
  const double lse = m + std::log(s);
  EXPECT_NEAR(log_sum_exp(x), lse, 1e-6);

  SamplingParams p;
  p.temperature = 0.7f;
  p.top_k = 20;
  p.repetition_penalty = 1.5f;
  p.seed = 3;
  SamplerState st(p, std::vector<int32_t>{4, 5}, 500);
  SamplerScratch sc;
  LogprobsOptions lo;
  lo.top_n = 5;
  const SampleResult r = sample(x, st, sc, &lo);
  ASSERT_TRUE(r.has_logprobs);
  // Raw (vLLM default): independent of penalties, temperature and top-k.
  EXPECT_NEAR(r.logprob, x[static_cast<size_t>(r.token)] - lse, 1e-5);
  int64_t rank = 0;
  for (float v : x) rank += v >= x[static_cast<size_t>(r.token)];
  EXPECT_EQ(r.rank, rank);
  std::vector<size_t> order(x.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return x[a] > x[b]; });
  ASSERT_EQ(r.top.size(), 5u);
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(r.top[i].token, static_cast<int32_t>(order[i]));
    EXPECT_NEAR(r.top[i].logprob, x[order[i]] - lse, 1e-5);
  }
  lo.mode = LogprobsMode::kRawLogits;
  const SampleResult r2 = sample(x, st, sc, &lo);
  EXPECT_EQ(r2.logprob, x[static_cast<size_t>(r2.token)]);
  EXPECT_EQ(r2.top[0].logprob, x[order[0]]);
}

TEST(Logprobs, ProcessedModes) {
  const std::vector<float> x = {1.0f, 3.0f, 2.0f, 0.5f, 2.5f, -1.0f};
  SamplingParams p;
  p.temperature = 0.5f;
  p.top_k = 3;
  p.seed = 8;
  SamplerState st(p, {}, 6);
  SamplerScratch sc;
  LogprobsOptions lo{6, LogprobsMode::kProcessedLogprobs};
  const SampleResult r = sample(x, st, sc, &lo);
  // Processed: x / 0.5 restricted to the top 3 (ids 1, 4, 2), then log_softmax.
  std::vector<float> y(6, kNegInf);
  for (int i : {1, 4, 2}) y[static_cast<size_t>(i)] = x[static_cast<size_t>(i)] / 0.5f;
  const std::vector<double> pr = ref_softmax(y);
  EXPECT_NEAR(r.logprob, std::log(pr[static_cast<size_t>(r.token)]), 1e-5);
  ASSERT_EQ(r.top.size(), 6u);
  const std::vector<int32_t> want_order = {1, 4, 2, 0, 3, 5};  // masked ones by id
  for (size_t i = 0; i < 6; ++i) {
    EXPECT_EQ(r.top[i].token, want_order[i]);
    if (i < 3) {
      EXPECT_NEAR(r.top[i].logprob, std::log(pr[static_cast<size_t>(want_order[i])]), 1e-5);
    } else {
      EXPECT_EQ(r.top[i].logprob, kNegInf);
    }
  }
  lo.mode = LogprobsMode::kProcessedLogits;
  const SampleResult r2 = sample(x, st, sc, &lo);
  EXPECT_EQ(r2.logprob, x[static_cast<size_t>(r2.token)] / 0.5f);

  // Greedy processed logprobs: log_softmax of the penalized logits (no temperature).
  SamplingParams g;
  g.temperature = 0.0f;
  g.presence_penalty = 0.5f;
  SamplerState gs(g, {}, 6);
  gs.accept(1);
  lo.mode = LogprobsMode::kProcessedLogprobs;
  lo.top_n = 1;
  const SampleResult r3 = sample(x, gs, sc, &lo);
  std::vector<float> z = x;
  z[1] -= 0.5f;  // 2.5 now ties token 4; the lower id wins
  EXPECT_EQ(r3.token, 1);
  EXPECT_NEAR(r3.logprob, std::log(ref_softmax(z)[1]), 1e-5);
  EXPECT_EQ(r3.rank, 2);  // ids 1 and 4 are >= 2.5
}

TEST(Logprobs, TopNTiesAndLargeN) {
  std::vector<TokenLogprob> out;
  top_n_values(std::vector<float>{1, 3, 3, 2, 3}, 4, 0.0, out);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[0].token, 1);
  EXPECT_EQ(out[1].token, 2);
  EXPECT_EQ(out[2].token, 4);
  EXPECT_EQ(out[3].token, 3);
  const std::vector<float> x = tied_logits(2000, 4);
  for (int n : {0, 20, 300}) {
    top_n_values(x, n, 1.0, out);
    ASSERT_EQ(out.size(), static_cast<size_t>(n));
    std::vector<int32_t> ids(x.size());
    std::iota(ids.begin(), ids.end(), 0);
    std::stable_sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) { return x[a] > x[b]; });
    for (int i = 0; i < n; ++i) {
      EXPECT_EQ(out[i].token, ids[i]);
      EXPECT_EQ(out[i].logprob, static_cast<float>(x[ids[i]] - 1.0));
    }
  }
}

TEST(Errors, InvalidParamsAndRows) {
  SamplingParams p;
  p.top_p = 0.0f;
  EXPECT_THROW(SamplerState(p, {}, 4), Error);
  p = {};
  p.presence_penalty = 2.5f;
  EXPECT_THROW(validate_sampling_params(p), Error);
  p = {};
  p.temperature = NAN;
  EXPECT_THROW(validate_sampling_params(p), Error);
  p = {};
  SamplerState st(p, {}, 4);
  SamplerScratch sc;
  EXPECT_THROW(sample(std::vector<float>(5, 0.0f), st, sc), Error);
  EXPECT_THROW(sample(std::vector<float>(4, kNegInf), st, sc), Error);
}

}  // namespace
}  // namespace fc
