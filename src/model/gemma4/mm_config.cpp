#include "model/gemma4/mm_config.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/gemma4/config_reader.h"

namespace fc::gemma4 {

using nlohmann::json;

MultimodalConfig parse_multimodal_config(const json& root, const std::string& source) {
  MultimodalConfig m;
  if (!root.is_object() || !root.contains("text_config") || root["text_config"].is_null()) return m;
  m.conditional = true;
  detail::Reader top{root, source};
  m.boi_token_id = top.integer("boi_token_id", m.boi_token_id);
  m.eoi_token_id = top.integer("eoi_token_id", m.eoi_token_id);
  m.image_token_id = top.integer("image_token_id", m.image_token_id);
  m.video_token_id = top.integer("video_token_id", m.video_token_id);
  m.audio_token_id = top.integer("audio_token_id", m.audio_token_id);
  m.boa_token_id = top.integer("boa_token_id", m.boa_token_id);
  m.eoa_token_id = top.integer("eoa_token_index", top.integer("eoa_token_id", m.eoa_token_id));
  m.has_audio = top.get("audio_config") != nullptr;
  const json* vj = top.get("vision_config");
  if (!vj) return m;
  const std::string where = source + ": vision_config";
  if (!vj->is_object()) fail(where, " must be an object");
  detail::Reader r{*vj, where};
  VisionConfig v;
  const std::string type = r.string("model_type", "gemma4_vision");
  if (type != "gemma4_vision")
    fail(where, ": model_type '", type, "' is not a Gemma 4 vision tower (gemma4_vision)");
  v.hidden_size = r.integer("hidden_size", v.hidden_size, 1);
  v.intermediate_size = r.integer("intermediate_size", v.intermediate_size, 1);
  v.num_hidden_layers = r.integer("num_hidden_layers", v.num_hidden_layers, 1);
  v.num_attention_heads = r.integer("num_attention_heads", v.num_attention_heads, 1);
  v.num_key_value_heads = r.integer("num_key_value_heads", v.num_key_value_heads, 1);
  v.head_dim = r.integer("head_dim", v.head_dim, 1);  // HF Gemma4VisionConfig: 64, not derived
  v.patch_size = r.integer("patch_size", v.patch_size, 1);
  v.pooling_kernel_size = r.integer("pooling_kernel_size", v.pooling_kernel_size, 1);
  v.position_embedding_size = r.integer("position_embedding_size", v.position_embedding_size, 1);
  v.rms_norm_eps = r.number("rms_norm_eps", v.rms_norm_eps);
  v.use_clipped_linears = r.boolean("use_clipped_linears", v.use_clipped_linears);
  v.standardize = r.boolean("standardize", v.standardize);
  v.default_output_length = r.integer("default_output_length", v.default_output_length, 1);
  const std::string act = r.string("hidden_activation", "gelu_pytorch_tanh");
  if (act != "gelu_pytorch_tanh")
    fail(where, ": hidden_activation '", act, "' is not supported (gelu_pytorch_tanh)");
  if (const json* rp = r.get("rope_parameters")) {
    if (!rp->is_object()) fail(where, ": rope_parameters must be an object");
    detail::Reader rr{*rp, where + ": rope_parameters"};
    // transformers 5.23 names the 2-D RoPE "axial"; the converter and the spec say "default".
    const std::string rt = rr.string("rope_type", "default");
    if (rt != "default" && rt != "axial")
      fail(where, ": rope_parameters.rope_type '", rt, "' is not supported (axial, default)");
    v.rope_theta = rr.number("rope_theta", v.rope_theta);
  } else {
    v.rope_theta = r.number("rope_theta", v.rope_theta);
  }
  if (!(v.rope_theta > 0)) fail(where, ": rope_theta must be positive");
  if (v.head_dim % 4 != 0)
    fail(where, ": head_dim ", v.head_dim, " must be divisible by 4 (two RoPE axes of pairs)");
  if (v.num_attention_heads % v.num_key_value_heads != 0)
    fail(where, ": num_attention_heads ", v.num_attention_heads,
         " is not a multiple of num_key_value_heads ", v.num_key_value_heads);
  m.vision = v;
  return m;
}

}  // namespace fc::gemma4
