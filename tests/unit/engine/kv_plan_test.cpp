// KV budgeting as vLLM does it (engine/kv_plan.h): one max_model_len request must fit, the
// concurrency is the budget over that request, --max-num-seqs reserves nothing. Numbers by hand.
#include <gtest/gtest.h>

#include <string>

#include "core/error.h"
#include "engine/kv_plan.h"

namespace fc {
namespace {

// The 31B geometry in BF16: 50 sliding layers with 16 KV heads x 256 and 10 full layers with
// 4 KV heads x 512, K and V: 819,200 and 81,920 bytes per token.
KvPlanRequest geometry_31b() {
  KvPlanRequest r;
  r.groups = {{50 * 16 * 256 * 2 * 2, 1024}, {10 * 4 * 512 * 2 * 2, 0}};
  r.budget_bytes = int64_t{4} << 30;
  r.budget_flag = "--cpu-kv-cache-gb 4";
  r.max_model_len = 4096;
  r.block_size = 16;
  r.step_tokens = 2048;
  r.max_num_seqs = 8;
  return r;
}

std::string error_of(const KvPlanRequest& r) {
  try {
    plan_kv_cache(r);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(KvPlan, OneRequestAsVllmCountsIt) {
  const KvPlanRequest r = geometry_31b();
  // full: cdiv(4096, 16) = 256 blocks; sliding: cdiv(min(1023 + 2048, 4096), 16) + 1 = 193.
  EXPECT_EQ(kv_bytes_per_request(r), 256 * 16 * 81920LL + 193 * 16 * 819200LL);
  KvPlanRequest short_len = r;
  short_len.max_model_len = 100;  // the window is capped by the request length
  EXPECT_EQ(kv_bytes_per_request(short_len), 7 * 16 * 81920LL + 8 * 16 * 819200LL);
}

TEST(KvPlan, MaxNumSeqsIsACapNotAReservation) {
  // The old rule reserved a window for each of the 8 sequences: 8 * 1056 + 2048 sliding tokens
  // = 8.2 GB > 4 GiB, so the 31B could not start. One request needs 2.74 GB.
  KvPlanRequest r = geometry_31b();
  const KvPlan p = plan_kv_cache(r);
  const double per_request = 256 * 16 * 81920.0 + 193 * 16 * 819200.0;
  EXPECT_DOUBLE_EQ(p.max_concurrency, (4.0 * (1 << 30)) / per_request);
  EXPECT_GT(p.max_concurrency, 1.0);
  // The sliding pool holds floor(concurrency x 193) blocks, the full pool the rest.
  const int64_t sliding_blocks = static_cast<int64_t>(p.max_concurrency * 193);
  EXPECT_EQ(p.sliding_tokens, sliding_blocks * 16);
  EXPECT_EQ(p.full_tokens,
            ((int64_t{4} << 30) - sliding_blocks * 16 * 819200LL) / (16 * 81920) * 16);
  EXPECT_GE(p.full_tokens, 4096);
  EXPECT_GE(p.sliding_tokens, 193 * 16);
  // Raising --max-num-seqs changes nothing at start-up.
  r.max_num_seqs = 256;
  EXPECT_EQ(plan_kv_cache(r).full_tokens, p.full_tokens);
  const std::string line = describe_kv_plan(r, p);
  EXPECT_NE(line.find("Maximum concurrency for 4,096 tokens per request: 1.5"), std::string::npos)
      << line;
}

TEST(KvPlan, SlidingPoolCappedAtWhatMaxNumSeqsCanUse) {
  KvPlanRequest r = geometry_31b();
  r.budget_bytes = int64_t{64} << 30;
  r.max_num_seqs = 2;
  const KvPlan p = plan_kv_cache(r);
  // 2 sequences x (cdiv(1023, 16) + 2 = 66 blocks) + cdiv(2048, 16) + 2 = 262 blocks.
  EXPECT_EQ(p.sliding_tokens, 262 * 16);
  EXPECT_EQ(p.full_tokens, ((int64_t{64} << 30) - 262 * 16 * 819200LL) / (16 * 81920) * 16);
}

TEST(KvPlan, TooSmallSaysWhatOneRequestNeeds) {
  KvPlanRequest r = geometry_31b();
  r.budget_bytes = int64_t{1} << 30;
  r.budget_flag = "--cpu-kv-cache-gb 1";
  const std::string e = error_of(r);
  EXPECT_NE(e.find("one request of --max-model-len 4096 needs 2.67 GiB"), std::string::npos) << e;
  EXPECT_NE(e.find("--cpu-kv-cache-gb 1 gives (1.00 GiB)"), std::string::npos) << e;
  const int fits = largest_fitting_max_model_len(r, 4096);
  EXPECT_NE(e.find("the largest --max-model-len that fits is " + std::to_string(fits)),
            std::string::npos)
      << e;
  // The fit is exact: one more token no longer fits.
  KvPlanRequest at = r;
  at.max_model_len = fits;
  EXPECT_LE(kv_bytes_per_request(at), r.budget_bytes);
  at.max_model_len = fits + 1;
  EXPECT_GT(kv_bytes_per_request(at), r.budget_bytes);
}

TEST(KvPlan, ZeroBudgetIsAboutTheBudget) {
  KvPlanRequest r = geometry_31b();
  r.budget_bytes = 0;
  r.budget_flag = "--cpu-kv-cache-gb 0";
  const std::string e = error_of(r);
  EXPECT_NE(e.find("--cpu-kv-cache-gb 0 leaves no memory for the KV cache"), std::string::npos)
      << e;
  EXPECT_EQ(e.find("max-model-len"), std::string::npos) << e;
}

TEST(KvPlan, SpeculativeRollbackWidensTheWindow) {
  KvPlanRequest r = geometry_31b();
  r.max_rollback = 7;  // k = 5 drafts + 2
  // sliding: cdiv(1023 + 7 + 2048, 16) + 1 = 194 blocks.
  EXPECT_EQ(kv_bytes_per_request(r), 256 * 16 * 81920LL + 194 * 16 * 819200LL);
}

TEST(KvPlan, OnlyOneKindOfLayer) {
  KvPlanRequest r;
  r.groups = {{1000, 0}};
  r.budget_bytes = 1'000'000;
  r.max_model_len = 160;
  const KvPlan p = plan_kv_cache(r);
  EXPECT_EQ(p.sliding_tokens, 0);
  EXPECT_EQ(p.full_tokens, 1'000'000 / (16 * 1000) * 16);
  EXPECT_DOUBLE_EQ(p.max_concurrency, 1'000'000.0 / (10 * 16 * 1000));
}

}  // namespace
}  // namespace fc
