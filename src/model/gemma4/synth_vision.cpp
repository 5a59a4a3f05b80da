// Vision towers of synthetic checkpoints (synth.h): the published geometry per shape (spec
// multimodal.md §1.1, §1.4) and random BF16 tensors under model.vision_tower / model.embed_vision.
#include "model/gemma4/synth_vision.h"

#include <cmath>
#include <cstring>

#include "model/gemma4/synth.h"

namespace fc::gemma4 {

using nlohmann::json;

json synth_vision_config(const std::string& shape) {
  const bool small = shape == "e2b" || shape == "e4b";
  json v = {{"model_type", "gemma4_vision"},
            {"hidden_size", small ? 768 : 1152},
            {"intermediate_size", small ? 3072 : 4304},
            {"num_hidden_layers", small ? 16 : 27},
            {"num_attention_heads", small ? 12 : 16},
            {"num_key_value_heads", small ? 12 : 16},
            {"head_dim", small ? 64 : 72},
            {"global_head_dim", small ? 64 : 72},
            {"hidden_activation", "gelu_pytorch_tanh"},
            {"rms_norm_eps", 1e-6},
            {"patch_size", 16},
            {"pooling_kernel_size", 3},
            {"position_embedding_size", 10240},
            {"rope_parameters", {{"rope_type", "default"}, {"rope_theta", 100.0}}},
            {"use_clipped_linears", small},
            {"standardize", !small},
            {"default_output_length", 280}};
  return v;
}

void add_multimodal_ids(json& root) {
  root["boi_token_id"] = 255999;
  root["eoi_token_id"] = 258882;
  root["image_token_id"] = 258880;
  root["video_token_id"] = 258884;
  root["audio_token_id"] = 258881;
  root["boa_token_id"] = 256000;
  root["eoa_token_index"] = 258883;
}

namespace {

TensorSource f32_value(const std::string& name, float v) {
  TensorSource t;
  t.name = name;
  t.dtype = DType::kF32;
  t.shape = {};
  t.fill = [v](uint8_t* dst, uint64_t, uint64_t len) {
    for (uint64_t i = 0; i + 4 <= len; i += 4) std::memcpy(dst + i, &v, 4);
  };
  return t;
}

}  // namespace

int64_t add_synth_vision(const Config& c, float weight_std, uint64_t& salt,
                         std::vector<TensorSource>& ts) {
  if (!c.mm.vision) return 0;
  const VisionConfig& v = *c.mm.vision;
  const int64_t d = v.hidden_size, I = v.intermediate_size, hd = v.head_dim;
  const int64_t Hq = v.num_attention_heads, Hkv = v.num_key_value_heads;
  const float hw = weight_std * std::sqrt(3.0f);
  int64_t params = 0;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, float center, float half) {
    int64_t n = 1;
    for (int64_t x : shape) n *= x;
    params += n;
    ts.push_back(synth_random_bf16(name, std::move(shape), salt = synth_mix(salt), center, half));
  };
  const std::string T = "model.vision_tower.";
  add(T + "patch_embedder.input_proj.weight", {d, 3 * int64_t{v.patch_size} * v.patch_size}, 0, hw);
  add(T + "patch_embedder.position_embedding_table", {2, v.position_embedding_size, d}, 0, 0.5f);
  auto linear = [&](const std::string& m, int64_t rows, int64_t cols) {
    add(m + ".linear.weight", {rows, cols}, 0, hw);
    if (!v.use_clipped_linears) return;
    // Wide bounds: the random activations are never clipped, the ops still run.
    ts.push_back(f32_value(m + ".input_min", -1e4f));
    ts.push_back(f32_value(m + ".input_max", 1e4f));
    ts.push_back(f32_value(m + ".output_min", -1e4f));
    ts.push_back(f32_value(m + ".output_max", 1e4f));
    params += 4;
  };
  for (int i = 0; i < v.num_hidden_layers; ++i) {
    const std::string p = T + "encoder.layers." + std::to_string(i) + ".";
    for (const char* n : {"input_layernorm", "post_attention_layernorm",
                          "pre_feedforward_layernorm", "post_feedforward_layernorm"})
      add(p + n + ".weight", {d}, 1.0f, 0.1f);
    linear(p + "self_attn.q_proj", Hq * hd, d);
    linear(p + "self_attn.k_proj", Hkv * hd, d);
    linear(p + "self_attn.v_proj", Hkv * hd, d);
    linear(p + "self_attn.o_proj", d, Hq * hd);
    add(p + "self_attn.q_norm.weight", {hd}, 1.0f, 0.1f);
    add(p + "self_attn.k_norm.weight", {hd}, 1.0f, 0.1f);
    linear(p + "mlp.gate_proj", I, d);
    linear(p + "mlp.up_proj", I, d);
    linear(p + "mlp.down_proj", d, I);
  }
  if (v.standardize) {
    add(T + "std_bias", {d}, 0.0f, 0.1f);
    add(T + "std_scale", {d}, 1.0f, 0.1f);
  }
  add("model.embed_vision.embedding_projection.weight", {c.hidden_size, d}, 0, hw);
  return params;
}

}  // namespace fc::gemma4
