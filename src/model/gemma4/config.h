// Gemma 4 text-model hyper-parameters, read from a Hugging Face config.json in either form:
// nested (`Gemma4ForConditionalGeneration`, text_config, tensors under `model.language_model.`)
// or flat (`Gemma4ForCausalLM`, tensors under `model.`); global-layer geometry from the flat keys
// (`global_head_dim`, `num_global_key_value_heads`, transformers <= 5.14) or from
// `per_layer_config` (>= 5.15). Every key, its default and precedence, checked against
// transformers 5.23: docs/config.md. Spec: ../shared/spec/gemma4-architecture.md §2, §5.1, §5.6.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <optional>
#include <string>
#include <vector>
#include "model/gemma4/mm_config.h"
#include "quant/quant_config.h"

namespace fc::gemma4 {

enum class LayerType { kSliding, kFull };
const char* layer_type_name(LayerType t);  // "sliding_attention" / "full_attention"

struct RopeConfig {
  std::string type = "default";  // "default" or "proportional"
  double theta = 10000.0;
  double partial_rotary_factor = 1.0;  // proportional only: fraction of head_dim/2 angles rotated
  double factor = 1.0;                 // proportional only: all frequencies divided by this
};

// Geometry of one decoder layer, derived from the config.
struct LayerSpec {
  LayerType type = LayerType::kSliding;
  int head_dim = 0;        // D_i
  int num_kv_heads = 0;    // Hkv_i
  bool has_v_proj = true;  // false on k_eq_v full layers: V = v_norm(raw K projection)
  bool kv_shared = false;  // reads the KV of layer kv_source, owns no K/V weights or cache
  int kv_source = -1;      // the layer whose cache this layer reads (itself when not shared)
  int intermediate = 0;    // dense MLP width (doubled on shared layers with use_double_wide_mlp)
};

struct Config {
  // As read (names follow Gemma4TextConfig).
  std::string architecture;   // e.g. Gemma4ForCausalLM
  std::string tensor_prefix;  // "model." or "model.language_model."
  quant::QuantConfig quant;   // NVFP4 description (load_config reads it; none from parse_config)
  int vocab_size = 262144;
  int hidden_size = 2304;
  int intermediate_size = 9216;
  int num_hidden_layers = 30;
  int num_attention_heads = 8;
  int num_key_value_heads = 4;
  int head_dim = 256;
  int global_head_dim = 512;
  std::optional<int> num_global_key_value_heads;
  bool attention_k_eq_v = false;
  int sliding_window = 512;
  std::vector<LayerType> layer_types;
  RopeConfig rope_sliding, rope_full;
  double rms_norm_eps = 1e-6;
  std::optional<double> final_logit_softcapping;
  int hidden_size_per_layer_input = 256;  // PLE width P; 0 disables PLE
  int vocab_size_per_layer_input = 262144;
  int num_kv_shared_layers = 0;
  bool use_double_wide_mlp = false;
  bool enable_moe_block = false;
  int num_experts = 0;
  int top_k_experts = 0;
  int moe_intermediate_size = 0;
  bool tie_word_embeddings = true;
  std::string use_bidirectional_attention;  // "", "vision" or "all"
  int max_position_embeddings = 131072;
  int pad_token_id = 0, bos_token_id = 2;
  std::vector<int> eos_token_ids;
  MultimodalConfig mm;  // placeholder ids and the vision tower (conditional-generation configs)

  // Derived.
  std::vector<LayerSpec> layers;
  int first_kv_shared_layer() const { return num_hidden_layers - num_kv_shared_layers; }
  const RopeConfig& rope(LayerType t) const {
    return t == LayerType::kFull ? rope_full : rope_sliding;
  }
};

// Parses a config.json document; `source` names the file in error messages. Throws fc::Error
// naming the key for missing, mistyped, unknown-valued or inconsistent entries.
Config parse_config(const nlohmann::json& root, const std::string& source);
Config load_config(const std::string& model_dir);

// Human-readable summary (for `fourcast inspect`).
std::string describe(const Config& c);

}  // namespace fc::gemma4
