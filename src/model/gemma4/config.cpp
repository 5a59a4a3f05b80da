#include "model/gemma4/config.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/json_limits.h"
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

// One rope_parameters entry as transformers 5.23 reads it. The type is `rope_type`, else the
// legacy `type`, else "default" (RotaryEmbeddingConfigMixin.validate_rope). `rope_theta` and
// `partial_rotary_factor` missing from the entry come from the text config's own top-level keys
// when it has them (standardize_rope_params); a missing rope_theta is otherwise an error (HF
// indexes it), a missing partial_rotary_factor is 1.0 (_compute_proportional_rope_parameters:
// `.get("partial_rotary_factor", 1.0)`). The default type rotates every angle and ignores both
// partial_rotary_factor and factor.
RopeConfig parse_rope(const json& j, const std::string& where, const Reader& text) {
  if (!j.is_object()) fail(where, " must be an object");
  Reader r{j, where};
  RopeConfig c;
  c.type = r.string("rope_type", r.string("type", "default"));
  if (c.type != "default" && c.type != "proportional")
    fail(where, ": rope_type '", c.type, "' is not supported (default, proportional)");
  if (!r.get("rope_theta") && !text.get("rope_theta"))
    fail(where, ": required key 'rope_theta' is missing");
  c.theta = r.number("rope_theta", text.number("rope_theta", 0.0));
  c.partial_rotary_factor = 1.0;
  c.factor = 1.0;
  if (c.type == "proportional") {
    c.partial_rotary_factor =
        r.number("partial_rotary_factor", text.number("partial_rotary_factor", 1.0));
    c.factor = r.number("factor", 1.0);
  }
  if (!(c.theta > 0)) fail(where, ": rope_theta must be positive");
  if (!(c.partial_rotary_factor > 0 && c.partial_rotary_factor <= 1))
    fail(where, ": partial_rotary_factor must be in (0, 1]");
  if (!(c.factor > 0)) fail(where, ": factor must be positive");
  return c;
}

// transformers' HeterogeneousConfigMixin: keys are integer layer indices (int(key), so "01" is
// layer 1), values override config attributes for that layer. Gemma 4's modeling code reads only
// head_dim and num_key_value_heads per layer (Gemma4TextAttention, Gemma4TextRotaryEmbedding);
// an override equal to the global value is dropped (_modify_config_and_create_heterogeneity_spec)
// and any other differing key would make the global read ambiguous, so it is refused here.
void apply_per_layer_config(const json& plc, const Reader& text, const std::string& where,
                            Config& c) {
  if (!plc.is_object()) fail(where, " must be an object keyed by layer index");
  const int L = c.num_hidden_layers;
  for (auto it = plc.begin(); it != plc.end(); ++it) {
    const std::string w = where + "." + it.key();
    const std::string& k = it.key();
    const bool digits = !k.empty() && k.size() <= 9 && std::all_of(k.begin(), k.end(), [](char ch) {
      return ch >= '0' && ch <= '9';
    });
    const int idx = digits ? std::stoi(k) : -1;
    if (idx < 0 || idx >= L) fail(w, ": key is not a layer index in [0, ", L, ")");
    if (!it.value().is_object()) fail(w, " must be an object");
    Reader lr{it.value(), w};
    for (auto f = it.value().begin(); f != it.value().end(); ++f) {
      if (f.key() == "head_dim" || f.key() == "num_key_value_heads") continue;
      const json* global = text.get(f.key().c_str());
      if (global && *global == f.value()) continue;
      fail(w, ": per-layer key '", f.key(),
           "' is not supported (Gemma 4 reads only head_dim and num_key_value_heads per layer)");
    }
    LayerSpec& s = c.layers[static_cast<size_t>(idx)];
    s.head_dim = lr.integer("head_dim", s.head_dim, 2);
    s.num_kv_heads = lr.integer("num_key_value_heads", s.num_kv_heads, 1);
  }
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
  // transformers has a default for every key, but one that disagrees with the checkpoint only
  // shows as a weight-shape mismatch later; the keys that fix tensor shapes (and that
  // save_pretrained always writes) are required here, named when missing.
  for (const char* key : {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                          "num_attention_heads", "num_key_value_heads", "head_dim"})
    if (!r.get(key)) fail(where, ": required key '", key, "' is missing");
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
  // Tying follows the config of the model class that is loaded (PreTrainedModel.
  // get_expanded_tied_weights_keys reads self.config): for the nested form that is the top-level
  // Gemma4Config, whose default is true; text_config.tie_word_embeddings is then not read.
  if (text == &root) {
    c.tie_word_embeddings = r.boolean("tie_word_embeddings", true);
  } else {
    c.tie_word_embeddings = Reader{root, source}.boolean("tie_word_embeddings", true);
  }
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

  // rope_parameters: absent or null means Gemma4TextConfig's defaults; given, it replaces them
  // whole, and every layer type in use needs its entry (HF indexes rope_parameters[layer_type]).
  // Keys that are not layer types are ignored, as HF's nested_rope_parameter_keys does.
  c.rope_sliding = RopeConfig{"default", 10000.0, 1.0, 1.0};
  c.rope_full = RopeConfig{"proportional", 1000000.0, 0.25, 1.0};
  if (const json* rp = r.get("rope_parameters")) {
    if (!rp->is_object()) r.bad("rope_parameters", "an object keyed by layer type");
    for (LayerType t : {LayerType::kSliding, LayerType::kFull}) {
      const char* name = layer_type_name(t);
      if (std::find(c.layer_types.begin(), c.layer_types.end(), t) == c.layer_types.end()) continue;
      const std::string w = where + ": rope_parameters." + name;
      auto it = rp->find(name);
      if (it == rp->end() || it->is_null())
        fail(where, ": rope_parameters has no '", name, "' entry (layer_types uses it)");
      (t == LayerType::kFull ? c.rope_full : c.rope_sliding) = parse_rope(*it, w, r);
    }
  }

  // Per-layer geometry, as Gemma4TextConfig.__post_init__ builds it. Without a per_layer_config
  // key, the flat keys make one: every full layer gets global_head_dim (default 512) and, only
  // with attention_k_eq_v, num_global_key_value_heads. With the key present (even {} or null:
  // transformers >= 5.15 writes {} when no layer differs), global_head_dim and
  // num_global_key_value_heads are ignored and every layer starts from head_dim and
  // num_key_value_heads; the entries, keyed by layer index, override that.
  c.layers.resize(L);
  const bool has_plc = text->contains("per_layer_config");
  for (int i = 0; i < L; ++i) {
    LayerSpec& s = c.layers[i];
    s.type = c.layer_types[i];
    const bool full = s.type == LayerType::kFull && !has_plc;
    s.head_dim = full ? c.global_head_dim : c.head_dim;
    s.num_kv_heads = c.num_key_value_heads;
    if (full && c.attention_k_eq_v && c.num_global_key_value_heads)
      s.num_kv_heads = *c.num_global_key_value_heads;
  }
  if (const json* plc = r.get("per_layer_config"))
    apply_per_layer_config(*plc, r, where + ": per_layer_config", c);

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
  if (!std::ifstream(path)) fail(path, ": cannot open (is '", model_dir, "' a model directory?)");
  const json j = read_json_file(path);
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
