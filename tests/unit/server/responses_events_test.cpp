// Chat chunks -> Responses events and items (vLLM's event order, sequence numbers from 0).
#include <gtest/gtest.h>

#include "server/responses_events.h"

namespace fc {
namespace {

using nlohmann::json;

json chunk(json delta, json finish = nullptr, std::vector<int32_t> ids = {}) {
  json ch = {{"index", 0}, {"delta", delta}, {"logprobs", nullptr}, {"finish_reason", finish}};
  if (!ids.empty()) ch["token_ids"] = ids;
  return {{"object", "chat.completion.chunk"}, {"choices", json::array({ch})}};
}

struct Recorder {
  std::vector<json> events;
  ResponseBuilder b;
  Recorder()
      : b(json{{"id", "resp_1"}, {"object", "response"}}, opts(),
          [this](const json& e) { events.push_back(e); }) {}
  static ResponseBuilderOptions opts() {
    ResponseBuilderOptions o;
    o.channel_open = 100;
    o.channel_close = 101;
    o.turn_open = 105;
    o.tool_call_open = 48;
    return o;
  }
  std::vector<std::string> types() const {
    std::vector<std::string> t;
    for (const json& e : events) t.push_back(e["type"]);
    return t;
  }
};

TEST(ResponseBuilder, ReasoningThenTextThenToolCall) {
  Recorder r;
  r.b.start();
  json first = chunk({{"role", "assistant"}, {"content", ""}});
  first["prompt_token_ids"] = {2, 105, 7};
  r.b.chunk(first);
  r.b.chunk(chunk({{"reasoning", "Two plus"}}, nullptr, {100, 45518, 9, 10}));
  r.b.chunk(chunk({{"reasoning", " two."}, {"content", "4"}}, nullptr, {11, 101, 12}));
  r.b.chunk(chunk({{"tool_calls",
                    {{{"index", 0},
                      {"id", "chatcmpl-tool-abc"},
                      {"type", "function"},
                      {"function", {{"name", "get_weather"}, {"arguments", ""}}}}}}}));
  r.b.chunk(
      chunk({{"tool_calls", {{{"index", 0}, {"function", {{"arguments", "{\"city\": "}}}}}}}));
  r.b.chunk(chunk({{"tool_calls", {{{"index", 0}, {"function", {{"arguments", "\"Paris\"}"}}}}}}},
                  "tool_calls", {48, 13, 49, 50}));
  r.b.chunk({{"choices", json::array()},
             {"usage", {{"prompt_tokens", 3}, {"completion_tokens", 11}, {"total_tokens", 14}}}});
  r.b.finish();
  const std::vector<std::string> want = {"response.created",
                                         "response.in_progress",
                                         "response.output_item.added",
                                         "response.reasoning_part.added",
                                         "response.reasoning_text.delta",
                                         "response.reasoning_text.delta",
                                         "response.reasoning_text.done",
                                         "response.reasoning_part.done",
                                         "response.output_item.done",
                                         "response.output_item.added",
                                         "response.content_part.added",
                                         "response.output_text.delta",
                                         "response.output_text.done",
                                         "response.content_part.done",
                                         "response.output_item.done",
                                         "response.output_item.added",
                                         "response.function_call_arguments.delta",
                                         "response.function_call_arguments.delta",
                                         "response.function_call_arguments.done",
                                         "response.output_item.done",
                                         "response.completed"};
  EXPECT_EQ(r.types(), want);
  for (size_t i = 0; i < r.events.size(); ++i) EXPECT_EQ(r.events[i]["sequence_number"], i);
  const json resp = r.b.response();
  EXPECT_EQ(resp["status"], "completed");
  ASSERT_EQ(resp["output"].size(), 3u);
  EXPECT_EQ(resp["output"][0]["type"], "reasoning");
  EXPECT_EQ(resp["output"][0]["content"][0]["text"], "Two plus two.");
  EXPECT_EQ(resp["output"][1]["content"][0]["text"], "4");
  EXPECT_EQ(resp["output"][2]["call_id"], "chatcmpl-tool-abc");
  EXPECT_EQ(resp["output"][2]["arguments"], "{\"city\": \"Paris\"}");
  EXPECT_EQ(resp["output"][2]["name"], "get_weather");
  // Items of response.completed are the streamed ones (same ids), indices follow the output.
  EXPECT_EQ(r.events.back()["response"]["output"], resp["output"]);
  EXPECT_EQ(r.events[2]["item"]["id"], resp["output"][0]["id"]);
  EXPECT_EQ(r.events[9]["output_index"], 1);
  EXPECT_EQ(r.events[15]["output_index"], 2);
  // Reasoning tokens: after <|channel> (100) up to <channel|> (101): 45518, 9, 10, 11.
  EXPECT_EQ(resp["usage"]["output_tokens_details"]["reasoning_tokens"], 4);
  EXPECT_EQ(resp["usage"]["input_tokens"], 3);
  EXPECT_EQ(resp["usage"]["total_tokens"], 14);
}

TEST(ResponseBuilder, LengthIsIncompleteAndOpenChannelCountsFromStart) {
  Recorder r;
  r.b.start();
  json first = chunk({{"role", "assistant"}, {"content", ""}});
  first["prompt_token_ids"] = {2, 105, 51, 100, 45518};  // the prompt left a channel open
  r.b.chunk(first);
  r.b.chunk(chunk({{"reasoning", "abc"}}, "length", {7, 8, 9}));
  r.b.chunk(
      {{"choices", json::array()}, {"usage", {{"prompt_tokens", 5}, {"completion_tokens", 3}}}});
  r.b.finish();
  const json resp = r.b.response();
  EXPECT_EQ(resp["status"], "incomplete");
  EXPECT_EQ(resp["incomplete_details"]["reason"], "max_output_tokens");
  EXPECT_EQ(resp["usage"]["output_tokens_details"]["reasoning_tokens"], 3);
}

TEST(ResponseBuilder, TwoToolCallsAreTwoItemsAndFailureIsAnErrorEvent) {
  Recorder r;
  r.b.start();
  for (int i = 0; i < 2; ++i)
    r.b.chunk(chunk({{"tool_calls",
                      {{{"index", i},
                        {"id", "call" + std::to_string(i)},
                        {"function", {{"name", "f"}, {"arguments", "{}"}}}}}}}));
  EXPECT_EQ(r.b.response()["output"].size(), 1u);  // the second is still open
  r.b.fail(500, "engine error: boom");
  EXPECT_EQ(r.events.back()["type"], "error");
  EXPECT_EQ(r.events.back()["message"], "engine error: boom");
  EXPECT_EQ(r.b.response()["status"], "failed");
}

}  // namespace
}  // namespace fc
