// The engine with images (mm-31b: bidirectional blocks, mm-e2b: causal) against transformers'
// greedy tokens: concurrent requests with one or two images, token budgets that force chunked
// prefill (on mm-31b never inside an image block), a KV pool that forces preemption and
// recompute, and the same image twice hitting the encoder cache and the prefix cache.
#include <gtest/gtest.h>

#include "tests/common/golden_io.h"
#include "tests/common/mm_fixture.h"
#include "tests/common/stream_tokens.h"

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "core/error.h"
#include "engine/engine.h"
#include "io/safetensors.h"
#include "model/gemma4/vision.h"

namespace fc {
namespace {

const std::string kFixtures = std::string(FC_SOURCE_DIR) + "/tests/fixtures/";

using test::fixture_image;

using test::stream_tokens;

struct Case {
  const char* model;
  int budget, kv_tokens;
};

class MmEngine : public ::testing::TestWithParam<Case> {};

TEST_P(MmEngine, ConcurrentImageRequestsReproduceReferenceTokens) {
  const Case c = GetParam();
  const std::string dir = kFixtures + c.model;
  ThreadPool pool(2);
  cpu::CpuBackend be(pool);
  const gemma4::Config cfg = gemma4::load_config(dir);
  std::shared_ptr<const Checkpoint> ckpt = Checkpoint::open_dir(dir);
  gemma4::Model model(cfg, ckpt, be);
  gemma4::VisionTower tower(cfg, *ckpt, be);
  auto g = SafetensorsFile::open(dir + "/golden.safetensors");
  std::vector<std::shared_ptr<gemma4::MediaInput>> imgs;
  for (int i = 0; i < 3; ++i) imgs.push_back(fixture_image(*g, i));
  const bool bidi = cfg.use_bidirectional_attention == "vision";
  EngineConfig ec;
  ec.block_size = 4;
  ec.kv_tokens = c.kv_tokens;
  ec.scheduler.max_num_seqs = 4;
  ec.scheduler.max_num_batched_tokens = c.budget;
  // vLLM's encoder budget: at least the largest item (64 soft tokens here).
  ec.scheduler.encoder_compute_budget = std::max(c.budget, 64);
  ec.scheduler.max_model_len = 160;
  ec.encoders = {&tower};
  Engine engine(model, be, ec);
  struct Req {
    std::string prompt;
    std::shared_ptr<RequestStream> stream;
  };
  std::vector<Req> reqs;
  for (int rep = 0; rep < 2; ++rep)
    for (const char* p : {"one", "two", "between", "chat"}) {
      EngineRequest r;
      r.prompt = test::read_ids(*g, std::string(p) + ".ids");
      r.max_tokens = 4;
      r.sampling.temperature = 0;
      const std::vector<int32_t> which = test::read_ids(*g, std::string(p) + ".images");
      size_t k = 0;
      for (int t = 0; t < static_cast<int>(r.prompt.size()); ++t)
        if (r.prompt[t] == cfg.mm.image_token_id && (t == 0 || r.prompt[t - 1] != r.prompt[t])) {
          EngineMedia m;
          m.input = imgs[static_cast<size_t>(which[k++])];
          m.key = 1000 + static_cast<uint64_t>(which[k - 1]);
          m.offset = t;
          m.bidirectional = bidi;
          r.media.push_back(m);
        }
      reqs.push_back({p, engine.submit(std::move(r))});
    }
  for (Req& r : reqs)
    EXPECT_EQ(stream_tokens(*r.stream), test::read_ids(*g, r.prompt + ".greedy"))
        << c.model << " budget " << c.budget << " " << r.prompt;
  const EngineStats st = engine.stats();
  EXPECT_LE(st.mm_items_encoded, st.encoder_cache_queries);
  EXPECT_GT(st.encoder_cache_hits, 0);  // the repeated prompts find the images cached
  std::printf(
      "%s budget %d: %lld encodes, encoder cache %lld/%lld hits, prefix %lld/%lld tokens, "
      "%lld preemptions\n",
      c.model, c.budget, static_cast<long long>(st.mm_items_encoded),
      static_cast<long long>(st.encoder_cache_hits),
      static_cast<long long>(st.encoder_cache_queries),
      static_cast<long long>(st.prefix_hit_tokens), static_cast<long long>(st.prefix_query_tokens),
      static_cast<long long>(st.preemptions));
}

TEST_P(MmEngine, SecondIdenticalRequestHitsBothCaches) {
  const Case c = GetParam();
  const std::string dir = kFixtures + c.model;
  ThreadPool pool(2);
  cpu::CpuBackend be(pool);
  const gemma4::Config cfg = gemma4::load_config(dir);
  std::shared_ptr<const Checkpoint> ckpt = Checkpoint::open_dir(dir);
  gemma4::Model model(cfg, ckpt, be);
  gemma4::VisionTower tower(cfg, *ckpt, be);
  auto g = SafetensorsFile::open(dir + "/golden.safetensors");
  EngineConfig ec;
  ec.block_size = 4;
  ec.kv_tokens = 1024;
  ec.scheduler.max_num_batched_tokens = 256;
  ec.scheduler.max_model_len = 160;
  ec.encoders = {&tower};
  Engine engine(model, be, ec);
  auto make = [&](uint64_t key) {
    EngineRequest r;
    r.prompt = test::read_ids(*g, "between.ids");
    r.max_tokens = 4;
    r.sampling.temperature = 0;
    int t = 0;
    while (r.prompt[t] != cfg.mm.image_token_id) ++t;
    EngineMedia m;
    m.input = fixture_image(*g, 1);
    m.key = key;
    m.offset = t;
    m.bidirectional = cfg.use_bidirectional_attention == "vision";
    r.media.push_back(m);
    return r;
  };
  const std::vector<int32_t> want = test::read_ids(*g, "between.greedy");
  RequestEvent ev;
  EXPECT_EQ(stream_tokens(*engine.submit(make(77)), &ev), want);
  EXPECT_EQ(ev.num_cached_tokens, 0);
  EXPECT_EQ(stream_tokens(*engine.submit(make(77)), &ev), want);
  EXPECT_GT(ev.num_cached_tokens, 64);  // the prefix cache served the image block
  const EngineStats st = engine.stats();
  EXPECT_EQ(st.mm_items_encoded, 1);
  // Same tokens, another image identity: no prefix sharing past the text before the image.
  const std::vector<int32_t> other = stream_tokens(*engine.submit(make(78)), &ev);
  EXPECT_LE(ev.num_cached_tokens, 8);
  EXPECT_EQ(engine.stats().mm_items_encoded, 2);
  EXPECT_EQ(other, want);  // the same pixels, so the same tokens
}

TEST(MmEngineErrors, MediaWithoutAnEncoderOrOnTextTokensIsRefused) {
  const std::string dir = kFixtures + "mm-31b";
  ThreadPool pool(1);
  cpu::CpuBackend be(pool);
  const gemma4::Config cfg = gemma4::load_config(dir);
  std::shared_ptr<const Checkpoint> ckpt = Checkpoint::open_dir(dir);
  gemma4::Model model(cfg, ckpt, be);
  auto g = SafetensorsFile::open(dir + "/golden.safetensors");
  EngineConfig ec;
  ec.block_size = 4;
  ec.scheduler.max_model_len = 160;
  Engine no_tower(model, be, ec);
  EngineRequest r;
  r.prompt = test::read_ids(*g, "one.ids");
  EngineMedia m;
  m.input = fixture_image(*g, 0);
  m.key = 5;
  m.offset = 2;
  r.media.push_back(m);
  EXPECT_THROW(no_tower.submit(r), Error);
  gemma4::VisionTower tower(cfg, *ckpt, be);
  ec.encoders = {&tower};
  Engine engine(model, be, ec);
  r.media[0].offset = 0;  // position 0 is <bos>, not a placeholder
  EXPECT_THROW(engine.submit(r), Error);
}

INSTANTIATE_TEST_SUITE_P(Cases, MmEngine,
                         ::testing::Values(Case{"mm-31b", 256, 2048}, Case{"mm-31b", 70, 2048},
                                           Case{"mm-31b", 70, 300}, Case{"mm-e2b", 256, 2048},
                                           Case{"mm-e2b", 20, 2048}, Case{"mm-e2b", 20, 300}));

}  // namespace
}  // namespace fc
