#include "spec/spec_config.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "core/error.h"
#include "core/json_limits.h"

namespace fc::spec {
namespace {

using nlohmann::json;

std::string infer_method(const std::string& dir) {
  const std::string path = dir + "/config.json";
  std::ifstream f(path);
  if (!f)
    fail("--speculative-config: cannot open ", path, " (\"model\" must be a checkpoint directory)");
  const json c = read_json_file(path);
  if (c.value("speculators_model_type", "") == "eagle3") return "eagle3";
  if (c.contains("architectures") && c["architectures"].is_array())
    for (const json& a : c["architectures"])
      if (a.is_string() && a.get<std::string>().find("Eagle3") != std::string::npos)
        return "eagle3";
  const std::string mt = c.value("model_type", "");
  if (mt == "gemma4_assistant") return "mtp";
  return "draft_model";
}

}  // namespace

// Keys with a meaning here, and vLLM keys accepted without effect on a single CPU/GPU engine
// (vllm/config/speculative.py SpeculativeConfig).
constexpr const char* kKnownKeys[] = {"method",
                                      "model",
                                      "num_speculative_tokens",
                                      "quantization",
                                      "adaptive",
                                      "draft_tensor_parallel_size",
                                      "draft_sample_method",
                                      "rejection_sample_method"};
constexpr const char* kNoEffectKeys[] = {"enforce_eager",
                                         "max_model_len",
                                         "revision",
                                         "code_revision",
                                         "disable_padded_drafter_batch",
                                         "attention_backend",
                                         "moe_backend",
                                         "use_local_argmax_reduction"};

SpecConfig parse_spec_config(const json& j) {
  if (!j.is_object()) fail("--speculative-config must be a JSON object");
  SpecConfig c;
  for (const auto& [key, v] : j.items()) {
    if (key == "method") {
      if (!v.is_string()) fail("--speculative-config: \"method\" must be a string");
      c.method = v.get<std::string>();
    } else if (key == "model") {
      if (!v.is_string()) fail("--speculative-config: \"model\" must be a string");
      c.model = v.get<std::string>();
    } else if (key == "num_speculative_tokens") {
      if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > 16)
        fail("--speculative-config: \"num_speculative_tokens\" must be an integer in [1, 16]");
      c.num_speculative_tokens = v.get<int>();
    } else if (key == "quantization") {
      if (!v.is_null() && !v.is_string())
        fail("--speculative-config: \"quantization\" must be a string");
      c.quantization = v.is_string() ? v.get<std::string>() : "";
    } else if (key == "adaptive") {
      if (!v.is_boolean()) fail("--speculative-config: \"adaptive\" must be true or false");
      c.adaptive = v.get<bool>();
    } else if (key == "draft_tensor_parallel_size") {
      if (!v.is_number_integer() || v.get<int64_t>() != 1)
        fail("--speculative-config: \"draft_tensor_parallel_size\" must be 1 (one device)");
    } else if (key == "draft_sample_method") {
      if (v != "greedy")
        fail(
            "--speculative-config: \"draft_sample_method\" must be \"greedy\" (drafts are argmax)");
    } else if (key == "rejection_sample_method") {
      if (v != "standard")
        fail("--speculative-config: \"rejection_sample_method\" must be \"standard\"");
    } else if (std::find(std::begin(kNoEffectKeys), std::end(kNoEffectKeys), key) ==
               std::end(kNoEffectKeys)) {
      // vLLM's SpeculativeConfig forbids unknown keys too (a pydantic config with extra="forbid").
      std::string accepted;
      for (const char* k : kKnownKeys) accepted += std::string(accepted.empty() ? "" : ", ") + k;
      for (const char* k : kNoEffectKeys) accepted += std::string(", ") + k;
      fail("--speculative-config: unknown key \"", key, "\" (accepted: ", accepted, ")");
    }
  }
  if (c.model.empty()) fail("--speculative-config: \"model\" (the drafter directory) is required");
  if (c.num_speculative_tokens == 0)
    fail("--speculative-config: \"num_speculative_tokens\" is required");
  if (c.method.empty()) c.method = infer_method(c.model);
  if (c.method == "draft" || c.method == "draft_model")
    c.method = "draft_model";
  else if (c.method == "eagle3")
    ;
  else if (c.method == "mtp" || c.method == "gemma4_mtp")
    c.method = "mtp";
  else
    fail("--speculative-config: method \"", c.method,
         "\" is not supported (draft_model, eagle3, mtp)");
  if (!c.quantization.empty() && c.quantization != "modelopt" && c.quantization != "modelopt_fp4" &&
      c.quantization != "compressed-tensors")
    fail("--speculative-config: quantization \"", c.quantization,
         "\" is not supported (modelopt, compressed-tensors)");
  return c;
}

}  // namespace fc::spec
