#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"
#include "model/gemma4/config.h"
#include "model/gemma4/model.h"

namespace fc::gemma4 {
namespace {

using nlohmann::json;

const std::string kFixtures = std::string(FC_SOURCE_DIR) + "/tests/fixtures/";

// The spec's kitchen-sink config (§12.1) in flat form.
json kitchen_sink() {
  return json::parse(R"({
    "architectures": ["Gemma4ForCausalLM"], "model_type": "gemma4_text",
    "vocab_size": 256, "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 6,
    "layer_types": ["sliding_attention","full_attention","sliding_attention","full_attention",
                    "sliding_attention","full_attention"],
    "num_attention_heads": 4, "num_key_value_heads": 2, "num_global_key_value_heads": 1,
    "head_dim": 16, "global_head_dim": 32, "attention_k_eq_v": true, "sliding_window": 4,
    "rope_parameters": {
      "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
      "full_attention": {"rope_type": "proportional", "partial_rotary_factor": 0.25, "rope_theta": 1000000.0}},
    "num_kv_shared_layers": 2, "use_double_wide_mlp": true, "hidden_size_per_layer_input": 8,
    "vocab_size_per_layer_input": 256, "enable_moe_block": true, "num_experts": 4,
    "top_k_experts": 2, "moe_intermediate_size": 32, "use_bidirectional_attention": null,
    "final_logit_softcapping": 30.0, "rms_norm_eps": 1e-6, "hidden_activation": "gelu_pytorch_tanh",
    "attention_bias": false, "max_position_embeddings": 1024, "tie_word_embeddings": true,
    "pad_token_id": 0, "eos_token_id": 1, "bos_token_id": 2})");
}

std::string error_of(const json& j) {
  try {
    parse_config(j, "cfg.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Config, KitchenSinkDerivedGeometry) {
  const Config c = parse_config(kitchen_sink(), "cfg.json");
  EXPECT_EQ(c.tensor_prefix, "model.");
  ASSERT_EQ(c.layers.size(), 6u);
  // Layers 0-3 own K/V; layer 4 (S) reads layer 2, layer 5 (F) reads layer 3 (spec §12.1).
  EXPECT_EQ(c.layers[4].kv_source, 2);
  EXPECT_EQ(c.layers[5].kv_source, 3);
  EXPECT_TRUE(c.layers[4].kv_shared);
  EXPECT_FALSE(c.layers[3].kv_shared);
  EXPECT_EQ(c.layers[1].head_dim, 32);
  EXPECT_EQ(c.layers[1].num_kv_heads, 1);
  EXPECT_FALSE(c.layers[1].has_v_proj);
  EXPECT_EQ(c.layers[0].head_dim, 16);
  EXPECT_EQ(c.layers[0].num_kv_heads, 2);
  EXPECT_TRUE(c.layers[0].has_v_proj);
  EXPECT_EQ(c.layers[3].intermediate, 96);
  EXPECT_EQ(c.layers[4].intermediate, 192);  // double-wide on shared layers
}

TEST(Config, FlatAndPerLayerFormsAgree) {
  // The same model as saved by transformers 5.23 (per_layer_config) and in the flat form.
  const Config saved = load_config(kFixtures + "kitchen-sink");
  const Config flat = parse_config(kitchen_sink(), "flat");
  ASSERT_EQ(saved.layers.size(), flat.layers.size());
  for (size_t i = 0; i < saved.layers.size(); ++i) {
    EXPECT_EQ(saved.layers[i].head_dim, flat.layers[i].head_dim) << i;
    EXPECT_EQ(saved.layers[i].num_kv_heads, flat.layers[i].num_kv_heads) << i;
    EXPECT_EQ(saved.layers[i].kv_source, flat.layers[i].kv_source) << i;
    EXPECT_EQ(saved.layers[i].intermediate, flat.layers[i].intermediate) << i;
  }
}

TEST(Config, NestedFormUsesLanguageModelPrefix) {
  const Config c = load_config(kFixtures + "mini-31b");
  EXPECT_EQ(c.tensor_prefix, "model.language_model.");
  EXPECT_EQ(c.architecture, "Gemma4ForConditionalGeneration");
}

TEST(Config, Defaults) {
  json j = {{"vocab_size", 512},      {"hidden_size", 64},        {"intermediate_size", 96},
            {"num_hidden_layers", 7}, {"num_attention_heads", 8}, {"num_key_value_heads", 4},
            {"head_dim", 256}};
  const Config c = parse_config(j, "cfg.json");
  // Every 6th layer full, and the last layer forced to full.
  EXPECT_EQ(c.layer_types[5], LayerType::kFull);
  EXPECT_EQ(c.layer_types[4], LayerType::kSliding);
  EXPECT_EQ(c.layer_types[6], LayerType::kFull);
  EXPECT_EQ(c.hidden_size_per_layer_input, 256);  // the PLE default pitfall (spec §2.2)
  EXPECT_EQ(c.rope_full.type, "proportional");
  EXPECT_DOUBLE_EQ(c.rope_full.partial_rotary_factor, 0.25);
  EXPECT_EQ(c.layers[5].head_dim, 512);
  // num_global_key_value_heads is only honoured with attention_k_eq_v.
  j["num_global_key_value_heads"] = 1;
  EXPECT_EQ(parse_config(j, "cfg.json").layers[5].num_kv_heads, 4);
  j["attention_k_eq_v"] = true;
  EXPECT_EQ(parse_config(j, "cfg.json").layers[5].num_kv_heads, 1);
}

TEST(Config, ToleratesMultimodalTowers) {
  json j = {{"architectures", {"Gemma4ForConditionalGeneration"}},
            {"model_type", "gemma4"},
            {"text_config", kitchen_sink()},
            {"vision_config", {{"model_type", "gemma4_vision"}, {"hidden_size", 32}}},
            {"audio_config", {{"model_type", "gemma4_audio"}}}};
  EXPECT_EQ(parse_config(j, "cfg.json").tensor_prefix, "model.language_model.");
}

TEST(Config, ErrorsNameTheKey) {
  struct Case {
    const char* key;
    json value;
    const char* expect;  // substring of the error
  };
  const Case cases[] = {
      {"num_attention_heads", 3, "num_attention_heads"},  // 3 % 2 kv heads
      {"num_key_value_heads", "two", "'num_key_value_heads' must be an integer"},
      {"hidden_size", -5, "'hidden_size'"},
      {"head_dim", 15, "head_dim 15 is odd"},
      {"layer_types", json::array({"sliding_attention"}), "layer_types has 1 entries"},
      {"layer_types",
       json::array({"sliding_attention", "full_attention", "local", "full_attention",
                    "sliding_attention", "full_attention"}),
       "layer_types[2]"},
      {"rope_parameters",
       json{{"sliding_attention", {{"rope_type", "default"}, {"rope_theta", 1e4}}},
            {"full_attention", {{"rope_type", "yarn"}, {"rope_theta", 1e6}}}},
       "rope_parameters.full_attention"},
      {"hidden_activation", "silu", "hidden_activation"},
      {"attention_bias", true, "attention_bias"},
      {"num_kv_shared_layers", 6, "num_kv_shared_layers"},
      {"top_k_experts", 9, "top_k_experts"},
      {"final_logit_softcapping", -1.0, "final_logit_softcapping"},
      {"use_bidirectional_attention", "all", "use_bidirectional_attention"},
      {"per_layer_config", json{{"9", {{"head_dim", 32}}}}, "per_layer_config.9"},
      {"per_layer_config", json{{"1", {{"sliding_window", 32}}}}, "sliding_window"},
      {"per_layer_config", json{{"1", {{"intermediate_size", 32}}}}, "intermediate_size"},
      {"per_layer_config", json{{"full_attention", {{"head_dim", 32}}}}, "not a layer index"},
      {"per_layer_config", json{{"-1", {{"head_dim", 32}}}}, "not a layer index"},
      {"rope_parameters", json{{"full_attention", {{"rope_type", "default"}, {"rope_theta", 1e4}}}},
       "no 'sliding_attention' entry"},
      {"rope_parameters",
       json{{"sliding_attention", {{"rope_type", "default"}}},
            {"full_attention", {{"rope_type", "default"}, {"rope_theta", 1e4}}}},
       "rope_parameters.sliding_attention: required key 'rope_theta'"},
      {"model_type", "llama", "model_type 'llama'"},
      {"eos_token_id", "x", "eos_token_id"},
  };
  for (const Case& c : cases) {
    json j = kitchen_sink();
    j[c.key] = c.value;
    const std::string err = error_of(j);
    EXPECT_NE(err.find(c.expect), std::string::npos) << c.key << ": got '" << err << "'";
    EXPECT_NE(err.find("cfg.json"), std::string::npos) << err;
  }
  // A shared layer whose type has no earlier owner.
  json j = kitchen_sink();
  j["layer_types"] = {"sliding_attention", "sliding_attention", "sliding_attention",
                      "sliding_attention", "full_attention",    "full_attention"};
  EXPECT_NE(error_of(j).find("no earlier non-shared layer"), std::string::npos) << error_of(j);
}

TEST(Config, RequiredKeysAreNamed) {
  for (const char* key : {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                          "num_attention_heads", "num_key_value_heads", "head_dim"}) {
    json j = kitchen_sink();
    j.erase(key);
    EXPECT_NE(error_of(j).find(std::string("required key '") + key + "' is missing"),
              std::string::npos)
        << key << ": " << error_of(j);
    // null counts as missing (transformers writes null for unset optionals).
    j[key] = nullptr;
    EXPECT_NE(error_of(j).find(key), std::string::npos) << key;
    // Nested form: the error names text_config.
    json n = {{"model_type", "gemma4"}, {"text_config", kitchen_sink()}};
    n["text_config"].erase(key);
    EXPECT_NE(error_of(n).find("text_config: required key"), std::string::npos) << error_of(n);
  }
}

// transformers 5.23 ties on the config of the class it loads: for Gemma4ForConditionalGeneration
// that is the top-level value (text_config's, which it writes as true, is not read).
TEST(Config, TieWordEmbeddingsFollowsTheLoadedClass) {
  json n = {{"model_type", "gemma4"}, {"text_config", kitchen_sink()}};
  n["text_config"]["tie_word_embeddings"] = true;
  n["tie_word_embeddings"] = false;
  EXPECT_FALSE(parse_config(n, "cfg.json").tie_word_embeddings);
  n["text_config"]["tie_word_embeddings"] = false;
  n["tie_word_embeddings"] = true;
  EXPECT_TRUE(parse_config(n, "cfg.json").tie_word_embeddings);
  n.erase("tie_word_embeddings");  // Gemma4Config's default
  EXPECT_TRUE(parse_config(n, "cfg.json").tie_word_embeddings);
  json f = kitchen_sink();  // flat: its own key
  f["tie_word_embeddings"] = false;
  EXPECT_FALSE(parse_config(f, "cfg.json").tie_word_embeddings);
}

TEST(Config, RopeEntriesAsTransformersReadsThem) {
  json j = kitchen_sink();
  // Proportional without partial_rotary_factor rotates everything (HF's .get(..., 1.0)).
  j["rope_parameters"]["full_attention"].erase("partial_rotary_factor");
  EXPECT_DOUBLE_EQ(parse_config(j, "cfg.json").rope_full.partial_rotary_factor, 1.0);
  // A top-level partial_rotary_factor / rope_theta fills entries that lack them.
  j["partial_rotary_factor"] = 0.5;
  EXPECT_DOUBLE_EQ(parse_config(j, "cfg.json").rope_full.partial_rotary_factor, 0.5);
  j["rope_parameters"]["sliding_attention"].erase("rope_theta");
  j["rope_theta"] = 12345.0;
  EXPECT_DOUBLE_EQ(parse_config(j, "cfg.json").rope_sliding.theta, 12345.0);
  // The legacy "type" key, and a default-type entry ignores partial_rotary_factor.
  j = kitchen_sink();
  j["rope_parameters"]["full_attention"] = {{"type", "proportional"}, {"rope_theta", 1e6}};
  EXPECT_EQ(parse_config(j, "cfg.json").rope_full.type, "proportional");
  j["rope_parameters"]["sliding_attention"]["partial_rotary_factor"] = 0.5;
  EXPECT_DOUBLE_EQ(parse_config(j, "cfg.json").rope_sliding.partial_rotary_factor, 1.0);
  // Absent or null: Gemma4TextConfig's defaults.
  j["rope_parameters"] = nullptr;
  EXPECT_DOUBLE_EQ(parse_config(j, "cfg.json").rope_full.partial_rotary_factor, 0.25);
  EXPECT_DOUBLE_EQ(parse_config(j, "cfg.json").rope_full.theta, 1e6);
}

// With a per_layer_config key present, the flat global keys are ignored (transformers pops them
// and builds nothing): {} means every layer uses head_dim / num_key_value_heads.
TEST(Config, PerLayerConfigPresenceReplacesTheFlatKeys) {
  json j = kitchen_sink();  // head_dim 16, global_head_dim 32, 2 KV heads, 1 global, k_eq_v
  j["per_layer_config"] = json::object();
  Config c = parse_config(j, "cfg.json");
  for (const LayerSpec& s : c.layers) {
    EXPECT_EQ(s.head_dim, 16);
    EXPECT_EQ(s.num_kv_heads, 2);
  }
  j["per_layer_config"] = nullptr;
  EXPECT_EQ(parse_config(j, "cfg.json").layers[1].head_dim, 16);
  // Entries with only the KV heads keep head_dim; zero-padded keys name the layer.
  const json kv1 = {{"num_key_value_heads", 1}};
  j["per_layer_config"] = {{"01", kv1}, {"3", kv1}, {"5", kv1}};
  c = parse_config(j, "cfg.json");
  EXPECT_EQ(c.layers[1].head_dim, 16);
  EXPECT_EQ(c.layers[1].num_kv_heads, 1);
  EXPECT_EQ(c.layers[0].num_kv_heads, 2);
  const json hd32 = {{"head_dim", 32}};
  j["per_layer_config"] = {{"1", hd32}, {"3", hd32}, {"5", hd32}};
  c = parse_config(j, "cfg.json");
  EXPECT_EQ(c.layers[3].head_dim, 32);
  EXPECT_EQ(c.layers[3].num_kv_heads, 2);
  // An override equal to the global value is dropped, as transformers does.
  j["per_layer_config"] = {{"1", {{"intermediate_size", 96}, {"sliding_window", 4}}}};
  EXPECT_EQ(parse_config(j, "cfg.json").layers[1].intermediate, 96);
}

TEST(Config, MissingFile) {
  try {
    load_config("/nonexistent/model");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/model/config.json"), std::string::npos);
  }
}

TEST(Rope, ProportionalFrequenciesHaveZeroTail) {
  RopeConfig r{"proportional", 1e6, 0.25, 1.0};
  const std::vector<float> f = rope_inv_freq(r, 512);
  ASSERT_EQ(f.size(), 256u);
  // 64 rotated angles with denominator 512 (the full head dim), then 192 zeros (spec §3.4).
  EXPECT_FLOAT_EQ(f[0], 1.0f);
  EXPECT_NEAR(f[1], std::pow(1e6, -2.0 / 512), 1e-7);  // fp32, as HF
  EXPECT_NEAR(f[63], std::pow(1e6, -126.0 / 512), 1e-7);
  for (int j = 64; j < 256; ++j) EXPECT_EQ(f[static_cast<size_t>(j)], 0.0f) << j;
  const std::vector<float> d = rope_inv_freq(RopeConfig{"default", 1e4, 1.0, 1.0}, 256);
  ASSERT_EQ(d.size(), 128u);
  EXPECT_NEAR(d[127], std::pow(1e4, -254.0 / 256), 1e-7);
}

}  // namespace
}  // namespace fc::gemma4
