// The audio config reader and the tower's loader without a reference run: every key's bad value
// is an error naming it, synth's audio writer produces exactly the tensors the binder reads (the
// tower then runs), and a missing or misshapen tensor is an error naming it. The numbers are
// tested against transformers in tests/golden/audio_tower_golden_test.cpp.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "backend/cpu/cpu_backend.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "model/gemma4/audio_tower.h"
#include "model/gemma4/synth.h"
#include "model/gemma4/synth_audio.h"
#include "quant/quant_config.h"

namespace fc::gemma4 {
namespace {

using nlohmann::json;

json tiny_root() {
  json root;
  add_audio_config(root);
  root["audio_config"].update({{"hidden_size", 16},
                               {"num_hidden_layers", 2},
                               {"num_attention_heads", 2},
                               {"subsampling_conv_channels", {128, 4}},
                               {"conv_kernel_size", 3},
                               {"output_proj_dims", 24}});
  return root;
}

std::string error_of(const json& root) {
  try {
    parse_audio_config(root, "cfg.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(AudioConfig, RealGeometryAndTokenIds) {
  json root;
  EXPECT_FALSE(parse_audio_config(root, "x").has_value());  // no tower: 26B / 31B
  root = shape_config("e4b");
  const AudioConfig c = *parse_audio_config(root, "e4b");
  EXPECT_EQ(c.hidden_size, 1024);
  EXPECT_EQ(c.num_hidden_layers, 12);
  EXPECT_EQ(c.head_dim(), 128);
  EXPECT_EQ(c.attention_window(), 12);
  EXPECT_EQ(c.output_proj_dims, 1536);
  EXPECT_EQ(c.audio_token_id, 258881);
  EXPECT_EQ(c.boa_token_id, 256000);
  EXPECT_EQ(c.eoa_token_id, 258883);
  EXPECT_FALSE(parse_audio_config(shape_config("31b"), "31b").has_value());
}

TEST(AudioConfig, BadValuesNameTheKey) {
  auto with = [](const char* k, json v) {
    json r = tiny_root();
    r["audio_config"][k] = std::move(v);
    return error_of(r);
  };
  EXPECT_NE(with("hidden_size", "x").find("'hidden_size' must be an integer"), std::string::npos);
  EXPECT_NE(with("num_attention_heads", 3).find("not a multiple"), std::string::npos);
  EXPECT_NE(with("attention_context_right", 2).find("attention_context_right"), std::string::npos);
  EXPECT_NE(with("attention_chunk_size", 4).find("attention_chunk_size"), std::string::npos);
  EXPECT_NE(with("attention_logit_cap", 0).find("attention_logit_cap"), std::string::npos);
  EXPECT_NE(with("hidden_act", "gelu").find("hidden_act 'gelu'"), std::string::npos);
  EXPECT_NE(with("subsampling_conv_channels", json::array({1})).find("subsampling_conv_channels"),
            std::string::npos);
  EXPECT_NE(with("model_type", "whisper").find("model_type 'whisper'"), std::string::npos);
  json r = tiny_root();
  r["audio_config"] = 5;
  EXPECT_NE(error_of(r).find("audio_config must be an object"), std::string::npos);
}

class AudioLoader : public ::testing::Test {
 protected:
  void write(const std::function<void(std::vector<TensorSource>&)>& edit = {}) {
    dir = (std::filesystem::temp_directory_path() /
           ("fc_audio_loader_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name()))
              .string();
    std::filesystem::create_directories(dir);
    std::vector<TensorSource> ts;
    uint64_t salt = 7;
    params = add_audio_tensors(tiny_root(), 40, 0.2f, salt, ts);
    if (edit) edit(ts);
    write_safetensors(dir + "/model.safetensors", ts);
  }
  void TearDown() override { std::filesystem::remove_all(dir); }
  std::unique_ptr<AudioTower> load(const quant::QuantConfig& q = {}) {
    std::shared_ptr<const Checkpoint> ck = Checkpoint::open_dir(dir);
    return std::make_unique<AudioTower>(*parse_audio_config(tiny_root(), "t"), 40, ck, be, q);
  }
  std::string dir;
  int64_t params = 0;
  ThreadPool pool{2};
  cpu::CpuBackend be{pool};
};

TEST_F(AudioLoader, SynthWritesWhatTheBinderReads) {
  write();
  const auto tower = load();
  EXPECT_TRUE(tower->weights().unused.empty());
  EXPECT_EQ(tower->weights().parameter_count, params);
  std::vector<float> feats(37 * 128);
  for (size_t i = 0; i < feats.size(); ++i) feats[i] = std::sin(0.37f * static_cast<float>(i));
  const AudioEncoding e = tower->encode(feats.data(), 37);
  EXPECT_EQ(e.n, 10);  // 37 → 19 → 10
  ASSERT_EQ(e.embeds.size(), 10u * 40u);
  for (float v : e.embeds) ASSERT_TRUE(std::isfinite(v));
  EXPECT_EQ(tower->macs(37) > 0, true);
}

TEST_F(AudioLoader, MissingOrMisshapenTensorIsNamed) {
  const std::string victim = "model.audio_tower.layers.1.self_attn.per_dim_scale";
  write([&](std::vector<TensorSource>& ts) {
    std::erase_if(ts, [&](const TensorSource& t) { return t.name == victim; });
  });
  try {
    load();
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing tensor " + victim), std::string::npos)
        << e.what();
  }
  const std::string conv = "model.audio_tower.subsample_conv_projection.layer1.conv.weight";
  write([&](std::vector<TensorSource>& ts) {
    for (TensorSource& t : ts)
      if (t.name == conv)
        t.shape = {4, 128, 3, 1},
        t.fill = [](uint8_t* d, uint64_t, uint64_t n) { std::fill(d, d + n, 0); };
  });
  try {
    load();
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(conv + " in "), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("expected [4, 128, 3, 3]"), std::string::npos) << e.what();
  }
}

// Published NVFP4 checkpoints exclude the towers (ModelOpt exclude_modules "*audio*"): the audio
// linears then bind dense; a description that covers them asks for NVFP4 tensors.
TEST_F(AudioLoader, Nvfp4DescriptionsThatExcludeAudioKeepItDense) {
  write();
  auto modelopt = [](json exclude) {
    return quant::parse_hf_quant_config(
        {{"producer", {{"name", "modelopt"}}},
         {"quantization",
          {{"quant_algo", "NVFP4"}, {"group_size", 16}, {"exclude_modules", exclude}}}},
        "hf_quant_config.json");
  };
  const auto tower = load(modelopt({"lm_head", "*audio*"}));
  EXPECT_EQ(tower->weights().nvfp4_linears, 0);
  try {
    load(modelopt({"lm_head"}));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("is NVFP4 per hf_quant_config.json"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace fc::gemma4
