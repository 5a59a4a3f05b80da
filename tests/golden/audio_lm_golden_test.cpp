// An audio prompt through the text model against transformers' Gemma4ForConditionalGeneration
// (tests/fixtures/audio-mini, tools/refgen/make_audio_fixture.py: fp32 references from BF16
// weights, E2B-shape text model: PLE, KV sharing, causal). The prompt lm.ids is 5 text ids,
// <|audio> + 18 × <|audio|> + <audio|> for the 0.7 s clip, 6 text ids (T = 31); checked:
// the merged inputs_embeds entering the language model (soft tokens unscaled, the placeholder ids
// embedded as pad), the logits at every position, 8 greedy tokens decoded on the KV cache (HF's
// by full re-forward), and chunked prefill cutting the audio run. The soft tokens come (a) from
// HF (tower.short.embed) to isolate the language model and (b) from our AudioEncoder on our
// log-mel of the clip (the serving path: server/audio_request.h audio_media_input).
//
// Tolerances as golden_test.cpp (tests/common/mm_golden.h): logits 1e-3 · max |logit| per row,
// merged embeddings 1e-4 · max(1, max |e|).
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "core/thread_pool.h"
#include "io/safetensors.h"
#include "model/gemma4/audio_encoder.h"
#include "model/gemma4/model.h"
#include "server/audio_request.h"
#include "spec/session.h"
#include "tests/common/audio_fixture.h"
#include "tests/common/golden_io.h"
#include "tests/common/mm_golden.h"

namespace fc {
namespace {

const std::string kDir = std::string(FC_SOURCE_DIR) + "/tests/fixtures/audio-mini";

struct AudioLm {
  ThreadPool pool{2};
  cpu::CpuBackend be{pool};
  gemma4::Config cfg = gemma4::load_config(kDir);
  std::shared_ptr<const Checkpoint> ckpt = Checkpoint::open_dir(kDir);
  gemma4::Model model{cfg, ckpt, be};
  std::unique_ptr<SafetensorsFile> golden = SafetensorsFile::open(kDir + "/golden.safetensors");
  std::vector<int32_t> ids = test::read_ids(*golden, "lm.ids");
  std::pair<int, int> run;  // the audio soft tokens [begin, end)

  AudioLm() {
    const auto runs = test::placeholder_runs(ids, cfg.mm.audio_token_id);
    EXPECT_EQ(runs.size(), 1u);
    if (!runs.empty()) run = runs[0];
    EXPECT_EQ(run.second - run.first, test::read_ids(*golden, "lm.n_audio")[0]);
    EXPECT_TRUE(run.first > 0 && ids[static_cast<size_t>(run.first - 1)] == cfg.mm.boa_token_id);
  }
  SessionOptions opts() const {
    SessionOptions o;
    o.block_size = 4;
    o.max_tokens = 128;
    o.max_seqs = 1;
    o.max_step_tokens = 64;
    return o;
  }
  std::vector<test::SoftRun> runs(const std::vector<float>& embeds) const {
    EXPECT_EQ(embeds.size(), static_cast<size_t>((run.second - run.first) * cfg.hidden_size));
    return {{run.first, run.second, embeds.data(), false}};
  }
  // Prefill (merged embeddings, logits) and greedy decoding against lm.*.
  void check(const std::vector<float>& embeds, const std::string& what) {
    Session s(model, be, opts());
    const std::vector<float> row = test::expect_prefill_matches(
        s, ids, runs(embeds), test::read_f32(*golden, "lm.inputs_embeds"),
        test::read_f32(*golden, "lm.logits"), cfg.hidden_size, cfg.vocab_size, what);
    test::expect_greedy(s, row, test::read_ids(*golden, "lm.greedy"), nullptr, cfg.vocab_size,
                        what);
  }
};

TEST(AudioLmGolden, MergedEmbeddingsLogitsAndGreedyFromReferenceSoftTokens) {
  AudioLm fx;
  fx.check(test::read_f32(*fx.golden, "tower.short.embed"), "audio-mini HF soft tokens");
}

TEST(AudioLmGolden, MergedEmbeddingsLogitsAndGreedyFromOurEncoder) {
  AudioLm fx;
  gemma4::AudioEncoder enc(kDir, fx.cfg, fx.ckpt, fx.be);
  const std::shared_ptr<gemma4::MediaInput> in =
      audio_media_input(test::fixture_signal(*fx.golden, "short"), "clip");
  ASSERT_EQ(in->num_tokens, fx.run.second - fx.run.first);
  std::vector<float> embeds(static_cast<size_t>(in->num_tokens * fx.cfg.hidden_size));
  enc.encode({in.get()}, embeds.data());
  fx.check(embeds, "audio-mini our encoder");
}

// Chunks of 5 tokens: the audio run [6, 24) is cut three times, with chunks that hold only
// placeholders and chunks that mix text and soft tokens.
TEST(AudioLmGolden, ChunkedPrefillEqualsReference) {
  AudioLm fx;
  const std::vector<float> embeds = test::read_f32(*fx.golden, "tower.short.embed");
  const int T = static_cast<int>(fx.ids.size());
  std::vector<int> cuts;
  for (int c = 5; c < T; c += 5) cuts.push_back(c);
  cuts.push_back(T);
  Session s(fx.model, fx.be, fx.opts());
  int media = 0;
  for (const test::ChunkInfo& c : test::expect_chunked_prefill_matches(
           s, fx.ids, fx.runs(embeds), cuts, test::read_f32(*fx.golden, "lm.logits"),
           fx.cfg.hidden_size, fx.cfg.vocab_size, "audio-mini"))
    media += c.media;
  EXPECT_GE(media, 4);  // the run spans 4 or more chunks
}

}  // namespace
}  // namespace fc
