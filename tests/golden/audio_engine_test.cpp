// Audio through the engine against transformers (tests/fixtures/audio-mini,
// tools/refgen/make_audio_fixture.py): the fixture's 0.7 s clip written as a 16-bit WAV, loaded
// as the server loads an input_audio part (server/audio_request.h: libsndfile, 16 kHz, log-mel,
// soft-token count), encoded by the AudioEncoder inside the engine and merged into the prompt
// lm.ids (<|audio> + 18 × <|audio|> + <audio|>); the greedy tokens must equal HF's lm.greedy.
// Run twice in one engine: the clip is encoded once (the second request reuses it by key).
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "engine/engine.h"
#include "io/safetensors.h"
#include "model/gemma4/audio_encoder.h"
#include "server/audio_request.h"
#include "tests/common/golden_io.h"
#include "tests/common/stream_tokens.h"

namespace fc {
namespace {

const std::string kDir = std::string(FC_SOURCE_DIR) + "/tests/fixtures/audio-mini";

void put32(std::vector<uint8_t>& b, uint32_t v) {
  for (int i = 0; i < 4; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
void put16(std::vector<uint8_t>& b, uint16_t v) {
  b.push_back(static_cast<uint8_t>(v));
  b.push_back(static_cast<uint8_t>(v >> 8));
}

// A mono 16 kHz PCM-16 WAV of the fixture signal `name`.
std::vector<uint8_t> fixture_wav(const SafetensorsFile& g, const std::string& name) {
  const TensorInfo* t = g.find("sig." + name);
  EXPECT_NE(t, nullptr);
  const uint32_t data = static_cast<uint32_t>(t->numel * 2);
  std::vector<uint8_t> b = {'R', 'I', 'F', 'F'};
  put32(b, 36 + data);
  for (char c : std::string("WAVEfmt ")) b.push_back(static_cast<uint8_t>(c));
  put32(b, 16);
  put16(b, 1);  // PCM
  put16(b, 1);  // mono
  put32(b, 16000);
  put32(b, 32000);
  put16(b, 2);
  put16(b, 16);
  for (char c : std::string("data")) b.push_back(static_cast<uint8_t>(c));
  put32(b, data);
  b.insert(b.end(), t->data, t->data + data);
  return b;
}

using test::stream_tokens;

TEST(AudioEngine, InputAudioReproducesReferenceGreedyTokens) {
  ThreadPool pool(2);
  cpu::CpuBackend be(pool);
  const gemma4::Config cfg = gemma4::load_config(kDir);
  std::shared_ptr<const Checkpoint> ckpt = Checkpoint::open_dir(kDir);
  ASSERT_TRUE(gemma4::has_audio_tower(cfg, *ckpt));
  gemma4::Model model(cfg, ckpt, be);
  gemma4::AudioEncoder enc(kDir, cfg, ckpt, be);
  auto g = SafetensorsFile::open(kDir + "/golden.safetensors");
  const std::vector<float> samples = decode_audio_bytes(fixture_wav(*g, "short"), "clip", "wav");
  ASSERT_EQ(samples.size(), 11200u);
  std::shared_ptr<const gemma4::MediaInput> in = audio_media_input(samples, "clip");
  const std::vector<int32_t> ids = test::read_ids(*g, "lm.ids");
  const std::vector<int32_t> greedy = test::read_ids(*g, "lm.greedy");
  int first = -1, n = 0;
  for (int t = 0; t < static_cast<int>(ids.size()); ++t)
    if (ids[t] == cfg.mm.audio_token_id) {
      if (first < 0) first = t;
      ++n;
    }
  ASSERT_EQ(in->num_tokens, n);  // the processor's count: 18 for 0.7 s
  ASSERT_EQ(n, test::read_ids(*g, "lm.n_audio")[0]);
  EngineConfig ec;
  ec.block_size = 4;
  ec.kv_tokens = 256;
  ec.scheduler.max_num_seqs = 2;
  ec.scheduler.max_num_batched_tokens = 16;  // chunked prefill through the audio run
  ec.scheduler.encoder_compute_budget = 64;
  ec.scheduler.max_model_len = 128;
  ec.encoders = {&enc};
  Engine engine(model, be, ec);
  for (int rep = 0; rep < 2; ++rep) {
    EngineRequest r;
    r.prompt = ids;
    r.max_tokens = static_cast<int>(greedy.size());
    r.sampling.temperature = 0;
    EngineMedia m;
    m.input = in;
    m.key = 77;
    m.offset = first;
    r.media.push_back(m);
    EXPECT_EQ(stream_tokens(*engine.submit(std::move(r))), greedy) << "repetition " << rep;
  }
  const EngineStats st = engine.stats();
  EXPECT_EQ(st.mm_items_encoded, 1);  // the second request reuses the first's audio (by key)
}

TEST(AudioEngine, BadClipsAreRefused) {
  auto g = SafetensorsFile::open(kDir + "/golden.safetensors");
  std::vector<uint8_t> wav = fixture_wav(*g, "short");
  std::vector<uint8_t> cut(wav.begin(), wav.begin() + 1000);  // data chunk cut short
  EXPECT_THROW(decode_audio_bytes(cut, "clip", "wav"), ApiError);
  EXPECT_THROW(decode_audio_bytes(wav, "clip", "mp3"), ApiError);  // declared format mismatch
  EXPECT_THROW(audio_media_input(std::vector<float>(160, 0.f), "clip"), ApiError);
  EXPECT_THROW(audio_media_input({}, "clip"), ApiError);
}

}  // namespace
}  // namespace fc
