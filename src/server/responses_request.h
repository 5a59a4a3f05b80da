// POST /v1/responses bodies: validation (every problem an ApiError(400) naming the field) and
// the conversion of Responses input items into chat messages, so a response runs through the
// chat path (template, tokenizer, engine, Gemma 4 parsers). Field set and conversions follow
// [vllm-project/vllm: vllm/entrypoints/openai/responses/protocol.py `ResponsesRequest`] and
// [vllm-project/vllm: vllm/entrypoints/openai/responses/utils.py `construct_input_messages`,
// `_construct_message_from_response_item`]; shapes follow the openai SDK's
// openai/types/responses.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "server/api_error.h"
#include "server/openai_request.h"
#include "server/structured_request.h"

namespace fc {

struct ResponsesRequest {
  std::string model;
  bool stream = false;
  bool background = false;
  bool store = true;
  std::optional<std::string> previous_response_id;
  std::optional<std::string> instructions;
  // The request's input as chat messages (no history, no instructions).
  nlohmann::json input_messages = nlohmann::json::array();
  // The last input item is an unfinished assistant message or reasoning (status in_progress or
  // incomplete): the model continues it (vLLM's should_continue_final_message).
  bool continue_final = false;
  // Echoed in the Response object as sent (Responses shapes).
  nlohmann::json tools = nlohmann::json::array();
  nlohmann::json tool_choice = "auto";
  bool parallel_tool_calls = true;
  nlohmann::json reasoning = nullptr;
  nlohmann::json text = nullptr;
  nlohmann::json metadata = nullptr;
  std::optional<int64_t> max_output_tokens;
  std::optional<int64_t> max_tool_calls;
  int top_logprobs = 0;
  bool logprobs = false;  // include contains "message.output_text.logprobs"
  std::string truncation = "disabled";
  std::string service_tier = "auto";
  nlohmann::json user = nullptr;
  // The chat request body the response runs as, without "messages" (added once the history is
  // known); built by parse_responses_request.
  nlohmann::json chat_body = nlohmann::json::object();
  nlohmann::ordered_json chat_tools_ordered;  // tools in the chat shape, keys in request order
  // text.format json_schema as a structured-output request (none otherwise); responses_chat_request
  // puts it into the chat request.
  StructuredRequest structured;
};

// Bounds on one request (the body size is bounded by --max-request-bytes and its nesting by
// core/json_limits.h's parser before this).
inline constexpr size_t kMaxResponseInputItems = 4096;
inline constexpr size_t kMaxResponseTools = 256;

// `ordered` is the same body parsed order-preserving (tool schemas keep their key order).
ResponsesRequest parse_responses_request(const nlohmann::json& body,
                                         const nlohmann::ordered_json& ordered);

// Responses items (input items, or a stored response's output items) appended to `messages` as
// chat messages: a function_call, reasoning or assistant message item joins the assistant
// message before it where vLLM's rules allow. `param` names the list in errors ("input").
void append_items_as_messages(const nlohmann::json& items, nlohmann::json& messages,
                              const std::string& param);

// The ChatRequest a response runs as: chat_body plus `messages`, through parse_chat_request
// (its errors renamed to the Responses fields: max_completion_tokens -> max_output_tokens,
// messages -> input, response_format -> text.format).
ChatRequest responses_chat_request(const ResponsesRequest& r, const nlohmann::json& messages);

// An ApiError from the chat path with its param (and message prefix) renamed to the Responses
// field it came from.
[[noreturn]] void rethrow_as_responses_error(const ApiError& e);

}  // namespace fc
