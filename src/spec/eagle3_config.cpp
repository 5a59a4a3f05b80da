#include "spec/eagle3_config.h"

#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_limits.h"

namespace fc::spec {
namespace {

using nlohmann::json;

// Reads from one JSON object, naming `where` (file and sub-object) in every error.
struct Reader {
  const json& j;
  std::string where;

  bool has(const char* k) const { return j.contains(k) && !j[k].is_null(); }
  int integer(const char* k) const {
    if (!has(k)) fail(where, ": missing \"", k, "\"");
    if (!j[k].is_number_integer() || j[k].get<int64_t>() < 0)
      fail(where, ": \"", k, "\" must be a non-negative integer");
    return j[k].get<int>();
  }
  int integer(const char* k, int dflt) const { return has(k) ? integer(k) : dflt; }
  double number(const char* k, double dflt) const {
    if (!has(k)) return dflt;
    if (!j[k].is_number()) fail(where, ": \"", k, "\" must be a number");
    return j[k].get<double>();
  }
  bool boolean(const char* k, bool dflt) const {
    if (!has(k)) return dflt;
    if (!j[k].is_boolean()) fail(where, ": \"", k, "\" must be true or false");
    return j[k].get<bool>();
  }
  std::string string(const char* k, const std::string& dflt) const {
    if (!has(k)) return dflt;
    if (!j[k].is_string()) fail(where, ": \"", k, "\" must be a string");
    return j[k].get<std::string>();
  }
  // A feature the drafter does not implement: refused when enabled.
  void refuse_true(const char* k, const char* what) const {
    if (boolean(k, false))
      fail(where, ": \"", k, "\": true (", what,
           ") is not supported by fourcast's EAGLE-3 drafter");
  }
};

// RoPE from `rope_parameters` (transformers >= 5) or `rope_theta` + `rope_scaling` (4.x).
Eagle3Rope parse_rope(const Reader& r) {
  Eagle3Rope rope;
  const json* p = nullptr;
  std::string where = r.where;
  if (r.has("rope_parameters")) {
    p = &r.j["rope_parameters"];
    where += " rope_parameters";
  } else if (r.has("rope_scaling")) {
    p = &r.j["rope_scaling"];
    where += " rope_scaling";
  }
  rope.theta = r.number("rope_theta", 10000.0);
  if (!p) return rope;
  if (!p->is_object()) fail(where, " must be an object");
  const Reader s{*p, where};
  rope.theta = s.number("rope_theta", rope.theta);
  rope.type = s.string("rope_type", s.string("type", "default"));
  rope.factor = s.number("factor", 1.0);
  rope.low_freq_factor = s.number("low_freq_factor", 1.0);
  rope.high_freq_factor = s.number("high_freq_factor", 4.0);
  rope.original_max_position_embeddings = s.integer("original_max_position_embeddings", 8192);
  if (rope.type != "default" && rope.type != "linear" && rope.type != "llama3")
    fail(where, ": rope_type \"", rope.type,
         "\" is not supported by the EAGLE-3 drafter (default, linear, llama3)");
  if (!(rope.theta > 0) || !(rope.factor > 0)) fail(where, ": rope_theta and factor must be > 0");
  return rope;
}

// The draft decoder's geometry from a Llama/Qwen3-style HF config object.
void parse_layer_config(const Reader& r, Eagle3Config& c) {
  c.model_type = r.string("model_type", "llama");
  if (c.model_type != "llama" && c.model_type != "qwen3")
    fail(r.where, ": model_type \"", c.model_type,
         "\" is not supported for the EAGLE-3 decoder layer (llama, qwen3)");
  c.hidden_size = r.integer("hidden_size");
  c.num_hidden_layers = r.integer("num_hidden_layers", 1);
  if (c.num_hidden_layers != 1)
    fail(r.where, ": num_hidden_layers ", c.num_hidden_layers,
         ": only one-layer EAGLE-3 heads are supported");
  c.num_attention_heads = r.integer("num_attention_heads");
  c.num_key_value_heads = r.integer("num_key_value_heads", c.num_attention_heads);
  if (c.num_attention_heads == 0 || c.num_key_value_heads == 0 ||
      c.num_attention_heads % c.num_key_value_heads != 0)
    fail(r.where, ": num_attention_heads ", c.num_attention_heads,
         " must be a positive multiple of num_key_value_heads ", c.num_key_value_heads);
  c.head_dim = r.integer("head_dim", c.hidden_size / c.num_attention_heads);
  if (c.head_dim <= 0 || c.head_dim % 2 != 0) fail(r.where, ": head_dim must be positive and even");
  c.intermediate_size = r.integer("intermediate_size");
  c.rms_norm_eps = r.number("rms_norm_eps", 1e-6);
  c.vocab_size = r.integer("vocab_size");
  const std::string act = r.string("hidden_act", "silu");
  if (act != "silu") fail(r.where, ": hidden_act \"", act, "\" is not supported (silu)");
  r.refuse_true("attention_bias", "biased q/k/v/o projections");
  r.refuse_true("mlp_bias", "biased MLP projections");
  c.rope = parse_rope(r);
}

std::vector<int> parse_ids(const json& v, const std::string& where) {
  std::vector<int> ids;
  if (v.is_null()) return ids;
  if (!v.is_array() || v.empty()) fail(where, " must be a non-empty list of layer ids or null");
  for (const json& x : v) {
    if (!x.is_number_integer() || x.get<int64_t>() < 0)
      fail(where, " must hold non-negative integers");
    ids.push_back(x.get<int>());
  }
  return ids;
}

}  // namespace

Eagle3Config parse_eagle3_config(const json& root, const std::string& source) {
  if (!root.is_object()) fail(source, ": not a JSON object");
  const Reader top{root, source};
  Eagle3Config c;
  c.source = source;
  const bool speculators = top.string("speculators_model_type", "") == "eagle3";
  bool eagle3_arch = false;
  if (top.has("architectures") && root["architectures"].is_array())
    for (const json& a : root["architectures"])
      if (a.is_string() && a.get<std::string>().find("Eagle3") != std::string::npos)
        eagle3_arch = true;
  if (speculators) {
    if (!top.has("transformer_layer_config") || !root["transformer_layer_config"].is_object())
      fail(source, ": missing \"transformer_layer_config\" (the draft decoder's HF config)");
    parse_layer_config({root["transformer_layer_config"], source + " transformer_layer_config"}, c);
    c.layer_prefix = "layers.0.";
    c.norm_before_residual = top.boolean("norm_before_residual", true);
    if (top.has("eagle_aux_hidden_state_layer_ids"))
      c.aux_layer_ids = parse_ids(root["eagle_aux_hidden_state_layer_ids"],
                                  source + " eagle_aux_hidden_state_layer_ids");
    if (top.has("speculators_config")) {
      const json& sc = root["speculators_config"];
      if (sc.contains("proposal_methods") && sc["proposal_methods"].is_array())
        for (const json& m : sc["proposal_methods"])
          if (m.is_object() && m.contains("speculative_tokens") &&
              m["speculative_tokens"].is_number_integer()) {
            c.speculative_tokens = m["speculative_tokens"].get<int>();
            break;
          }
    }
  } else if (eagle3_arch) {
    parse_layer_config(top, c);
    c.layer_prefix = "midlayer.";
    c.norm_before_residual = top.boolean("norm_before_residual", false);
    if (top.has("eagle_config")) {
      const json& ec = root["eagle_config"];
      if (!ec.is_object()) fail(source, ": \"eagle_config\" must be an object");
      const Reader e{ec, source + " eagle_config"};
      if (!e.boolean("use_aux_hidden_state", true))
        fail(source,
             ": eagle_config.use_aux_hidden_state is false (an EAGLE-1/2 head, not EAGLE-3)");
      if (e.has("eagle_aux_hidden_state_layer_ids"))
        c.aux_layer_ids = parse_ids(ec["eagle_aux_hidden_state_layer_ids"],
                                    source + " eagle_config.eagle_aux_hidden_state_layer_ids");
    }
    if (c.aux_layer_ids.empty() && top.has("eagle_aux_hidden_state_layer_ids"))
      c.aux_layer_ids = parse_ids(root["eagle_aux_hidden_state_layer_ids"],
                                  source + " eagle_aux_hidden_state_layer_ids");
  } else {
    fail(source,
         ": not an EAGLE-3 drafter (needs speculators_model_type \"eagle3\" or an "
         "Eagle3 architecture such as LlamaForCausalLMEagle3)");
  }
  top.refuse_true("norm_before_fc", "one RMSNorm over the concatenated aux states");
  top.refuse_true("fc_norm", "one RMSNorm per aux chunk");
  top.refuse_true("norm_output", "feeding the post-norm state back");
  c.draft_vocab_size = top.integer("draft_vocab_size", c.vocab_size);
  if (c.draft_vocab_size <= 0 || c.draft_vocab_size > c.vocab_size)
    fail(source, ": draft_vocab_size ", c.draft_vocab_size, " must be in [1, vocab_size ",
         c.vocab_size, "]");
  c.target_hidden_size = top.integer("target_hidden_size", c.hidden_size);
  c.logit_scale = top.number("logit_scale", 1.0);
  return c;
}

Eagle3Config load_eagle3_config(const std::string& dir) {
  const std::string path = dir + "/config.json";
  if (!std::ifstream(path))
    fail(path, ": cannot open (is '", dir, "' an EAGLE-3 drafter directory?)");
  const json j = read_json_file(path);
  Eagle3Config c = parse_eagle3_config(j, path);
  c.quant = quant::load_quant_config(dir, j);
  return c;
}

std::vector<int> check_eagle3_target(const Eagle3Config& c, const gemma4::Config& t) {
  const int L = t.num_hidden_layers;
  if (c.vocab_size != t.vocab_size)
    fail(c.source, ": the drafter was made for a vocabulary of ", c.vocab_size,
         " tokens but the target has ", t.vocab_size, " (drafter and target do not match)");
  if (c.target_hidden_size != t.hidden_size)
    fail(c.source, ": the drafter's fc takes 3 x ", c.target_hidden_size,
         " inputs but the target's hidden size is ", t.hidden_size,
         " (drafter and target do not match)");
  std::vector<int> ids = c.aux_layer_ids;
  if (ids.empty()) ids = {2, L / 2, L - 3};  // vLLM / speculators default
  if (ids.size() != 3)
    fail(c.source, ": eagle_aux_hidden_state_layer_ids has ", ids.size(),
         " entries; the fc layer concatenates exactly 3");
  for (int id : ids)
    if (id < 0 || id >= L)
      fail(c.source, ": aux hidden-state layer id ", id, " is outside the target's layers [0, ", L,
           ") (id i = the residual entering target layer i)");
  return ids;
}

std::vector<float> eagle3_inv_freq(const Eagle3Rope& r, int head_dim) {
  const int half = head_dim / 2;
  std::vector<float> f(static_cast<size_t>(half));
  const float base = static_cast<float>(r.theta);
  for (int j = 0; j < half; ++j)
    f[static_cast<size_t>(j)] =
        1.0f / std::pow(base, static_cast<float>(2 * j) / static_cast<float>(head_dim));
  if (r.type == "linear") {
    for (float& x : f) x /= static_cast<float>(r.factor);
  } else if (r.type == "llama3") {
    // transformers _compute_llama3_parameters: long wavelengths slowed by `factor`, short ones
    // kept, the band between interpolated.
    const double old_ctx = r.original_max_position_embeddings;
    const double low_wl = old_ctx / r.low_freq_factor, high_wl = old_ctx / r.high_freq_factor;
    for (float& x : f) {
      const double wl = 2.0 * M_PI / x;
      double v = wl > low_wl ? x / r.factor : x;
      if (!(wl < high_wl) && !(wl > low_wl)) {
        const double s =
            (old_ctx / wl - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor);
        v = (1.0 - s) * v / r.factor + s * v;
      }
      x = static_cast<float>(v);
    }
  }
  return f;
}

}  // namespace fc::spec
