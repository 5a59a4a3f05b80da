// Speculative decoding inside the engine: greedy output with a drafter is token-identical to
// output without one, for 50 prompts served concurrently with k = 1..7, chunked prefill, prefix
// caching and a KV pool small enough to preempt; an exact-copy drafter is always accepted
// (mean acceptance length k + 1 on full-length drafts) and a different model much less;
// per-request switches work; every KV block is free afterwards.
#include <gtest/gtest.h>

#include "tests/common/engine_idle.h"

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

struct Output {
  std::vector<int32_t> tokens;
  std::string reason;
  int drafts = 0, draft_tokens = 0, accepted = 0;
  int cached = 0;  // prompt tokens served from the prefix cache
};

Output collect(RequestStream& s) {
  Output o;
  for (;;) {
    auto ev = s.next(60000);
    if (!ev) {
      ADD_FAILURE() << "timeout";
      return o;
    }
    o.tokens.insert(o.tokens.end(), ev->tokens.begin(), ev->tokens.end());
    o.drafts = ev->spec_drafts;
    o.draft_tokens = ev->spec_draft_tokens;
    o.accepted = ev->spec_accepted_tokens;
    o.cached = std::max(o.cached, ev->num_cached_tokens);
    if (ev->finished) {
      o.reason = ev->finish_reason;
      return o;
    }
  }
}

std::vector<std::vector<int32_t>> make_prompts(int n) {
  std::mt19937 rng(5);
  std::vector<std::vector<int32_t>> p(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    // Shared prefixes for some (prefix cache hits), lengths 3..20.
    if (i % 5 == 4) p[static_cast<size_t>(i)] = p[static_cast<size_t>(i - 1)];
    const int len = 3 + static_cast<int>(rng() % 18);
    for (int t = 0; t < len; ++t)
      p[static_cast<size_t>(i)].push_back(3 + static_cast<int32_t>(rng() % 240));
  }
  return p;
}

struct ServeRun {
  std::vector<Output> out;
  EngineStats stats;
};

using Factory = std::function<std::unique_ptr<spec::Drafter>(const kv::KVStorage&)>;

ServeRun serve(gemma4::Model& target, gemma4::Model* draft, cpu::CpuBackend& be, int k,
               const std::vector<std::vector<int32_t>>& prompts, int kv_tokens,
               const std::vector<int>& per_request_k = {}, Factory factory = {},
               bool prefix_caching_with_factory = false, bool drop_last_block = false) {
  EngineConfig ec;
  ec.block_size = 4;
  ec.kv_tokens = kv_tokens;
  ec.scheduler.max_num_seqs = 16;
  ec.scheduler.max_num_batched_tokens = 32;
  ec.scheduler.max_model_len = 64;
  if (factory) {
    ec.spec_policy.k_max = k;
    ec.spec_policy.adaptive = false;
    ec.make_drafter = factory;
    ec.scheduler.enable_prefix_caching = prefix_caching_with_factory;
    // EAGLE-3 (drafter_setup): the target recomputes the last block of a hit.
    ec.scheduler.prefix_cache_drop_last_block = drop_last_block;
  }
  if (draft) {
    spec::DraftModelOptions o;
    o.max_seqs = 16;
    o.kv_tokens = 4096;
    o.max_step_tokens = 64;
    o.k_max = k;
    ec.spec_policy.k_max = k;
    ec.spec_policy.adaptive = false;
    ec.make_drafter = [&target, draft, &be, o](const kv::KVStorage&) {
      return std::unique_ptr<spec::Drafter>(new spec::DraftModelDrafter(*draft, target, be, o));
    };
  }
  Engine engine(target, be, ec);
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (size_t i = 0; i < prompts.size(); ++i) {
    EngineRequest r;
    r.prompt = prompts[i];
    r.sampling.temperature = 0;
    r.max_tokens = 5 + static_cast<int>(i % 19);  // ends mid-draft for many k
    if (i < per_request_k.size()) r.num_speculative_tokens = per_request_k[i];
    streams.push_back(engine.submit(r));
  }
  ServeRun run;
  for (auto& s : streams) run.out.push_back(collect(*s));
  run.stats = idle_stats(engine);
  return run;
}

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
