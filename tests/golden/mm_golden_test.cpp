// Prompts with images through the text model against transformers' Gemma4ForConditionalGeneration
// (fp32, eager; tools/refgen/make_vision_fixtures.py) on mm-31b (bidirectional image blocks on
// sliding layers, W = 8, blocks of 54..64 tokens) and mm-e2b (causal, PLE): the merged input
// embeddings (soft tokens unscaled, placeholder ids as pad), logits at every position, 4 greedy
// decode steps on the KV cache, chunked prefill (text | image | text on mm-31b; chunks that cut
// images on mm-e2b) equal to one-shot, and the attention rule equal to HF's dense masks.
// Prompts: one image, two images, image between text, an image inside a multi-turn chat, and a
// stray placeholder id with no image.
//
// Tolerances as golden_test.cpp: logits 1e-3 · max |logit|, embeddings 1e-4 · max(1, max |e|).
#include <gtest/gtest.h>

#include "tests/common/golden_io.h"

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

float max_abs(const float* a, size_t n) {
  float m = 0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, std::fabs(a[i]));
  return m;
}
float max_diff(const float* a, const float* b, size_t n) {
  float m = 0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

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
  std::vector<std::pair<int, int>> runs;  // soft-token runs [begin, end)
  std::vector<int> images;                // image index per run
};

MmPrompt load_prompt(const MmFixture& fx, const std::string& p) {
  MmPrompt m;
  m.ids = test::read_ids(*fx.golden, p + ".ids");
  m.images = test::read_ids(*fx.golden, p + ".images");
  const int img = fx.model->config().mm.image_token_id;
  for (int t = 0; t < static_cast<int>(m.ids.size()); ++t) {
    if (m.ids[t] != img) continue;
    if (!m.runs.empty() && m.runs.back().second == t)
      ++m.runs.back().second;
    else
      m.runs.emplace_back(t, t + 1);
  }
  if (m.images.empty()) m.runs.clear();  // the stray placeholder carries no image
  return m;
}

// A step over [b, e) of the prompt and the soft tokens and blocks it holds.
struct MmStep {
  Session::Step step;
  Session::StepMedia media;
};
MmStep step_of(const MmFixture& fx, const MmPrompt& m, int b, int e) {
  MmStep ms;
  Session::Step& st = ms.step;
  Session::StepMedia& s = ms.media;
  st.id = 1;
  st.tokens.assign(m.ids.begin() + b, m.ids.begin() + e);
  for (size_t r = 0; r < m.runs.size(); ++r) {
    const auto [rb, re] = m.runs[r];
    const int lo = std::max(rb, b), hi = std::min(re, e);
    if (lo < hi)
      s.soft_tokens.push_back({lo, hi - lo,
                               fx.image_embeds[static_cast<size_t>(m.images[r])].data() +
                                   static_cast<size_t>(lo - rb) * fx.H});
    if (rb < e && re > b) s.bidi_blocks.emplace_back(rb, re);
  }
  return ms;
}

class MmGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(MmGolden, MergedEmbeddingsLogitsAndGreedy) {
  MmFixture fx(GetParam());
  for (const char* p : kPrompts) {
    const MmPrompt m = load_prompt(fx, p);
    const int T = static_cast<int>(m.ids.size());
    const std::vector<float> want_logits = test::read_f32(*fx.golden, std::string(p) + ".logits");
    const std::vector<float> want_merged = test::read_f32(*fx.golden, std::string(p) + ".merged");
    Session s(*fx.model, fx.be, fx.opts());
    s.add(1);
    MmStep ms = step_of(fx, m, 0, T);
    for (int t = 0; t < T; ++t) ms.step.logit_rows.push_back(t), ms.step.hidden_rows.push_back(t);
    gemma4::ForwardOutput out;
    // The residual entering layer 0 is the merged embeddings.
    s.run({ms.step}, out, {0}, false, {ms.media});
    const size_t n = static_cast<size_t>(T * fx.H);
    EXPECT_LE(max_diff(out.captured[0].data(), want_merged.data(), n),
              1e-4f * std::max(1.0f, max_abs(want_merged.data(), n)))
        << fx.name << " " << p << " merged embeddings";
    for (int t = 0; t < T; ++t) {
      const float* g = out.logits.data() + t * fx.V;
      const float* w = want_logits.data() + t * fx.V;
      EXPECT_LE(max_diff(g, w, fx.V), 1e-3f * max_abs(w, fx.V))
          << fx.name << " " << p << " logits at " << t;
    }
    // Greedy decode on the cache (decode tokens are text: causal).
    const std::vector<int32_t> greedy = test::read_ids(*fx.golden, std::string(p) + ".greedy");
    const std::vector<float> gl = test::read_f32(*fx.golden, std::string(p) + ".greedy_logits");
    std::vector<float> row(out.logits.end() - fx.V, out.logits.end());
    for (size_t g = 0; g < greedy.size(); ++g) {
      EXPECT_LE(max_diff(row.data(), gl.data() + g * fx.V, fx.V),
                1e-3f * max_abs(gl.data() + g * fx.V, fx.V))
          << fx.name << " " << p << " greedy logits " << g;
      const int32_t tok =
          static_cast<int32_t>(std::max_element(row.begin(), row.end()) - row.begin());
      ASSERT_EQ(tok, greedy[g]) << fx.name << " " << p << " greedy step " << g;
      Session::Step d;
      d.id = 1;
      d.tokens = {tok};
      d.logit_rows = {0};
      s.run({d}, out);
      row = out.logits;
    }
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
        for (auto [b, e] : m.runs) {
          for (int c = at + 7; c < b; c += 7) cuts.push_back(c);
          cuts.insert(cuts.end(), {b, e});
          at = e;
        }
        for (int c = at + 7; c < T; c += 7) cuts.push_back(c);
      } else {
        for (int c = 7; c < T; c += 7) cuts.push_back(c);
      }
      cuts.push_back(T);
      Session s(*model, fx.be, fx.opts());
      s.add(1);
      int b = 0;
      for (int c : cuts) {
        if (c <= b) continue;
        MmStep ms = step_of(fx, m, b, c);
        const bool media = !ms.media.soft_tokens.empty() || !ms.media.bidi_blocks.empty();
        if (c - b <= gemma4::kGraphMaxTokens) (media ? media_small : want_padded) += 1;
        for (int t = 0; t < c - b; ++t) ms.step.logit_rows.push_back(t);
        gemma4::ForwardOutput out;
        s.run({ms.step}, out, {}, false, {ms.media});
        for (int t = b; t < c; ++t) {
          const float* g = out.logits.data() + (t - b) * fx.V;
          const float* w = want.data() + t * fx.V;
          EXPECT_LE(max_diff(g, w, fx.V), 1e-3f * max_abs(w, fx.V))
              << fx.name << " " << p << " chunked logits at " << t
              << (model == &padded ? " (padded model)" : "");
        }
        b = c;
      }
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
  const int cut = m.runs[0].first + 5;
  gemma4::ForwardOutput out;
  const MmStep ms = step_of(fx, m, 0, cut);
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
      for (auto [b, e] : m.runs)
        for (int q = b; q < e; ++q) limit[q] = e - 1;
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
