// OpenAI request bodies parsed into native structs at the edge, with vLLM's validation: every
// problem is an ApiError(400) naming the field (param). Unknown fields are accepted and listed
// in `ignored` (vLLM logs them).
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "sample/generation_config.h"
#include "server/structured_request.h"

namespace fc {

struct PrefetchedMedia;  // server/media_fetch.h

struct CommonRequest {
  std::string model;
  RequestSampling sampling;
  std::optional<int64_t> max_tokens;  // max_tokens or max_completion_tokens
  int n = 1;
  std::vector<std::string> stop;
  std::vector<int32_t> stop_token_ids;
  bool include_stop_str_in_output = false;
  bool ignore_eos = false;
  bool stream = false;
  bool include_usage = false;           // stream_options.include_usage
  bool continuous_usage_stats = false;  // stream_options.continuous_usage_stats
  bool logprobs = false;
  int top_logprobs = 0;
  bool skip_special_tokens = true;
  // fourcast extension: speculative tokens for this request (0 switches speculation off; absent:
  // the server's adaptive policy).
  std::optional<int> num_speculative_tokens;
  // The prompt tokens' logprobs with this many alternatives (-1: none): the vLLM extension
  // `prompt_logprobs`, or for completions echo with logprobs (then logprobs' count), which also
  // allows max_tokens 0 (vLLM's echo without generation). Reported as vLLM's prompt_logprobs
  // field (per choice for completions, per response for chat).
  int prompt_logprobs = -1;
  std::vector<std::string> bad_words;  // vLLM: words that may not be generated
  // vLLM: keep only the last N prompt tokens (-1: max_model_len).
  std::optional<int64_t> truncate_prompt_tokens;
  bool return_token_ids = false;  // vLLM: prompt_token_ids and token_ids in the response
  // response_format / structured_outputs / guided_*: the requested constraint, if any.
  StructuredRequest structured;
  // vLLM's per-request multimodal options (merged over the server's --mm-processor-kwargs /
  // --media-io-kwargs); null when absent.
  nlohmann::json mm_processor_kwargs, media_io_kwargs;
  // http(s) media the HTTP layer fetched before preparing the request (server/media_prefetch.h);
  // null: remote media are fetched while preparing it.
  std::shared_ptr<const PrefetchedMedia> prefetched_media;
  std::vector<std::string> ignored;
};

struct ChatRequest : CommonRequest {
  nlohmann::json messages;  // as sent (normalised later)
  nlohmann::json tools;     // array or null
  // The same tools with their keys in request order (the template's tojson must print schema
  // properties in the order the client sent them, as Python does). Set by the HTTP layer.
  nlohmann::ordered_json tools_ordered;
  std::string tool_choice;  // "none" | "auto" | "required" | "named"
  std::string tool_choice_name;
  bool parallel_tool_calls = true;
  bool add_generation_prompt = true;
  bool continue_final_message = false;
  nlohmann::json chat_template_kwargs = nlohmann::json::object();
  bool include_reasoning = true;
  bool echo = false;
};

struct CompletionRequest : CommonRequest {
  // One entry per prompt: text, or token ids.
  struct Prompt {
    std::optional<std::string> text;
    std::vector<int32_t> ids;
  };
  std::vector<Prompt> prompts;
  bool echo = false;
};

ChatRequest parse_chat_request(const nlohmann::json& body);
CompletionRequest parse_completion_request(const nlohmann::json& body);

}  // namespace fc
