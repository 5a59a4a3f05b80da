// The audio tower against transformers (tests/fixtures/audio-mini, a random E-layout
// Gemma4ForConditionalGeneration with a 2-layer tower, tools/refgen/make_audio_fixture.py): for
// three clips (a 2 s sweep, 0.7 s, 1 s noise) the subsampling output, each conformer layer,
// the tower output (Gemma4AudioModel.last_hidden_state stripped by the subsampled mask) and
// embed_audio's output, once from HF's own features and once end to end from our log-mel.
//
// Tolerance: |Δ| <= 1e-4 · max(1, max|ref|) per tensor (fp32 references from the BF16 weights;
// measured errors are printed).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "audio/log_mel.h"
#include "backend/cpu/cpu_backend.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "model/gemma4/audio_tower.h"
#include "model/gemma4/config.h"
#include "tests/common/audio_fixture.h"
#include "tests/common/golden_io.h"

namespace fc::gemma4 {
namespace {

const std::string kDir = std::string(FC_SOURCE_DIR) + "/tests/fixtures/audio-mini";

struct Tower : ::testing::Test {
  static void SetUpTestSuite() {
    std::ifstream f(kDir + "/config.json");
    const nlohmann::json j = nlohmann::json::parse(f);
    cfg = new AudioConfig(*parse_audio_config(j, "config.json"));
    text = new Config(load_config(kDir));
    ckpt = Checkpoint::open_dir(kDir);
    golden = SafetensorsFile::open(kDir + "/golden.safetensors");
    pool = new ThreadPool(2);
    be = new cpu::CpuBackend(*pool);
    tower = new AudioTower(*cfg, text->hidden_size, ckpt, *be, text->quant);
  }
  static void TearDownTestSuite() {
    delete tower;
    delete be;
    delete pool;
    delete text;
    delete cfg;
    golden.reset();
    ckpt.reset();
  }
  static inline AudioConfig* cfg = nullptr;
  static inline Config* text = nullptr;
  static inline std::shared_ptr<const Checkpoint> ckpt;
  static inline std::unique_ptr<SafetensorsFile> golden;
  static inline ThreadPool* pool = nullptr;
  static inline cpu::CpuBackend* be = nullptr;
  static inline AudioTower* tower = nullptr;
};

double rel_err(const std::vector<float>& got, const std::vector<float>& want) {
  EXPECT_EQ(got.size(), want.size());
  double d = 0, m = 1;
  for (size_t i = 0; i < want.size() && i < got.size(); ++i) {
    d = std::max(d, static_cast<double>(std::abs(got[i] - want[i])));
    m = std::max(m, static_cast<double>(std::abs(want[i])));
  }
  return d / m;
}

void compare(const AudioEncoding& e, const std::string& sig, const char* how) {
  const SafetensorsFile& g = *Tower::golden;
  const std::string p = "tower." + sig + ".";
  const std::vector<float> layers = test::read_f32(g, p + "layers");
  const int L = Tower::cfg->num_hidden_layers;
  const size_t per = layers.size() / static_cast<size_t>(L);
  const double sub = rel_err(e.subsample, test::read_f32(g, p + "subsample"));
  double lay = 0;
  ASSERT_EQ(e.layers.size(), static_cast<size_t>(L));
  for (int l = 0; l < L; ++l)
    lay = std::max(
        lay, rel_err(e.layers[static_cast<size_t>(l)],
                     std::vector<float>(layers.begin() + static_cast<int64_t>(l * per),
                                        layers.begin() + static_cast<int64_t>((l + 1) * per))));
  const double out = rel_err(e.tower, test::read_f32(g, p + "out"));
  const double emb = rel_err(e.embeds, test::read_f32(g, p + "embed"));
  std::printf("%-6s %-10s n %3lld: subsample %.1e, layers %.1e, tower %.1e, embed_audio %.1e\n",
              sig.c_str(), how, static_cast<long long>(e.n), sub, lay, out, emb);
  EXPECT_LE(sub, 1e-4) << sig << " " << how;
  EXPECT_LE(lay, 1e-4) << sig << " " << how;
  EXPECT_LE(out, 1e-4) << sig << " " << how;
  EXPECT_LE(emb, 1e-4) << sig << " " << how;
}

TEST_F(Tower, BindsEveryAudioTensor) {
  EXPECT_TRUE(tower->weights().unused.empty()) << tower->weights().unused.front();
  EXPECT_EQ(tower->weights().layers.size(), 2u);
  EXPECT_EQ(cfg->audio_token_id, 251);
  EXPECT_EQ(cfg->boa_token_id, 252);
  EXPECT_EQ(cfg->eoa_token_id, 253);
}

TEST_F(Tower, MatchesTransformersFromItsFeatures) {
  for (const char* sig : {"sweep", "short", "noise"}) {
    const std::vector<float> f = test::read_f32(*golden, std::string("fe.") + sig + ".features");
    const TensorInfo* m = golden->find(std::string("fe.") + sig + ".mask");
    ASSERT_NE(m, nullptr);
    int64_t valid = 0;
    for (size_t i = 0; i < m->nbytes; ++i) valid += m->data[i];
    const AudioEncoding e = tower->encode(f.data(), valid, true);
    EXPECT_EQ(e.n, audio::subsampled_frames(audio::subsampled_frames(valid)));
    compare(e, sig, "HF fe");
  }
}

TEST_F(Tower, MatchesTransformersEndToEnd) {
  for (const char* sig : {"sweep", "short", "noise"}) {
    const std::vector<float> x = test::fixture_signal(*golden, sig);
    ASSERT_FALSE(x.empty()) << sig;
    const audio::LogMel f = audio::log_mel(x.data(), static_cast<int64_t>(x.size()));
    const AudioEncoding e = tower->encode(f.data.data(), f.valid, true);
    EXPECT_EQ(e.n, audio::audio_soft_tokens(static_cast<int64_t>(x.size())));
    compare(e, sig, "our fe");
  }
}

TEST_F(Tower, RejectsAnEmptyClip) {
  const float f[128] = {};
  EXPECT_THROW(tower->encode(f, 0), Error);
}

}  // namespace
}  // namespace fc::gemma4
