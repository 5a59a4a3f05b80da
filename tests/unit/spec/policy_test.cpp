// The adaptive speculation policy: long drafts when verification is nearly free and acceptance
// is high, none when the batch is large or acceptance collapses (with periodic probes), request
// overrides, and the online step-time fit.
#include <gtest/gtest.h>

#include "spec/policy.h"

namespace fc::spec {
namespace {

TEST(SpecPolicy, ExpectedTokens) {
  EXPECT_DOUBLE_EQ(SpecPolicy::expected_tokens(0.0, 5), 1.0);
  EXPECT_DOUBLE_EQ(SpecPolicy::expected_tokens(1.0, 5), 6.0);
  EXPECT_NEAR(SpecPolicy::expected_tokens(0.5, 2), 1.75, 1e-12);
}

TEST(SpecPolicy, BatchSizeAndAcceptanceDriveK) {
  PolicyConfig c;
  c.k_max = 6;
  SpecPolicy p(c);
  // Memory-bound steps: 10 ms fixed, 0.1 ms per token.
  for (int n : {1, 2, 4, 8, 16, 32, 64})
    for (int i = 0; i < 4; ++i) p.record_step(n, 0.010 + 0.0001 * n);
  EXPECT_NEAR(p.fixed_cost(), 0.010, 1e-6);
  EXPECT_NEAR(p.per_token_cost(), 0.0001, 1e-8);
  for (int i = 0; i < 20; ++i) p.record(1, 4, 4);  // always accepted: drafts always pay
  EXPECT_EQ(p.choose_k(1, 1, -1), 6);
  EXPECT_EQ(p.choose_k(1, 200, -1), 6);
  for (int i = 0; i < 20; ++i) p.record(1, 4, 2);  // two of three drafts accepted
  EXPECT_NEAR(p.acceptance(1), 2.0 / 3.0, 1e-3);
  const int k_alone = p.choose_k(1, 1, -1);
  EXPECT_EQ(k_alone, 6);
  // A large batch makes verification tokens cost real compute: fewer drafts.
  const int k_crowd = p.choose_k(1, 200, -1);
  EXPECT_LT(k_crowd, k_alone);
  // Acceptance collapses: no drafts, but a probe with k = 1 every probe_every steps.
  for (int i = 0; i < 30; ++i) p.record(2, 4, 0);
  int zeros = 0, probes = 0;
  for (int i = 0; i < 16; ++i) {
    const int k = p.choose_k(2, 4, -1);
    zeros += k == 0;
    probes += k == 1;
  }
  EXPECT_EQ(probes, 16 / c.probe_every);
  EXPECT_EQ(zeros, 16 - probes);
  // Overrides: 0 off, k fixed (capped at k_max).
  EXPECT_EQ(p.choose_k(2, 1, 0), 0);
  EXPECT_EQ(p.choose_k(2, 1, 3), 3);
  EXPECT_EQ(p.choose_k(2, 1, 99), 6);
}

TEST(SpecPolicy, ComputeBoundStepsTurnSpeculationOff) {
  PolicyConfig c;
  c.k_max = 4;
  SpecPolicy p(c);
  // Every token costs as much as the fixed part (a CPU at batch > 1): drafts at 70% acceptance
  // do not pay once a few requests share the step.
  for (int n : {1, 4, 16})
    for (int i = 0; i < 4; ++i) p.record_step(n, 0.001 * (1 + n));
  for (int i = 0; i < 10; ++i) p.record(7, 4, 2);
  EXPECT_EQ(p.choose_k(7, 16, -1), 0);
}

TEST(SpecPolicy, FixedModeAlwaysDraftsKMax) {
  PolicyConfig c;
  c.k_max = 3;
  c.adaptive = false;
  SpecPolicy p(c);
  for (int i = 0; i < 10; ++i) p.record(1, 3, 0);
  EXPECT_EQ(p.choose_k(1, 100, -1), 3);
}

}  // namespace
}  // namespace fc::spec
