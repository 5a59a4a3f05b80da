// Which linear layers of a checkpoint are NVFP4 and how, from ModelOpt's hf_quant_config.json /
// config.json (quant_method "modelopt") or compressed-tensors' config.json quantization_config
// (spec ../shared/spec/weight-formats-and-speculation.md §2.1, §3.2, §5).
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace fc::quant {

enum class Format { kNone, kModelOpt, kCompressedTensors };

// How one linear module is stored.
struct LinearScheme {
  bool nvfp4 = false;            // false: dense (BF16/F16/F32 `weight`)
  bool input_scale = false;      // W4A4 checkpoint: a static activation global scale is stored
  bool pre_quant_scale = false;  // NVFP4_AWQ: `pre_quant_scale` may be present
};

struct QuantConfig {
  Format format = Format::kNone;
  std::string source;      // file the description came from (for errors)
  std::string quant_algo;  // ModelOpt quant_algo as written ("NVFP4", "MIXED_PRECISION", ...)
  std::vector<std::string> exclude;  // ModelOpt exclude_modules globs / CT ignore entries
  std::map<std::string, std::string> quantized_layers;  // MIXED_PRECISION: module -> algo
  bool kv_fp8 = false;  // checkpoint asks for an FP8 KV cache (and may carry k/v scales)
  bool ct_input_activations = false;    // CT: the NVFP4 group also quantizes activations
  std::vector<std::string> ct_targets;  // CT config_group targets ("Linear", "re:...", names)

  // Scheme of the linear module `module` (HF module path without ".weight", e.g.
  // "model.language_model.layers.3.mlp.down_proj").
  LinearScheme scheme_for(const std::string& module) const;
  bool quantized() const { return format != Format::kNone; }
};

// Reads the quantization description of the checkpoint in `dir` whose config.json is
// `config_json`: quantization_config in config.json (dispatching on quant_method), else
// hf_quant_config.json, else none. Unsupported schemes (not NVFP4) are an fc::Error naming the
// file and the field.
QuantConfig load_quant_config(const std::string& dir, const nlohmann::json& config_json);
QuantConfig parse_quant_config(const nlohmann::json& quantization_config,
                               const std::string& source);
QuantConfig parse_hf_quant_config(const nlohmann::json& hf_quant_config, const std::string& source);

// fnmatch(3) without flags as Python's fnmatch.fnmatchcase: '*' matches any run (dots included),
// '?' one character, [seq] / [!seq] a set.
bool glob_match(const std::string& text, const std::string& pattern);

}  // namespace fc::quant
