// Writes a quantized checkpoint in exactly the layout of ModelOpt's HF export or of
// compressed-tensors' nvfp4-pack-quantized format (spec weight-formats §2.1-§2.2, §2.9, §3.1-§3.2):
// tensor names, dtypes, 0-d vs [1] scalars, config.json quantization_config (+ ModelOpt's
// hf_quant_config.json), and the non-weight files of the source directory.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "quant/nvfp4.h"
#include "quant/quant_config.h"

namespace fc::quantizer {

struct QuantizedLinear {
  std::string module;                     // HF module path, e.g. model.layers.0.mlp.down_proj
  quant::Nvfp4Tensor t;                   // codes, block scales, global_scale = amax/(6·448)
  float input_scale = 0.0f;               // activation amax/(6·448) (> 0)
  float amax_w = 0.0f, amax_in = 0.0f;    // the amaxes behind the scales (CT writes 2688/amax)
  std::vector<uint16_t> pre_quant_scale;  // BF16 [cols], ModelOpt only; empty: none
};

struct WriteSpec {
  quant::Format format = quant::Format::kModelOpt;
  std::string quant_algo = "NVFP4";  // ModelOpt: NVFP4 or NVFP4_AWQ
  std::vector<QuantizedLinear> linears;
  // Source tensors not written (quantized modules' .weight, split 3-D expert tensors).
  std::set<std::string> drop;
  // Source tensors written with new contents in their own dtype and shape (AWQ-folded norms).
  std::map<std::string, std::vector<float>> replace;
  // FP8 KV scales per layer prefix ("model.layers.3."): {k_scale, v_scale}.
  std::map<std::string, std::pair<float, float>> kv_scales;
  std::vector<std::string> exclude;  // fnmatch globs / module names kept unquantized
  uint64_t max_shard_bytes = uint64_t{5} << 30;
};

// Writes DIR: safetensors shards, config.json (source config + quantization_config),
// hf_quant_config.json (ModelOpt), and every other file of src_dir (tokenizer, templates,
// generation_config.json, ...).
void write_quantized(const std::string& src_dir, const Checkpoint& src, const WriteSpec& spec,
                     const std::string& out_dir);

// compressed-tensors `ignore` entry for an fnmatch glob: the name itself when it has no wildcard,
// else "re:" + the equivalent regular expression.
std::string glob_to_ct_ignore(const std::string& glob);

}  // namespace fc::quantizer
