#include "model/gemma4/config.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/error.h"
#include "model/gemma4/config_reader.h"

namespace fc::gemma4 {

using nlohmann::json;

const char* layer_type_name(LayerType t) {
  return t == LayerType::kFull ? "full_attention" : "sliding_attention";
}

namespace {

using detail::Reader;

LayerType parse_layer_type(const std::string& s, const std::string& where) {
  if (s == "sliding_attention") return LayerType::kSliding;
  if (s == "full_attention") return LayerType::kFull;
  fail(where, ": unknown layer type '", s, "' (expected sliding_attention or full_attention)");
}

RopeConfig parse_rope(const json& j, const std::string& where, RopeConfig dflt) {
  if (!j.is_object()) fail(where, " must be an object");
  Reader r{j, where};
  RopeConfig c = dflt;
  c.type = r.string("rope_type", dflt.type);
  if (c.type != "default" && c.type != "proportional")
    fail(where, ": rope_type '", c.type, "' is not supported (default, proportional)");
  c.theta = r.number("rope_theta", dflt.theta);
  c.partial_rotary_factor = r.number("partial_rotary_factor",
                                     c.type == "proportional" ? dflt.partial_rotary_factor : 1.0);
  c.factor = r.number("factor", 1.0);
  if (!(c.theta > 0)) fail(where, ": rope_theta must be positive");
  if (!(c.partial_rotary_factor > 0 && c.partial_rotary_factor <= 1))
    fail(where, ": partial_rotary_factor must be in (0, 1]");
  if (!(c.factor > 0)) fail(where, ": factor must be positive");
  return c;
}

}  // namespace

Config parse_config(const json& root, const std::string& source) {
  if (!root.is_object()) fail(source, ": config must be a JSON object");
  Config c;
  const json* text = &root;
  std::string where = source;
  const std::string model_type = root.value("model_type", "");
  if (root.contains("architectures") && root["architectures"].is_array() &&
      !root["architectures"].empty() && root["architectures"][0].is_string())
    c.architecture = root["architectures"][0].get<std::string>();
  if (root.contains("text_config") && !root["text_config"].is_null()) {
    // Gemma4ForConditionalGeneration: vision/audio towers are tolerated and ignored.
    text = &root["text_config"];
    where = source + ": text_config";
    if (!text->is_object()) fail(where, " must be an object");
    c.tensor_prefix = "model.language_model.";
  } else {
    c.tensor_prefix = "model.";
  }
  c.mm = parse_multimodal_config(root, source);
  const std::string text_type = text->value("model_type", model_type);
  if (!text_type.empty() && text_type != "gemma4_text" && text_type != "gemma4")
    fail(where, ": model_type '", text_type, "' is not a Gemma 4 text model (gemma4_text)");

  Reader r{*text, where};
  c.vocab_size = r.integer("vocab_size", c.vocab_size, 1);
  c.hidden_size = r.integer("hidden_size", c.hidden_size, 1);
  c.intermediate_size = r.integer("intermediate_size", c.intermediate_size, 1);
  c.num_hidden_layers = r.integer("num_hidden_layers", c.num_hidden_layers, 1);
  c.num_attention_heads = r.integer("num_attention_heads", c.num_attention_heads, 1);
  c.num_key_value_heads = r.integer("num_key_value_heads", c.num_key_value_heads, 1);
  c.head_dim = r.integer("head_dim", c.head_dim, 2);
  c.global_head_dim = r.integer("global_head_dim", c.global_head_dim, 2);
  c.num_global_key_value_heads = r.opt_integer("num_global_key_value_heads", 1);
  c.attention_k_eq_v = r.boolean("attention_k_eq_v", false);
  c.sliding_window = r.integer("sliding_window", c.sliding_window, 1);
  c.rms_norm_eps = r.number("rms_norm_eps", c.rms_norm_eps);
  if (r.get("final_logit_softcapping")) {
    c.final_logit_softcapping = r.number("final_logit_softcapping", 0);
    if (!(*c.final_logit_softcapping > 0)) fail(where, ": final_logit_softcapping must be > 0");
  }
  c.hidden_size_per_layer_input = r.integer("hidden_size_per_layer_input", 256, 0);
  c.vocab_size_per_layer_input = r.integer("vocab_size_per_layer_input", 262144, 0);
  c.num_kv_shared_layers = r.integer("num_kv_shared_layers", 0, 0);
  c.use_double_wide_mlp = r.boolean("use_double_wide_mlp", false);
  c.enable_moe_block = r.boolean("enable_moe_block", false);
  c.tie_word_embeddings = r.boolean("tie_word_embeddings", root.value("tie_word_embeddings", true));
  c.max_position_embeddings = r.integer("max_position_embeddings", c.max_position_embeddings, 1);
  c.pad_token_id = r.integer("pad_token_id", 0);
  c.bos_token_id = r.integer("bos_token_id", 2);
  if (const json* e = r.get("eos_token_id")) {
    if (e->is_number_integer()) {
      c.eos_token_ids = {e->get<int>()};
    } else if (e->is_array()) {
      for (const json& x : *e) {
        if (!x.is_number_integer()) r.bad("eos_token_id", "an integer or a list of integers");
        c.eos_token_ids.push_back(x.get<int>());
      }
    } else {
      r.bad("eos_token_id", "an integer or a list of integers");
    }
  } else {
    c.eos_token_ids = {1};
  }
  const std::string act = r.string("hidden_activation", "gelu_pytorch_tanh");
  if (act != "gelu_pytorch_tanh")
    fail(where, ": hidden_activation '", act, "' is not supported (gelu_pytorch_tanh)");
  if (r.boolean("attention_bias", false))
    fail(where, ": attention_bias = true is not supported (Gemma 4 linears have no bias)");
  c.use_bidirectional_attention = r.string("use_bidirectional_attention", "");
  if (c.use_bidirectional_attention == "all") {
    // transformers halves the window for bidirectional (embedding) use: W := W // 2 + 1.
    fail(where, ": use_bidirectional_attention = 'all' (embedding models) is not supported");
  }
  if (!c.use_bidirectional_attention.empty() && c.use_bidirectional_attention != "vision")
    fail(where, ": use_bidirectional_attention '", c.use_bidirectional_attention, "' is unknown");

  if (c.enable_moe_block) {
    c.num_experts = r.integer("num_experts", 0, 1);
    c.top_k_experts = r.integer("top_k_experts", 0, 1);
    c.moe_intermediate_size = r.integer("moe_intermediate_size", 0, 1);
    if (!r.get("num_experts") || !r.get("top_k_experts") || !r.get("moe_intermediate_size"))
      fail(where, ": enable_moe_block needs num_experts, top_k_experts and moe_intermediate_size");
    if (c.top_k_experts > c.num_experts)
      fail(where, ": top_k_experts (", c.top_k_experts, ") > num_experts (", c.num_experts, ")");
  }

  // layer_types: explicit, or every 6th layer full; the last layer is forced to full (as HF does).
  const int L = c.num_hidden_layers;
  if (const json* lt = r.get("layer_types")) {
    if (!lt->is_array()) r.bad("layer_types", "a list of strings");
    if (static_cast<int>(lt->size()) != L)
      fail(where, ": layer_types has ", lt->size(), " entries but num_hidden_layers is ", L);
    for (size_t i = 0; i < lt->size(); ++i) {
      if (!(*lt)[i].is_string()) r.bad("layer_types", "a list of strings");
      c.layer_types.push_back(parse_layer_type((*lt)[i].get<std::string>(),
                                               where + ": layer_types[" + std::to_string(i) + "]"));
    }
  } else {
    for (int i = 0; i < L; ++i)
      c.layer_types.push_back((i + 1) % 6 == 0 ? LayerType::kFull : LayerType::kSliding);
  }
  c.layer_types.back() = LayerType::kFull;

  c.rope_sliding = RopeConfig{"default", 10000.0, 1.0, 1.0};
  c.rope_full = RopeConfig{"proportional", 1000000.0, 0.25, 1.0};
  if (const json* rp = r.get("rope_parameters")) {
    if (!rp->is_object()) r.bad("rope_parameters", "an object keyed by layer type");
    for (auto it = rp->begin(); it != rp->end(); ++it) {
      const std::string w = where + ": rope_parameters." + it.key();
      const LayerType t = parse_layer_type(it.key(), where + ": rope_parameters");
      RopeConfig& dst = t == LayerType::kFull ? c.rope_full : c.rope_sliding;
      dst = parse_rope(it.value(), w, dst);
    }
  }

  // Per-layer geometry. Flat keys first, then per_layer_config overrides (>= 5.15 form, keyed by
  // layer index or by layer type).
  c.layers.resize(L);
  for (int i = 0; i < L; ++i) {
    LayerSpec& s = c.layers[i];
    s.type = c.layer_types[i];
    const bool full = s.type == LayerType::kFull;
    s.head_dim = full ? c.global_head_dim : c.head_dim;
    s.num_kv_heads = c.num_key_value_heads;
    // HF honours num_global_key_value_heads only when attention_k_eq_v is set.
    if (full && c.attention_k_eq_v && c.num_global_key_value_heads)
      s.num_kv_heads = *c.num_global_key_value_heads;
  }
  if (const json* plc = r.get("per_layer_config")) {
    if (!plc->is_object()) r.bad("per_layer_config", "an object keyed by layer index");
    for (auto it = plc->begin(); it != plc->end(); ++it) {
      const std::string w = where + ": per_layer_config." + it.key();
      if (!it.value().is_object()) fail(w, " must be an object");
      std::vector<int> targets;
      if (it.key() == "sliding_attention" || it.key() == "full_attention") {
        const LayerType t = parse_layer_type(it.key(), w);
        for (int i = 0; i < L; ++i)
          if (c.layer_types[i] == t) targets.push_back(i);
      } else {
        size_t used = 0;
        int idx = -1;
        try {
          idx = std::stoi(it.key(), &used);
        } catch (...) {
        }
        if (used != it.key().size() || idx < 0 || idx >= L)
          fail(w, ": key is not a layer index in [0, ", L, ")");
        targets.push_back(idx);
      }
      Reader lr{it.value(), w};
      for (auto f = it.value().begin(); f != it.value().end(); ++f)
        if (f.key() != "head_dim" && f.key() != "num_key_value_heads" &&
            f.key() != "intermediate_size")
          fail(w, ": unsupported per-layer key '", f.key(), "'");
      for (int i : targets) {
        c.layers[i].head_dim = lr.integer("head_dim", c.layers[i].head_dim, 2);
        c.layers[i].num_kv_heads = lr.integer("num_key_value_heads", c.layers[i].num_kv_heads, 1);
        if (lr.get("intermediate_size"))
          c.layers[i].intermediate = lr.integer("intermediate_size", 0, 1);
      }
    }
  }

  // KV sharing (§5.6): the last num_kv_shared_layers layers read the last non-shared layer of
  // their own type.
  const int first_shared = L - c.num_kv_shared_layers;
  if (c.num_kv_shared_layers > L) fail(where, ": num_kv_shared_layers > num_hidden_layers");
  if (c.num_kv_shared_layers == L)
    fail(where, ": num_kv_shared_layers == num_hidden_layers leaves no layer owning a KV cache");
  for (int i = 0; i < L; ++i) {
    LayerSpec& s = c.layers[i];
    s.kv_shared = i >= first_shared;
    s.kv_source = i;
    if (s.kv_shared) {
      s.kv_source = -1;
      for (int j = first_shared - 1; j >= 0; --j)
        if (c.layer_types[j] == s.type) {
          s.kv_source = j;
          break;
        }
      if (s.kv_source < 0)
        fail(where, ": layer ", i, " (", layer_type_name(s.type),
             ") is KV-shared but no earlier non-shared layer has that type");
      const LayerSpec& src = c.layers[s.kv_source];
      if (src.head_dim != s.head_dim || src.num_kv_heads != s.num_kv_heads)
        fail(where, ": layer ", i, " shares the KV of layer ", s.kv_source,
             " but their head_dim/num_key_value_heads differ");
    }
    s.has_v_proj = !(c.attention_k_eq_v && s.type == LayerType::kFull);
    if (s.intermediate == 0)
      s.intermediate = c.intermediate_size *
                       ((c.use_double_wide_mlp && s.kv_shared && first_shared > 0) ? 2 : 1);
    if (c.num_attention_heads % s.num_kv_heads != 0)
      fail(where, ": layer ", i, ": num_attention_heads (", c.num_attention_heads,
           ") is not a multiple of its num_key_value_heads (", s.num_kv_heads, ")");
    if (s.head_dim % 2 != 0) fail(where, ": layer ", i, ": head_dim ", s.head_dim, " is odd");
  }
  if (c.hidden_size_per_layer_input > 0 && c.vocab_size_per_layer_input <= 0)
    fail(where, ": hidden_size_per_layer_input > 0 needs vocab_size_per_layer_input > 0");
  return c;
}

Config load_config(const std::string& model_dir) {
  const std::string path = model_dir + "/config.json";
  std::ifstream f(path);
  if (!f) fail(path, ": cannot open (is '", model_dir, "' a model directory?)");
  json j;
  try {
    j = json::parse(f);
  } catch (const json::exception& e) {
    fail(path, ": invalid JSON: ", e.what());
  }
  Config c = parse_config(j, path);
  c.quant = quant::load_quant_config(model_dir, j);
  return c;
}

std::string describe(const Config& c) {
  std::ostringstream os;
  os << "architecture        " << (c.architecture.empty() ? "?" : c.architecture) << "\n"
     << "tensor prefix       " << c.tensor_prefix << "\n"
     << "vocab / hidden      " << c.vocab_size << " / " << c.hidden_size << "\n"
     << "layers              " << c.num_hidden_layers << " (" << c.num_kv_shared_layers
     << " KV-shared)\n"
     << "attention heads     " << c.num_attention_heads << "\n"
     << "sliding window      " << c.sliding_window << "\n"
     << "k_eq_v              " << (c.attention_k_eq_v ? "yes" : "no") << "\n"
     << "PLE width           " << c.hidden_size_per_layer_input << "\n"
     << "MoE                 "
     << (c.enable_moe_block
             ? std::to_string(c.num_experts) + " experts, top-" + std::to_string(c.top_k_experts) +
                   ", width " + std::to_string(c.moe_intermediate_size)
             : std::string("no"))
     << "\n"
     << "final softcap       "
     << (c.final_logit_softcapping ? std::to_string(*c.final_logit_softcapping) : "none") << "\n"
     << "layer  type     head_dim kv_heads v_proj kv_source mlp\n";
  for (size_t i = 0; i < c.layers.size(); ++i) {
    const LayerSpec& s = c.layers[i];
    char line[160];
    std::snprintf(line, sizeof line, "%5zu  %-8s %8d %8d %6s %9d %d\n", i,
                  s.type == LayerType::kFull ? "full" : "sliding", s.head_dim, s.num_kv_heads,
                  s.has_v_proj ? "yes" : "no", s.kv_source, s.intermediate);
    os << line;
  }
  return os.str();
}

}  // namespace fc::gemma4
