// Prompts with images through the text model against transformers' Gemma4ForConditionalGeneration
// (fp32, eager; tools/refgen/make_vision_fixtures.py) on mm-31b (bidirectional image blocks on
// sliding layers, W = 8, blocks of 54..64 tokens) and mm-e2b (causal, PLE): the merged input
// embeddings (soft tokens unscaled, placeholder ids as pad), logits at every position, 4 greedy
// decode steps on the KV cache, chunked prefill (text | image | text on mm-31b; chunks that cut
// images on mm-e2b) equal to one-shot, and the attention rule equal to HF's dense masks.
// Prompts: one image, two images, image between text, an image inside a multi-turn chat, and a
// stray placeholder id with no image.
//
// Tolerances as golden_test.cpp: logits 1e-3 · max |logit|, embeddings 1e-4 · max(1, max |e|)
// (tests/common/mm_golden.h).
#include <gtest/gtest.h>

#include "tests/common/golden_io.h"
#include "tests/common/mm_golden.h"

#include <algorithm>
#include <cmath>
#include <memory>

#include "backend/cpu/cpu_backend.h"
#include "core/thread_pool.h"
#include "io/safetensors.h"
#include "model/gemma4/model.h"
#include "model/gemma4/vision.h"
#include "spec/session.h"

namespace fc {
namespace {

const std::string kFixtures = std::string(FC_SOURCE_DIR) + "/tests/fixtures/";
const char* kPrompts[] = {"one", "two", "between", "chat", "stray"};

struct MmFixture {
  std::string name;
  ThreadPool pool{2};
  cpu::CpuBackend be{pool};
  std::shared_ptr<const Checkpoint> ckpt;
  std::unique_ptr<gemma4::Model> model;
  std::unique_ptr<gemma4::VisionTower> tower;
  std::unique_ptr<SafetensorsFile> golden;
  std::vector<std::vector<float>> image_embeds;  // [3][N_i, H]
  int64_t H = 0, V = 0;

  explicit MmFixture(const std::string& n) : name(n) {
    const std::string dir = kFixtures + n;
    ckpt = Checkpoint::open_dir(dir);
    const gemma4::Config cfg = gemma4::load_config(dir);
    model = std::make_unique<gemma4::Model>(cfg, ckpt, be);
    tower = std::make_unique<gemma4::VisionTower>(cfg, *ckpt, be);
    golden = SafetensorsFile::open(dir + "/golden.safetensors");
    H = cfg.hidden_size;
    V = cfg.vocab_size;
    for (int i = 0; i < 3; ++i) {
      // The reference soft tokens (img{i}.embed) are what the model receives; the tower itself
      // is tested in vision_golden_test.
      image_embeds.push_back(test::read_f32(*golden, "img" + std::to_string(i) + ".embed"));
    }
  }
  SessionOptions opts() const {
    SessionOptions o;
    o.block_size = 4;
    o.max_tokens = 512;
    o.max_seqs = 2;
    o.max_step_tokens = 256;
    return o;
  }
};

struct MmPrompt {
  std::vector<int32_t> ids;
  std::vector<test::SoftRun> runs;  // each image's soft tokens (an image block on "vision")
};

MmPrompt load_prompt(const MmFixture& fx, const std::string& p) {
  MmPrompt m;
  m.ids = test::read_ids(*fx.golden, p + ".ids");
  const std::vector<int32_t> images = test::read_ids(*fx.golden, p + ".images");
  if (images.empty()) return m;  // the stray placeholder carries no image
  const auto runs = test::placeholder_runs(m.ids, fx.model->config().mm.image_token_id);
  EXPECT_EQ(runs.size(), images.size()) << p;
  for (size_t r = 0; r < runs.size() && r < images.size(); ++r)
    m.runs.push_back({runs[r].first, runs[r].second,
                      fx.image_embeds[static_cast<size_t>(images[r])].data(), true});
  return m;
}

class MmGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(MmGolden, MergedEmbeddingsLogitsAndGreedy) {
  MmFixture fx(GetParam());
  for (const char* p : kPrompts) {
    const MmPrompt m = load_prompt(fx, p);
    const std::vector<float> want_logits = test::read_f32(*fx.golden, std::string(p) + ".logits");
    const std::vector<float> want_merged = test::read_f32(*fx.golden, std::string(p) + ".merged");
    Session s(*fx.model, fx.be, fx.opts());
    const std::string what = fx.name + " " + p;
    const std::vector<float> row =
        test::expect_prefill_matches(s, m.ids, m.runs, want_merged, want_logits, fx.H, fx.V, what);
    // Greedy decode on the cache (decode tokens are text: causal).
    const std::vector<int32_t> greedy = test::read_ids(*fx.golden, std::string(p) + ".greedy");
    const std::vector<float> gl = test::read_f32(*fx.golden, std::string(p) + ".greedy_logits");
    test::expect_greedy(s, row, greedy, &gl, fx.V, what);
  }
}

// Also through a model in the padded bucket layout (what CUDA graphs replay): chunks of at most
// 8 tokens are padded unless they carry soft tokens or an image block, which run eagerly.
TEST_P(MmGolden, ChunkedPrefillEqualsOneShot) {
  MmFixture fx(GetParam());
  const bool bidi = fx.model->config().use_bidirectional_attention == "vision";
  gemma4::ModelOptions po;
  po.pad_batches = true;
  gemma4::Model padded(fx.model->config(), fx.ckpt, fx.be, po);
  for (gemma4::Model* model : {fx.model.get(), &padded}) {
    int64_t want_padded = 0, media_small = 0;
    for (const char* p : {"between", "two", "chat"}) {
      const MmPrompt m = load_prompt(fx, p);
      const int T = static_cast<int>(m.ids.size());
      const std::vector<float> want = test::read_f32(*fx.golden, std::string(p) + ".logits");
      // Chunk ends: on the bidirectional layout at every run boundary (text | image | text) and
      // every 7 tokens of text, never inside a run; on the causal one every 7 tokens, cutting
      // images.
      std::vector<int> cuts;
      if (bidi) {
        int at = 0;
        for (const test::SoftRun& r : m.runs) {
          for (int c = at + 7; c < r.begin; c += 7) cuts.push_back(c);
          cuts.insert(cuts.end(), {r.begin, r.end});
          at = r.end;
        }
        for (int c = at + 7; c < T; c += 7) cuts.push_back(c);
      } else {
        for (int c = 7; c < T; c += 7) cuts.push_back(c);
      }
      cuts.push_back(T);
      Session s(*model, fx.be, fx.opts());
      const std::string what = fx.name + " " + p + (model == &padded ? " (padded model)" : "");
      for (const test::ChunkInfo& c :
           test::expect_chunked_prefill_matches(s, m.ids, m.runs, cuts, want, fx.H, fx.V, what))
        if (c.tokens <= gemma4::kGraphMaxTokens) (c.media ? media_small : want_padded) += 1;
    }
    if (model == &padded) {
      EXPECT_EQ(padded.graph_stats().padded_steps, want_padded) << fx.name;
      EXPECT_GT(want_padded, 0) << fx.name;
      if (!bidi) {
        EXPECT_GT(media_small, 0) << fx.name << ": no small chunk carried an image";
      }
    } else {
      EXPECT_EQ(model->graph_stats().padded_steps, 0);
    }
  }
}

TEST_P(MmGolden, SplittingABidirectionalBlockIsRefused) {
  MmFixture fx(GetParam());
  if (fx.model->config().use_bidirectional_attention != "vision") GTEST_SKIP() << "causal layout";
  const MmPrompt m = load_prompt(fx, "one");
  Session s(*fx.model, fx.be, fx.opts());
  s.add(1);
  const int cut = m.runs[0].begin + 5;
  gemma4::ForwardOutput out;
  const test::MediaStep ms = test::media_step(m.ids, m.runs, 0, cut, fx.H);
  EXPECT_THROW(s.run({ms.step}, out, {}, false, {ms.media}), std::exception);
  EXPECT_EQ(s.length(1), 0);  // rolled back
}

// Our attention rule (sliding: keys (q - W, max(q, block end - 1)] on image blocks, else causal
// within the window; full: causal) against the dense masks HF built.
TEST_P(MmGolden, AttentionRuleEqualsHFMasks) {
  MmFixture fx(GetParam());
  const gemma4::Config& c = fx.model->config();
  const bool bidi = c.use_bidirectional_attention == "vision";
  for (const char* p : kPrompts) {
    const MmPrompt m = load_prompt(fx, p);
    const int T = static_cast<int>(m.ids.size());
    const TensorInfo* ms = fx.golden->find(std::string(p) + ".mask_sliding");
    const TensorInfo* mf = fx.golden->find(std::string(p) + ".mask_full");
    ASSERT_TRUE(ms && mf);
    ASSERT_EQ(ms->shape, (std::vector<int64_t>{T, T}));
    std::vector<int> limit(static_cast<size_t>(T));
    for (int q = 0; q < T; ++q) limit[q] = q;
    if (bidi) {
      for (const test::SoftRun& r : m.runs)
        for (int q = r.begin; q < r.end; ++q) limit[q] = r.end - 1;
    }
    int64_t bad = 0, ahead = 0;
    for (int q = 0; q < T; ++q)
      for (int kv = 0; kv < T; ++kv) {
        const bool sliding = kv > q - c.sliding_window && kv <= limit[q];
        const bool full = kv <= q;
        bad += sliding != (ms->data[q * T + kv] != 0);
        bad += full != (mf->data[q * T + kv] != 0);
        ahead += sliding && kv > q;
      }
    EXPECT_EQ(bad, 0) << fx.name << " " << p;
    if (bidi && !m.runs.empty()) {
      EXPECT_GT(ahead, 0) << p;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, MmGolden, ::testing::Values("mm-31b", "mm-e2b"));

}  // namespace
}  // namespace fc
