// Speculative decoding inside the engine: greedy output with a drafter is token-identical to
// output without one, for 50 prompts served concurrently with k = 1..7, chunked prefill, prefix
// caching and a KV pool small enough to preempt; an exact-copy drafter is always accepted
// (mean acceptance length k + 1 on full-length drafts) and a different model much less;
// per-request switches work; every KV block is free afterwards.
#include <gtest/gtest.h>

#include "tests/common/engine_idle.h"
#include "tests/common/spec_serve.h"

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "engine/engine.h"
#include "io/safetensors.h"
#include "spec/draft_model.h"
#include "spec/eagle3.h"
#include "spec/mtp.h"

namespace fc {
namespace {

using test::idle_stats;

const std::string kFixtures = std::string(FC_SOURCE_DIR) + "/tests/fixtures/";

using test::collect;
using test::Factory;
using test::make_prompts;
using test::Output;
using test::serve;
using test::ServeRun;

TEST(SpecEngine, GreedyDraftModelIsExactForEveryK) {
  ThreadPool pool(2);
  cpu::CpuBackend be(pool);
  auto load = [&](const std::string& name) {
    const std::string dir = kFixtures + name;
    return std::make_unique<gemma4::Model>(gemma4::load_config(dir), Checkpoint::open_dir(dir), be);
  };
  auto target = load("mini-e2b");
  auto copy = load("mini-e2b");       // exact copy: every draft accepted
  auto other = load("kitchen-sink");  // a different model over the same vocabulary
  const auto prompts = make_prompts(50);
  // Reference without speculation; a pool of 200 tokens forces preemption with 16 running.
  const ServeRun ref = serve(*target, nullptr, be, 0, prompts, 200);
  EXPECT_GT(ref.stats.preemptions, 0);
  for (int k = 1; k <= 7; ++k) {
    for (gemma4::Model* d : {copy.get(), other.get()}) {
      const bool exact = d == copy.get();
      const ServeRun r = serve(*target, d, be, k, prompts, 200);
      for (size_t i = 0; i < prompts.size(); ++i) {
        EXPECT_EQ(r.out[i].tokens, ref.out[i].tokens)
            << "k " << k << (exact ? " copy" : " other") << " request " << i;
        EXPECT_EQ(r.out[i].reason, ref.out[i].reason);
      }
      EXPECT_EQ(r.stats.kv_blocks_free, r.stats.kv_blocks_total);
      EXPECT_EQ(r.stats.running, 0);
      ASSERT_GT(r.stats.spec_drafts, 0);
      const double accept = double(r.stats.spec_accepted_tokens) / r.stats.spec_draft_tokens;
      const double mal = 1.0 + double(r.stats.spec_accepted_tokens) / r.stats.spec_drafts;
      std::printf("k %d %-6s drafts %lld draft tokens %lld accepted %lld (%.3f) MAL %.3f\n", k,
                  exact ? "copy" : "other", static_cast<long long>(r.stats.spec_drafts),
                  static_cast<long long>(r.stats.spec_draft_tokens),
                  static_cast<long long>(r.stats.spec_accepted_tokens), accept, mal);
      if (exact) {
        EXPECT_EQ(r.stats.spec_accepted_tokens, r.stats.spec_draft_tokens) << "k " << k;
        // Drafts are shorter than k only when max_tokens is near: MAL close to k + 1.
        EXPECT_GT(mal, 1.0 + 0.6 * k) << "k " << k;
      } else {
        EXPECT_LT(accept, 0.5) << "k " << k;
      }
      // Fewer target steps than tokens when drafts are accepted.
      if (exact) {
        EXPECT_LT(r.stats.steps, ref.stats.steps);
      }
    }
  }
}

TEST(SpecEngine, GreedyEagle3IsExactForEveryK) {
  // With prefix caching as served (drafter_setup): the target recomputes the last block of a hit
  // and the head attaches its own cached KV for the rest, so requests with a hit draft too.
  ThreadPool pool(2);
  cpu::CpuBackend be(pool);
  const std::string dir = kFixtures + "mini-31b";
  gemma4::Model target(gemma4::load_config(dir), Checkpoint::open_dir(dir), be);
  const auto prompts = make_prompts(50);
  const ServeRun ref = serve(target, nullptr, be, 0, prompts, 200);
  int hit_requests = 0, hit_requests_with_drafts = 0;
  for (int k = 1; k <= 7; ++k) {
    spec::Eagle3Options o;
    o.max_seqs = 16;
    o.max_tokens = 4096;
    o.block_size = 4;
    o.prefix_caching = true;
    const ServeRun r = serve(
        target, nullptr, be, k, prompts, 200, {},
        [&, o](const kv::KVStorage&) {
          return std::unique_ptr<spec::Drafter>(
              new spec::Eagle3Drafter(kFixtures + "eagle3-mini", target, be, o));
        },
        /*prefix_caching_with_factory=*/true, /*drop_last_block=*/true);
    for (size_t i = 0; i < prompts.size(); ++i) {
      EXPECT_EQ(r.out[i].tokens, ref.out[i].tokens) << "eagle3 k " << k << " request " << i;
      if (r.out[i].cached > 0) {
        ++hit_requests;
        hit_requests_with_drafts += r.out[i].drafts > 0;
      }
    }
    EXPECT_EQ(r.stats.kv_blocks_free, r.stats.kv_blocks_total);
    ASSERT_GT(r.stats.spec_drafts, 0) << "k " << k;
    std::printf("eagle3 k %d drafts %lld draft tokens %lld accepted %lld\n", k,
                static_cast<long long>(r.stats.spec_drafts),
                static_cast<long long>(r.stats.spec_draft_tokens),
                static_cast<long long>(r.stats.spec_accepted_tokens));
  }
  std::printf("eagle3: %d requests with a prefix-cache hit, %d of them drafted\n", hit_requests,
              hit_requests_with_drafts);
  EXPECT_GT(hit_requests, 0);
  EXPECT_GT(hit_requests_with_drafts, 0);
}

TEST(SpecEngine, GreedyMtpIsExactForEveryK) {
  ThreadPool pool(2);
  cpu::CpuBackend be(pool);
  const std::string dir = kFixtures + "mini-e2b";
  gemma4::Model target(gemma4::load_config(dir), Checkpoint::open_dir(dir), be);
  const auto prompts = make_prompts(50);
  const ServeRun ref = serve(target, nullptr, be, 0, prompts, 200);
  for (const char* head : {"mtp-mini", "mtp-mini-centroids"}) {
    for (int k = 1; k <= 7; ++k) {
      const std::string hd = kFixtures + head;
      const ServeRun r = serve(
          target, nullptr, be, k, prompts, 200, {},
          [&, hd](const kv::KVStorage& kv) {
            return std::unique_ptr<spec::Drafter>(new spec::MtpDrafter(hd, target, kv, be));
          },
          /*prefix_caching_with_factory=*/true);
      for (size_t i = 0; i < prompts.size(); ++i)
        EXPECT_EQ(r.out[i].tokens, ref.out[i].tokens) << head << " k " << k << " request " << i;
      EXPECT_EQ(r.stats.kv_blocks_free, r.stats.kv_blocks_total);
      ASSERT_GT(r.stats.spec_drafts, 0) << head << " k " << k;
      std::printf("%s k %d drafts %lld draft tokens %lld accepted %lld\n", head, k,
                  static_cast<long long>(r.stats.spec_drafts),
                  static_cast<long long>(r.stats.spec_draft_tokens),
                  static_cast<long long>(r.stats.spec_accepted_tokens));
    }
  }
}

TEST(SpecEngine, PerRequestSwitch) {
  ThreadPool pool(2);
  cpu::CpuBackend be(pool);
  const std::string dir = kFixtures + "mini-e2b";
  gemma4::Model target(gemma4::load_config(dir), Checkpoint::open_dir(dir), be);
  gemma4::Model copy(gemma4::load_config(dir), Checkpoint::open_dir(dir), be);
  const auto prompts = make_prompts(6);
  // Requests 0-2: off, fixed k = 2, server default (k = 4); the rest default.
  const ServeRun r = serve(target, &copy, be, 4, prompts, 1024, {0, 2, -1});
  EXPECT_EQ(r.out[0].drafts, 0);
  EXPECT_GT(r.out[1].drafts, 0);
  EXPECT_LE(r.out[1].draft_tokens, 2 * r.out[1].drafts);
  EXPECT_GT(r.out[2].draft_tokens, 2 * r.out[2].drafts);
}

}  // namespace
}  // namespace fc
