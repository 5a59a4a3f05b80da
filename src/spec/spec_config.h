// `--speculative-config` as vLLM takes it (vllm/config/speculative.py): which drafter, where it
// lives, how many tokens it proposes. Validated here; loading happens in the drafter factory.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace fc::spec {

struct SpecConfig {
  std::string method;  // "draft_model", "eagle3" or "mtp" (resolved when the JSON omits it)
  std::string model;   // drafter checkpoint directory
  int num_speculative_tokens = 0;  // k >= 1
  std::string quantization;        // "", "modelopt", "compressed-tensors" (checked on load)
  int draft_tensor_parallel_size = 1;
  bool adaptive = true;  // fourcast key "adaptive": false drafts k tokens at every step
  bool enabled() const { return num_speculative_tokens > 0; }
};

// Parses the JSON object. `method` may be omitted: then it is "eagle3" when DIR/config.json has
// speculators_model_type "eagle3" or an EAGLE-3 architecture, "mtp" for model_type
// gemma4_assistant, else "draft_model" (vLLM infers the same way). Throws fc::Error naming the
// field.
SpecConfig parse_spec_config(const nlohmann::json& j);

}  // namespace fc::spec
