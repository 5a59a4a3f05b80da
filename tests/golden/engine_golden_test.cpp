// The engine (scheduler + continuous batching + sampling thread) against the reference greedy
// tokens: many concurrent requests, a tiny token budget that forces chunked prefill mixed with
// decode, and a KV pool small enough to force preemption and recompute.
#include <gtest/gtest.h>

#include <cmath>

#include "tests/common/engine_idle.h"

#include "tests/common/golden_io.h"

#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "core/error.h"
#include "engine/engine.h"
#include "io/safetensors.h"

namespace fc {
namespace {

using test::idle_stats;

using test::read_f32;
using test::read_ids;

const std::string kFixtures = std::string(FC_SOURCE_DIR) + "/tests/fixtures/";

std::vector<int32_t> collect(RequestStream& s, std::string* reason = nullptr) {
  std::vector<int32_t> out;
  for (;;) {
    auto ev = s.next(30000);
    if (!ev) ADD_FAILURE() << "timeout";
    if (!ev) return out;
    out.insert(out.end(), ev->tokens.begin(), ev->tokens.end());
    if (ev->finished) {
      if (reason) *reason = ev->finish_reason;
      return out;
    }
  }
}

struct Case {
  const char* model;
  int budget;     // max_num_batched_tokens
  int kv_tokens;  // full-group KV capacity
  bool prefix_caching;
};

class EngineGolden : public ::testing::TestWithParam<Case> {};

TEST_P(EngineGolden, ConcurrentRequestsReproduceReferenceTokens) {
  const Case c = GetParam();
  const std::string dir = kFixtures + c.model;
  ThreadPool pool(2);
  cpu::CpuBackend be(pool);
  gemma4::Model model(gemma4::load_config(dir), Checkpoint::open_dir(dir), be);
  auto golden = SafetensorsFile::open(dir + "/golden.safetensors");
  std::vector<std::vector<int32_t>> prompts, want;
  for (int i = 0; i < 2; ++i) {
    prompts.push_back(read_ids(*golden, "p" + std::to_string(i) + ".ids"));
    want.push_back(read_ids(*golden, "p" + std::to_string(i) + ".greedy"));
  }
  EngineConfig ec;
  ec.block_size = 4;
  ec.kv_tokens = c.kv_tokens;
  ec.scheduler.max_num_seqs = 4;
  ec.scheduler.max_num_batched_tokens = c.budget;
  ec.scheduler.max_model_len = 64;
  ec.scheduler.enable_prefix_caching = c.prefix_caching;
  Engine engine(model, be, ec);
  // Eight requests (each prompt four times), submitted from two threads.
  std::vector<std::shared_ptr<RequestStream>> streams(8);
  auto submit = [&](int first) {
    for (int i = first; i < 8; i += 2) {
      EngineRequest r;
      r.prompt = prompts[static_cast<size_t>(i % 2)];
      r.sampling.temperature = 0;
      r.max_tokens = 16;
      streams[static_cast<size_t>(i)] = engine.submit(r);
    }
  };
  std::thread t0(submit, 0), t1(submit, 1);
  t0.join();
  t1.join();
  for (int i = 0; i < 8; ++i) {
    std::string reason;
    EXPECT_EQ(collect(*streams[static_cast<size_t>(i)], &reason), want[static_cast<size_t>(i % 2)])
        << c.model << " request " << i;
    EXPECT_EQ(reason, "length");
  }
  const EngineStats st = idle_stats(engine);
  EXPECT_EQ(st.running, 0);
  EXPECT_EQ(st.kv_blocks_free, st.kv_blocks_total);
  if (c.kv_tokens < 64) {
    EXPECT_GT(st.preemptions, 0) << "the small pool should force preemption";
  }
}

TEST(EngineGoldenPromptLogprobs, MatchReferenceLogSoftmaxAndBypassThePrefixCache) {
  // Prompt logprobs (completions echo + logprobs) over chunked prefill (budget 5 of a 13-token
  // prompt) against log_softmax of transformers' logits at each prompt position; the same prompt
  // again, after its blocks were cached, is computed whole (no hit) and reports them again.
  const std::string dir = kFixtures + "mini-31b";
  ThreadPool pool(2);
  cpu::CpuBackend be(pool);
  gemma4::Model model(gemma4::load_config(dir), Checkpoint::open_dir(dir), be);
  auto golden = SafetensorsFile::open(dir + "/golden.safetensors");
  const std::vector<int32_t> ids = read_ids(*golden, "p0.ids");
  const std::vector<int32_t> greedy = read_ids(*golden, "p0.greedy");
  const std::vector<float> ref = read_f32(*golden, "p0.logits");  // [13, V]
  const int V = model.config().vocab_size;
  EngineConfig ec;
  ec.block_size = 4;
  ec.kv_tokens = 256;
  ec.scheduler.max_num_batched_tokens = 5;
  ec.scheduler.max_model_len = 64;
  Engine engine(model, be, ec);
  for (int round = 0; round < 3; ++round) {
    EngineRequest r;
    r.prompt = ids;
    r.sampling.temperature = 0;
    r.max_tokens = round == 0 ? 0 : 3;  // 0: the prompt only
    r.prompt_logprobs = 2;
    if (round == 2) r.prompt_logprobs = -1;  // a plain request now hits the cached blocks
    auto stream = engine.submit(r);
    std::vector<SampleResult> lps;
    std::vector<int32_t> tokens;
    RequestEvent last;
    for (;;) {
      auto ev = stream->next(30000);
      ASSERT_TRUE(ev) << "timeout";
      lps.insert(lps.end(), ev->prompt_logprobs.begin(), ev->prompt_logprobs.end());
      tokens.insert(tokens.end(), ev->tokens.begin(), ev->tokens.end());
      if (ev->finished) {
        last = *ev;
        break;
      }
    }
    EXPECT_EQ(last.finish_reason, "length") << round;
    if (round == 2) {
      EXPECT_TRUE(lps.empty());
      EXPECT_GT(last.num_cached_tokens, 0);
      EXPECT_EQ(tokens, std::vector<int32_t>(greedy.begin(), greedy.begin() + 3));
      continue;
    }
    EXPECT_EQ(last.num_cached_tokens, 0) << round;
    EXPECT_EQ(tokens, std::vector<int32_t>(greedy.begin(), greedy.begin() + r.max_tokens));
    ASSERT_EQ(lps.size(), ids.size() - 1) << round;
    for (size_t p = 1; p < ids.size(); ++p) {
      const float* row = ref.data() + (p - 1) * static_cast<size_t>(V);
      double mx = row[0], z = 0;
      int best = 0;
      for (int v = 0; v < V; ++v)
        if (row[v] > mx) mx = row[v], best = v;
      for (int v = 0; v < V; ++v) z += std::exp(row[v] - mx);
      const double want = row[ids[p]] - mx - std::log(z);
      const SampleResult& got = lps[p - 1];
      EXPECT_EQ(got.token, ids[p]) << p;
      EXPECT_NEAR(got.logprob, want, 1e-3) << "round " << round << " position " << p;
      ASSERT_EQ(got.top.size(), 2u);
      EXPECT_EQ(got.top[0].token, best) << p;
      EXPECT_GE(got.rank, 1);
    }
  }
  const EngineStats st = idle_stats(engine);
  EXPECT_EQ(st.kv_blocks_free, st.kv_blocks_total);
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, EngineGolden,
    ::testing::Values(Case{"kitchen-sink", 5, 256, true}, Case{"mini-31b", 3, 256, false},
                      Case{"mini-e2b", 7, 256, true}, Case{"mini-26b", 5, 256, true},
                      Case{"mini-31b", 8, 48, true}),
    [](const auto& info) {
      std::string n = std::string(info.param.model) + "_" + std::to_string(info.index);
      for (char& ch : n)
        if (ch == '-') ch = '_';
      return n;
    });

TEST(Engine, RejectsRequestsThatCannotFit) {
  const std::string dir = kFixtures + "mini-31b";
  ThreadPool pool(1);
  cpu::CpuBackend be(pool);
  gemma4::Model model(gemma4::load_config(dir), Checkpoint::open_dir(dir), be);
  EngineConfig ec;
  ec.scheduler.max_model_len = 32;
  Engine engine(model, be, ec);
  EngineRequest r;
  r.prompt = std::vector<int32_t>(30, 5);
  r.max_tokens = 3;
  try {
    engine.submit(r);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("maximum context length is 32"), std::string::npos);
  }
  r.prompt = {5, 999};
  EXPECT_THROW(engine.submit(r), Error);
  r.prompt = {5, 6};
  r.sampling.temperature = -1;
  EXPECT_THROW(engine.submit(r), Error);
}

TEST(Engine, AbortFreesBlocks) {
  const std::string dir = kFixtures + "mini-31b";
  ThreadPool pool(1);
  cpu::CpuBackend be(pool);
  gemma4::Model model(gemma4::load_config(dir), Checkpoint::open_dir(dir), be);
  EngineConfig ec;
  ec.block_size = 4;
  ec.kv_tokens = 256;
  ec.scheduler.max_model_len = 256;
  Engine engine(model, be, ec);
  EngineRequest r;
  r.prompt = {5, 6, 7, 8, 9};
  r.max_tokens = 200;
  auto s = engine.submit(r);
  auto first = s->next(30000);
  ASSERT_TRUE(first.has_value());
  engine.abort(s->id());
  std::string reason;
  collect(*s, &reason);
  EXPECT_EQ(reason, "abort");
  const EngineStats st = idle_stats(engine);
  EXPECT_EQ(st.kv_blocks_free, st.kv_blocks_total);
}

}  // namespace
}  // namespace fc
