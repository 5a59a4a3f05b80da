// EAGLE-3 drafter configuration (spec weight-formats §7.1, §7.3), read from either layout:
//  - speculators (`speculators_model_type: "eagle3"`): the draft decoder's HF config nested in
//    `transformer_layer_config`, tensors `layers.0.*`; norm_before_residual defaults to true when
//    the key is missing (vLLM's speculators adapter);
//  - the older HF-EAGLE3 / ModelOpt export (`architectures: ["LlamaForCausalLMEagle3"]`): flat
//    Llama keys, `eagle_config.eagle_aux_hidden_state_layer_ids`, tensors `midlayer.*`;
//    norm_before_residual defaults to false.
// Pairing with a target (vocabulary, hidden width, aux layer ids) is checked by
// check_eagle3_target().
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <string>
#include <vector>

#include "model/gemma4/config.h"
#include "quant/quant_config.h"

namespace fc::spec {

struct Eagle3Rope {
  std::string type = "default";  // "default", "linear" or "llama3"
  double theta = 10000.0;
  double factor = 1.0;  // linear / llama3
  double low_freq_factor = 1.0, high_freq_factor = 4.0;
  int original_max_position_embeddings = 8192;  // llama3
};

struct Eagle3Config {
  std::string source;        // config.json path (for errors)
  std::string layer_prefix;  // tensor prefix of the first decoder layer: "layers.0." / "midlayer."
  std::string model_type;    // "llama" or "qwen3" (q_norm / k_norm per head before RoPE)
  int hidden_size = 0;       // H_d
  int num_hidden_layers = 1;
  int num_attention_heads = 0, num_key_value_heads = 0, head_dim = 0;
  int intermediate_size = 0;
  double rms_norm_eps = 1e-6;
  int vocab_size = 0;          // the target vocabulary the drafter was trained for
  int draft_vocab_size = 0;    // rows of lm_head (= vocab_size when there is no pruning)
  int target_hidden_size = 0;  // H_t; fc input is 3 * H_t (0 in the file: = hidden_size)
  Eagle3Rope rope;
  std::vector<int> aux_layer_ids;  // empty: the target default (2, L/2, L-3)
  bool norm_before_residual = false;
  double logit_scale = 1.0;    // optional `logit_scale`: logits_d *= it
  int speculative_tokens = 0;  // speculators_config proposal k (0: not given)
  quant::QuantConfig quant;    // NVFP4 description of the drafter checkpoint (if any)
};

// Parses config.json (`source` names it in errors). Throws fc::Error naming the key for missing or
// unsupported entries (norm_before_fc, fc_norm, norm_output, attention/mlp bias, activations other
// than silu, RoPE types other than default/linear/llama3, more than one decoder layer).
Eagle3Config parse_eagle3_config(const nlohmann::json& root, const std::string& source);
// Reads DIR/config.json and the drafter's quantization description.
Eagle3Config load_eagle3_config(const std::string& dir);

// Resolves the aux ids against the target (empty -> (2, L/2, L-3)) and refuses an incompatible
// pair with a message naming both sides: vocabulary sizes, fc input width vs 3 * target hidden,
// aux ids outside [0, L). Returns the resolved aux ids.
std::vector<int> check_eagle3_target(const Eagle3Config& c, const gemma4::Config& target);

// RoPE inverse frequencies [head_dim / 2] as HF's Llama computes them (fp32).
std::vector<float> eagle3_inv_freq(const Eagle3Rope& r, int head_dim);

}  // namespace fc::spec
