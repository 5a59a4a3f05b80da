// A model's generation_config.json (Hugging Face) as default sampling parameters, and the merge of
// an OpenAI request over those defaults the way vLLM's OpenAI server does it.
//
// vLLM facts this follows:
//  - vllm/config/model.py ModelConfig.get_diff_sampling_param: of the generation config only
//    repetition_penalty, temperature, top_k, top_p, min_p and max_new_tokens (renamed max_tokens)
//    become defaults, and only when present and not null. do_sample, max_length and everything
//    else is ignored for sampling. (With transformers < 5, vLLM reads the file through
//    GenerationConfig.to_diff_dict(), which also drops values equal to transformers' own
//    defaults, e.g. "top_k": 50 or "temperature": 1.0; transformers 5 made those defaults None
//    (huggingface/transformers#42702), so every present value counts. We follow the latter.)
//  - vllm/entrypoints/openai/protocol.py ChatCompletionRequest/CompletionRequest
//    .to_sampling_params: a field the request omits (or sends as null) takes the generation-config
//    default, else vLLM's neutral default (repetition_penalty 1, temperature 1, top_p 1, top_k 0,
//    min_p 0). presence/frequency penalties and the seed come from the request only.
//  - max_tokens = min over the values present of (request max_tokens / max_completion_tokens,
//    generation-config max_new_tokens, room left in the context).
//  - vllm/sampling_params.py SamplingParams.__post_init__: 0 < temperature < 0.01 is raised to
//    0.01; seed -1 means no seed; then the ranges are validated; greedy (temperature < 1e-5)
//    resets top_p = 1, top_k = 0, min_p = 0.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sample/sampler.h"

namespace fc {

// The fields of generation_config.json this engine reads. Absent keys and JSON nulls stay
// nullopt (or empty); other keys are ignored.
struct GenerationConfig {
  std::optional<bool> do_sample;
  std::optional<float> temperature;
  std::optional<int32_t> top_k;
  std::optional<float> top_p;
  std::optional<float> min_p;
  std::optional<float> repetition_penalty;
  std::optional<int64_t> max_new_tokens;
  std::optional<int64_t> max_length;   // parsed for completeness; vLLM does not use it
  std::vector<int32_t> eos_token_ids;  // "eos_token_id": one id or a list of ids
  std::optional<int32_t> bos_token_id;
  std::optional<int32_t> pad_token_id;
};

// Parses the JSON text of a generation config. `origin` (usually the file path) prefixes every
// error. Throws fc::Error for invalid JSON, a non-object top level, or a known key with a value of
// the wrong type ("<origin>: key 'top_k' must be an integer, got string").
GenerationConfig parse_generation_config(std::string_view json_text, const std::string& origin);

// Reads and parses the file; a missing or unreadable file is an fc::Error naming it.
GenerationConfig load_generation_config(const std::string& path);

// Same, but a file that does not exist gives nullopt (vLLM runs without defaults then).
std::optional<GenerationConfig> load_generation_config_if_present(const std::string& path);

// The sampling fields of one OpenAI request; nullopt = omitted or null.
struct RequestSampling {
  std::optional<double> temperature;
  std::optional<int64_t> top_k;
  std::optional<double> top_p;
  std::optional<double> min_p;
  std::optional<double> repetition_penalty;
  std::optional<double> presence_penalty;   // request only; 0 when omitted
  std::optional<double> frequency_penalty;  // request only; 0 when omitted
  std::optional<int64_t> seed;              // -1 means no seed, as in vLLM
  // Request-only processors, copied as they are (SamplingParams).
  std::vector<int32_t> allowed_token_ids;
  std::vector<std::pair<int32_t, float>> logit_bias;
  int min_tokens = 0;
  std::vector<std::vector<int32_t>> bad_words_ids;  // the server tokenizes bad_words
};

struct GenerationDefaultsPolicy {
  // vLLM ignores do_sample. When set, "do_sample": false makes greedy (temperature 0) the default
  // temperature, as transformers' generate() would behave. Off by default for vLLM parity.
  bool greedy_when_do_sample_false = false;
};

// Merges the request over the defaults, applies vLLM's normalizations and validates the result
// (fc::Error with vLLM's message for an out-of-range value).
SamplingParams resolve_sampling_params(const RequestSampling& request,
                                       const GenerationConfig& defaults,
                                       const GenerationDefaultsPolicy& policy = {});

// max_tokens for a request: the minimum of the values present among request_max_tokens,
// defaults.max_new_tokens and context_room (max_model_len - prompt length). fc::Error when the
// request's value is < 1 or context_room < 1.
int64_t resolve_max_tokens(std::optional<int64_t> request_max_tokens,
                           const GenerationConfig& defaults, int64_t context_room);

}  // namespace fc
