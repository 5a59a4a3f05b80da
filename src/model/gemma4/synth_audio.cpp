#include "model/gemma4/synth_audio.h"

#include <cmath>
#include <cstring>
#include <string>

#include "core/half.h"
#include "model/gemma4/audio_config.h"
#include "model/gemma4/synth.h"

namespace fc::gemma4 {

void add_audio_config(nlohmann::json& root) {
  root["audio_config"] = {{"model_type", "gemma4_audio"},
                          {"hidden_size", 1024},
                          {"num_hidden_layers", 12},
                          {"num_attention_heads", 8},
                          {"hidden_act", "silu"},
                          {"subsampling_conv_channels", {128, 32}},
                          {"conv_kernel_size", 5},
                          {"residual_weight", 0.5},
                          {"attention_chunk_size", 12},
                          {"attention_context_left", 13},
                          {"attention_context_right", 0},
                          {"attention_logit_cap", 50.0},
                          {"attention_invalid_logits_value", -1.0e9},
                          {"use_clipped_linears", true},
                          {"rms_norm_eps", 1e-6},
                          {"gradient_clipping", 1e10},
                          {"output_proj_dims", 1536}};
  root["audio_token_id"] = 258881;
  root["boa_token_id"] = 256000;
  root["eoa_token_index"] = 258883;
}

int64_t add_audio_tensors(const nlohmann::json& root, int text_hidden, float std, uint64_t& salt,
                          std::vector<TensorSource>& ts) {
  const auto cfg = parse_audio_config(root, "synth config");
  if (!cfg) return 0;
  const AudioConfig& c = *cfg;
  const float hw = std * std::sqrt(3.0f);
  int64_t params = 0;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, float center, float half) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    params += n;
    ts.push_back(synth_random_bf16(name, std::move(shape), salt = synth_mix(salt), center, half));
  };
  auto bound = [&](const std::string& name, float v) {  // a 0-d BF16 clip bound
    TensorSource t;
    t.name = name;
    t.dtype = DType::kBF16;
    t.shape = {};
    const uint16_t b = f32_to_bf16(v);
    t.fill = [b](uint8_t* dst, uint64_t, uint64_t len) {
      for (uint64_t i = 0; i + 2 <= len; i += 2) std::memcpy(dst + i, &b, 2);
    };
    ++params;
    ts.push_back(std::move(t));
  };
  const std::string p = "model.audio_tower.";
  auto clipped = [&](const std::string& m, int64_t rows, int64_t cols) {
    add(m + ".linear.weight", {rows, cols}, 0.0f, hw);
    bound(m + ".input_min", -INFINITY);
    bound(m + ".input_max", INFINITY);
    bound(m + ".output_min", -INFINITY);
    bound(m + ".output_max", INFINITY);
  };
  auto norm = [&](const std::string& name, int64_t n) { add(name, {n}, 1.0f, 0.1f); };
  const int64_t H = c.hidden_size, C0 = c.subsampling_conv_channels[0],
                C1 = c.subsampling_conv_channels[1], D = c.head_dim();
  const int64_t F2 = ((c.n_mels - 1) / 2 + 1 - 1) / 2 + 1;
  // Conv weights see 9·Cin inputs each; a larger spread keeps the LayerNorm inputs away from 0.
  add(p + "subsample_conv_projection.layer0.conv.weight", {C0, 1, 3, 3}, 0.0f, 0.5f);
  norm(p + "subsample_conv_projection.layer0.norm.weight", C0);
  add(p + "subsample_conv_projection.layer1.conv.weight", {C1, C0, 3, 3}, 0.0f, 0.05f);
  norm(p + "subsample_conv_projection.layer1.norm.weight", C1);
  add(p + "subsample_conv_projection.input_proj_linear.weight", {H, F2 * C1}, 0.0f, hw);
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    const std::string l = p + "layers." + std::to_string(i) + ".";
    for (const char* ff : {"feed_forward1.", "feed_forward2."}) {
      clipped(l + ff + "ffw_layer_1", 4 * H, H);
      clipped(l + ff + "ffw_layer_2", H, 4 * H);
      norm(l + ff + "pre_layer_norm.weight", H);
      norm(l + ff + "post_layer_norm.weight", H);
    }
    for (const char* m : {"q_proj", "k_proj", "v_proj", "post"})
      clipped(l + "self_attn." + m, H, H);
    add(l + "self_attn.relative_k_proj.weight", {H, H}, 0.0f, hw);
    add(l + "self_attn.per_dim_scale", {D}, 0.0f, 0.1f);
    clipped(l + "lconv1d.linear_start", 2 * H, H);
    clipped(l + "lconv1d.linear_end", H, H);
    add(l + "lconv1d.depthwise_conv1d.weight", {H, 1, c.conv_kernel_size}, 0.0f, 0.3f);
    norm(l + "lconv1d.pre_layer_norm.weight", H);
    norm(l + "lconv1d.conv_norm.weight", H);
    for (const char* n : {"norm_pre_attn", "norm_post_attn", "norm_out"})
      norm(l + n + ".weight", H);
  }
  add(p + "output_proj.weight", {c.output_proj_dims, H}, 0.0f, hw);
  add(p + "output_proj.bias", {c.output_proj_dims}, 0.0f, hw);
  add("model.embed_audio.embedding_projection.weight", {text_hidden, c.output_proj_dims}, 0.0f, hw);
  return params;
}

}  // namespace fc::gemma4
