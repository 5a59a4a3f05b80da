#include "model/gemma4/audio_config.h"

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace fc::gemma4 {

using nlohmann::json;

namespace {

const json* key(const json& o, const char* k) {
  auto it = o.find(k);
  return it == o.end() || it->is_null() ? nullptr : &*it;
}

int int_key(const json& o, const char* k, int dflt, int min_value, const std::string& where) {
  const json* v = key(o, k);
  if (!v) return dflt;
  if (!v->is_number_integer()) fail(where, ": key '", k, "' must be an integer, got ", v->dump());
  const int64_t x = v->get<int64_t>();
  if (x < min_value || x > (int64_t{1} << 30))
    fail(where, ": key '", k, "' = ", x, " is out of range (min ", min_value, ")");
  return static_cast<int>(x);
}

double num_key(const json& o, const char* k, double dflt, const std::string& where) {
  const json* v = key(o, k);
  if (!v) return dflt;
  if (!v->is_number()) fail(where, ": key '", k, "' must be a number, got ", v->dump());
  return v->get<double>();
}

}  // namespace

std::optional<AudioConfig> parse_audio_config(const json& root, const std::string& source) {
  if (!root.is_object()) return std::nullopt;
  const json* a = key(root, "audio_config");
  if (!a) return std::nullopt;
  const std::string where = source + ": audio_config";
  if (!a->is_object()) fail(where, " must be an object");
  AudioConfig c;
  const std::string type = a->value("model_type", "gemma4_audio");
  if (type != "gemma4_audio")
    fail(where, ": model_type '", type, "' is not a Gemma 4 audio tower (gemma4_audio)");
  c.hidden_size = int_key(*a, "hidden_size", c.hidden_size, 1, where);
  c.num_hidden_layers = int_key(*a, "num_hidden_layers", c.num_hidden_layers, 0, where);
  c.num_attention_heads = int_key(*a, "num_attention_heads", c.num_attention_heads, 1, where);
  if (c.hidden_size % c.num_attention_heads != 0)
    fail(where, ": hidden_size ", c.hidden_size, " is not a multiple of num_attention_heads ",
         c.num_attention_heads);
  if (const json* ch = key(*a, "subsampling_conv_channels")) {
    if (!ch->is_array() || ch->size() != 2 || !(*ch)[0].is_number_integer() ||
        !(*ch)[1].is_number_integer() || (*ch)[0].get<int>() < 1 || (*ch)[1].get<int>() < 1)
      fail(where, ": subsampling_conv_channels must be two positive integers, got ", ch->dump());
    c.subsampling_conv_channels = {(*ch)[0].get<int>(), (*ch)[1].get<int>()};
  }
  c.conv_kernel_size = int_key(*a, "conv_kernel_size", c.conv_kernel_size, 1, where);
  c.residual_weight = num_key(*a, "residual_weight", c.residual_weight, where);
  c.attention_chunk_size = int_key(*a, "attention_chunk_size", c.attention_chunk_size, 1, where);
  c.attention_context_left =
      int_key(*a, "attention_context_left", c.attention_context_left, 2, where);
  c.attention_context_right =
      int_key(*a, "attention_context_right", c.attention_context_right, 0, where);
  // HF's relative positions cover distances 0 .. (chunk + left − 1) / 2; look-ahead changes the
  // chunk geometry. Released checkpoints: chunk 12, left 13, right 0.
  if (c.attention_context_right != 0)
    fail(where, ": attention_context_right = ", c.attention_context_right,
         " is not supported (0: causal local attention)");
  if (c.attention_chunk_size < c.attention_context_left - 1)
    fail(where, ": attention_chunk_size ", c.attention_chunk_size,
         " < attention_context_left - 1 is not supported (relative positions would not cover "
         "the window)");
  c.attention_logit_cap = num_key(*a, "attention_logit_cap", c.attention_logit_cap, where);
  if (!(c.attention_logit_cap > 0)) fail(where, ": attention_logit_cap must be > 0");
  if (const json* v = key(*a, "use_clipped_linears")) {
    if (!v->is_boolean()) fail(where, ": key 'use_clipped_linears' must be true or false");
    c.use_clipped_linears = v->get<bool>();
  }
  c.rms_norm_eps = num_key(*a, "rms_norm_eps", c.rms_norm_eps, where);
  c.gradient_clipping = num_key(*a, "gradient_clipping", c.gradient_clipping, where);
  if (!(c.gradient_clipping > 0)) fail(where, ": gradient_clipping must be > 0");
  c.output_proj_dims = int_key(*a, "output_proj_dims", c.output_proj_dims, 1, where);
  const std::string act = a->value("hidden_act", "silu");
  if (act != "silu" && act != "swish")
    fail(where, ": hidden_act '", act, "' is not supported (silu)");
  c.audio_token_id = int_key(root, "audio_token_id", c.audio_token_id, 0, source);
  c.boa_token_id = int_key(root, "boa_token_id", c.boa_token_id, 0, source);
  c.eoa_token_id = int_key(root, "eoa_token_index",
                           int_key(root, "eoa_token_id", c.eoa_token_id, 0, source), 0, source);
  return c;
}

}  // namespace fc::gemma4
