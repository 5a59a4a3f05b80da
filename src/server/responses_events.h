// Chat completion chunks -> the Responses API: output items and the streaming event sequence.
// Every response (streamed or not) is built from the chat path's stream, so both give the same
// items. The sequence is vLLM's for parsers that are not Harmony
// [vllm-project/vllm: vllm/entrypoints/openai/responses/streaming_events.py
// `SimpleStreamingEventProcessor`, serving.py `responses_stream_generator`]:
//   response.created, response.in_progress,
//   per output item, in output order, one of
//     reasoning: output_item.added, reasoning_part.added, reasoning_text.delta*,
//                reasoning_text.done, reasoning_part.done, output_item.done
//     message:   output_item.added, content_part.added, output_text.delta*,
//                output_text.done, content_part.done, output_item.done
//     function_call: output_item.added, function_call_arguments.delta*,
//                function_call_arguments.done, output_item.done
//   response.completed (status completed, or incomplete after max_output_tokens),
// each with sequence_number 0, 1, 2, ... An error after the start is an `error` event instead
// of response.completed. Differences from vLLM, on purpose: the ids in response.completed are
// the ones streamed (vLLM makes new ones there), call_id is the parser's tool-call id in both
// modes, and function_call_arguments.done is always sent.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace fc {

// "<prefix>" + 32 random hex digits (vLLM's random_uuid style ids: resp_, msg_, rs_, fc_).
std::string responses_random_id(const char* prefix);

struct ResponseBuilderOptions {
  bool logprobs = false;  // include message.output_text.logprobs
  // Token ids of the thought channel markers, for usage.output_tokens_details.reasoning_tokens.
  int32_t channel_open = -1, channel_close = -1;
  int32_t turn_open = -1, tool_call_open = -1;
};

class ResponseBuilder {
 public:
  using Emit = std::function<void(const nlohmann::json& event)>;
  // `skeleton`: the Response object without output/usage (id, created_at, model, echoed request
  // fields); its status is set here.
  ResponseBuilder(nlohmann::json skeleton, ResponseBuilderOptions opt, Emit emit);

  // response.created and response.in_progress.
  void start();
  // One chat.completion.chunk as the chat stream sends it (choice 0 only: Responses have n=1).
  void chunk(const nlohmann::json& chat_chunk);
  // The chat stream ended normally: closes the open item; response.completed.
  void finish();
  // Stopped by cancellation: closes the open item; status "cancelled", no completed event.
  void cancelled();
  // A failure after start(): an `error` event; status "failed".
  void fail(int http_status, const std::string& message);

  // The Response object as it stands (output so far, status, usage once finished).
  nlohmann::json response() const;
  int64_t events_sent() const { return seq_; }
  // The chat stream's finish_reason so far ("" before the end; "abort" when it was aborted).
  const std::string& finish_reason() const { return finish_reason_; }

 private:
  enum class State { kNone, kReasoning, kContent, kToolCall };
  void send(nlohmann::json ev);
  // Closes the open item, then opens `item` (output_item.added, and the part event if any).
  void open_item(State state, nlohmann::json item, const char* part_event, nlohmann::json part);
  void close_item();
  void reasoning_delta(const std::string& d);
  void content_delta(const std::string& d, const nlohmann::json& logprobs);
  void tool_delta(const nlohmann::json& tc);
  nlohmann::json usage() const;
  int reasoning_tokens() const;

  nlohmann::json resp_;
  ResponseBuilderOptions opt_;
  Emit emit_;
  int64_t seq_ = 0;
  nlohmann::json output_ = nlohmann::json::array();  // finished items
  State state_ = State::kNone;
  nlohmann::json item_;  // the open item
  std::string text_;     // its text / arguments so far
  nlohmann::json item_logprobs_ = nlohmann::json::array();
  int tool_index_ = -1;
  std::string finish_reason_;
  nlohmann::json chat_usage_;
  std::vector<int32_t> prompt_ids_, token_ids_;
};

}  // namespace fc
