// An image and an audio clip in one prompt against transformers' Gemma4ForConditionalGeneration
// (tests/fixtures/mm-audio-e2b, tools/refgen/make_mixed_fixture.py: one checkpoint with both a
// vision tower and an audio tower, E2B-shape text model: PLE, KV sharing, causal, W = 8; fp32
// references from BF16 weights). Prompts image_audio (bos, text, <|image> + 54 × <|image|> +
// <image|>, text, <|audio> + 18 × <|audio|> + <audio|>, text) and audio_image (the clip first).
// Checked: the merged inputs_embeds entering the language model, the logits at every position and
// 4 greedy steps on the KV cache (tokens and logits), with the soft tokens from HF and from our
// two towers; chunked prefill cutting both runs; and the engine with both encoders registered
// (image from the processor's patches, audio from the clip's samples through our log-mel)
// reproducing HF's greedy tokens, with prefill chunks that cut the runs and the encoder cache
// serving repeated items.
//
// Tolerances as golden_test.cpp (tests/common/mm_golden.h): logits 1e-3 · max |logit| per row,
// merged embeddings 1e-4 · max(1, max |e|); our towers' soft tokens against HF's 1e-4 · max(1,
// max |e|) (as vision_golden_test and audio_tower_golden_test).
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "core/thread_pool.h"
#include "engine/engine.h"
#include "io/safetensors.h"
#include "model/gemma4/audio_encoder.h"
#include "model/gemma4/model.h"
#include "model/gemma4/vision.h"
#include "server/audio_request.h"
#include "spec/session.h"
#include "tests/common/audio_fixture.h"
#include "tests/common/golden_io.h"
#include "tests/common/mm_fixture.h"
#include "tests/common/mm_golden.h"
#include "tests/common/stream_tokens.h"

namespace fc {
namespace {

const std::string kDir = std::string(FC_SOURCE_DIR) + "/tests/fixtures/mm-audio-e2b";
const char* kPrompts[] = {"image_audio", "audio_image"};

struct Mixed {
  ThreadPool pool{2};
  cpu::CpuBackend be{pool};
  gemma4::Config cfg = gemma4::load_config(kDir);
  std::shared_ptr<const Checkpoint> ckpt = Checkpoint::open_dir(kDir);
  gemma4::Model model{cfg, ckpt, be};
  gemma4::VisionTower vision{cfg, *ckpt, be};
  gemma4::AudioEncoder audio{kDir, cfg, ckpt, be};
  std::unique_ptr<SafetensorsFile> golden = SafetensorsFile::open(kDir + "/golden.safetensors");
  // The encoders' inputs, as the server prepares them.
  std::shared_ptr<gemma4::MediaInput> image = test::fixture_image(*golden, 0);
  std::shared_ptr<gemma4::MediaInput> clip =
      audio_media_input(test::fixture_signal(*golden, "short"), "clip");

  SessionOptions opts() const {
    SessionOptions o;
    o.block_size = 4;
    o.max_tokens = 256;
    o.max_seqs = 1;
    o.max_step_tokens = 128;
    return o;
  }
  // The prompt's image run and audio run with the given soft-token rows.
  std::vector<test::SoftRun> runs(const std::vector<int32_t>& ids, const std::vector<float>& img,
                                  const std::vector<float>& aud) const {
    const auto ri = test::placeholder_runs(ids, cfg.mm.image_token_id);
    const auto ra = test::placeholder_runs(ids, cfg.mm.audio_token_id);
    EXPECT_EQ(ri.size(), 1u);
    EXPECT_EQ(ra.size(), 1u);
    if (ri.size() != 1 || ra.size() != 1) return {};
    EXPECT_EQ(ri[0].second - ri[0].first, image->num_tokens);
    EXPECT_EQ(ra[0].second - ra[0].first, clip->num_tokens);
    EXPECT_EQ(img.size(), static_cast<size_t>(image->num_tokens * cfg.hidden_size));
    EXPECT_EQ(aud.size(), static_cast<size_t>(clip->num_tokens * cfg.hidden_size));
    return {{ri[0].first, ri[0].second, img.data(), false},
            {ra[0].first, ra[0].second, aud.data(), false}};
  }
  // Prefill and greedy decoding of prompt p against its references.
  void check(const char* p, const std::vector<float>& img, const std::vector<float>& aud,
             const std::string& how) {
    const std::vector<int32_t> ids = test::read_ids(*golden, std::string(p) + ".ids");
    Session s(model, be, opts());
    const std::string what = std::string(p) + " " + how;
    const std::vector<float> row = test::expect_prefill_matches(
        s, ids, runs(ids, img, aud), test::read_f32(*golden, std::string(p) + ".merged"),
        test::read_f32(*golden, std::string(p) + ".logits"), cfg.hidden_size, cfg.vocab_size, what);
    const std::vector<float> gl = test::read_f32(*golden, std::string(p) + ".greedy_logits");
    test::expect_greedy(s, row, test::read_ids(*golden, std::string(p) + ".greedy"), &gl,
                        cfg.vocab_size, what);
  }
};

TEST(MixedMedia, OneCheckpointHoldsBothTowers) {
  Mixed fx;
  EXPECT_TRUE(gemma4::has_vision_tower(fx.cfg, *fx.ckpt));
  EXPECT_TRUE(gemma4::has_audio_tower(fx.cfg, *fx.ckpt));
  EXPECT_EQ(fx.vision.weights().layers.size(), 2u);
  EXPECT_EQ(fx.image->num_tokens, 54);
  EXPECT_EQ(fx.clip->num_tokens, 18);
}

TEST(MixedMedia, MergedEmbeddingsLogitsAndGreedyFromReferenceSoftTokens) {
  Mixed fx;
  const std::vector<float> img = test::read_f32(*fx.golden, "img0.embed");
  const std::vector<float> aud = test::read_f32(*fx.golden, "audio.embed");
  for (const char* p : kPrompts) fx.check(p, img, aud, "HF soft tokens");
}

TEST(MixedMedia, MergedEmbeddingsLogitsAndGreedyFromOurTowers) {
  Mixed fx;
  std::vector<float> img(static_cast<size_t>(fx.image->num_tokens * fx.cfg.hidden_size));
  std::vector<float> aud(static_cast<size_t>(fx.clip->num_tokens * fx.cfg.hidden_size));
  fx.vision.encode({fx.image.get()}, img.data());
  fx.audio.encode({fx.clip.get()}, aud.data());
  for (const auto& [got, key] : {std::pair{&img, "img0.embed"}, std::pair{&aud, "audio.embed"}}) {
    const std::vector<float> want = test::read_f32(*fx.golden, key);
    ASSERT_EQ(got->size(), want.size()) << key;
    EXPECT_LE(test::max_diff(got->data(), want.data(), want.size()),
              1e-4f * std::max(1.0f, test::max_abs(want.data(), want.size())))
        << key;
  }
  for (const char* p : kPrompts) fx.check(p, img, aud, "our towers");
}

// Chunks of 7 tokens: both runs are cut, some chunks hold only placeholders, and on image_audio
// one chunk ends the image and one both the text between and the clip's start.
TEST(MixedMedia, ChunkedPrefillEqualsReference) {
  Mixed fx;
  const std::vector<float> img = test::read_f32(*fx.golden, "img0.embed");
  const std::vector<float> aud = test::read_f32(*fx.golden, "audio.embed");
  for (const char* p : kPrompts) {
    const std::vector<int32_t> ids = test::read_ids(*fx.golden, std::string(p) + ".ids");
    const int T = static_cast<int>(ids.size());
    std::vector<int> cuts;
    for (int c = 7; c < T; c += 7) cuts.push_back(c);
    cuts.push_back(T);
    Session s(fx.model, fx.be, fx.opts());
    int media = 0;
    for (const test::ChunkInfo& c : test::expect_chunked_prefill_matches(
             s, ids, fx.runs(ids, img, aud), cuts,
             test::read_f32(*fx.golden, std::string(p) + ".logits"), fx.cfg.hidden_size,
             fx.cfg.vocab_size, p))
      media += c.media;
    EXPECT_GE(media, (54 + 18) / 7) << p;
  }
}

// Both prompts at once, twice, on a 16-token budget (chunks cut the runs) and on 256 (whole
// prompts): each request carries one image and one clip with their keys.
TEST(MixedMediaEngine, BothEncodersReproduceReferenceGreedyTokens) {
  for (int budget : {16, 256}) {
    Mixed fx;
    EngineConfig ec;
    ec.block_size = 4;
    ec.kv_tokens = 1024;
    ec.scheduler.max_num_seqs = 4;
    ec.scheduler.max_num_batched_tokens = budget;
    ec.scheduler.encoder_compute_budget = std::max(budget, 54);  // the largest item
    ec.scheduler.max_model_len = 160;
    ec.encoders = {&fx.vision, &fx.audio};
    Engine engine(fx.model, fx.be, ec);
    std::vector<std::pair<std::string, std::shared_ptr<RequestStream>>> reqs;
    for (int rep = 0; rep < 2; ++rep)
      for (const char* p : kPrompts) {
        EngineRequest r;
        r.prompt = test::read_ids(*fx.golden, std::string(p) + ".ids");
        r.max_tokens = 4;
        r.sampling.temperature = 0;
        for (auto [id, input, key] :
             {std::tuple{fx.cfg.mm.image_token_id, fx.image, uint64_t{11}},
              std::tuple{fx.cfg.mm.audio_token_id, fx.clip, uint64_t{22}}}) {
          EngineMedia m;
          m.input = input;
          m.key = key;
          m.offset = test::placeholder_runs(r.prompt, id).at(0).first;
          r.media.push_back(m);
        }
        // Sorted by position, as the server hands them over.
        if (r.media[1].offset < r.media[0].offset) std::swap(r.media[0], r.media[1]);
        reqs.emplace_back(p, engine.submit(std::move(r)));
      }
    for (auto& [p, stream] : reqs)
      EXPECT_EQ(test::stream_tokens(*stream), test::read_ids(*fx.golden, p + ".greedy"))
          << p << " budget " << budget;
    const EngineStats st = engine.stats();
    std::printf("budget %d: %lld encodes, encoder cache %lld/%lld hits\n", budget,
                static_cast<long long>(st.mm_items_encoded),
                static_cast<long long>(st.encoder_cache_hits),
                static_cast<long long>(st.encoder_cache_queries));
    EXPECT_GE(st.mm_items_encoded, 2) << "budget " << budget;
    EXPECT_GT(st.encoder_cache_hits, 0) << "budget " << budget;
  }
}

}  // namespace
}  // namespace fc
