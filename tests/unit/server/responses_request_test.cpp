// Responses request validation and input items -> chat messages (vLLM's conversion rules).
#include <gtest/gtest.h>

#include "server/responses_request.h"

namespace fc {
namespace {

using nlohmann::json;

ResponsesRequest parse(const std::string& body) {
  return parse_responses_request(json::parse(body), nlohmann::ordered_json::parse(body));
}

std::string param_of(const std::string& body) {
  try {
    parse(body);
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status(), 400);
    return e.param();
  }
  return "(accepted)";
}

TEST(ResponsesRequest, StringInputAndFields) {
  ResponsesRequest r = parse(
      R"({"model":"m","input":"Hi","instructions":"Be brief","max_output_tokens":5,
          "temperature":0,"reasoning":{"effort":"none"},"store":false,"metadata":{"k":"v"}})");
  EXPECT_EQ(r.input_messages, json::parse(R"([{"role":"user","content":"Hi"}])"));
  EXPECT_EQ(*r.instructions, "Be brief");
  EXPECT_FALSE(r.store);
  EXPECT_EQ(r.chat_body["max_completion_tokens"], 5);
  EXPECT_EQ(r.chat_body["reasoning_effort"], "none");
  EXPECT_EQ(r.chat_body["temperature"], 0);
  EXPECT_TRUE(r.chat_body["stream"]);
  EXPECT_TRUE(r.chat_body["return_token_ids"]);
}

TEST(ResponsesRequest, ToolRoundTripItemsMergeIntoOneAssistantMessage) {
  ResponsesRequest r = parse(R"({"input":[
    {"role":"user","content":[{"type":"input_text","text":"Weather?"}]},
    {"type":"reasoning","id":"rs_1","summary":[],"content":[{"type":"reasoning_text","text":"Look it up."}]},
    {"type":"function_call","call_id":"c1","name":"get_weather","arguments":"{\"city\": \"Paris\"}"},
    {"type":"function_call_output","call_id":"c1","output":"{\"temp\": 20}"}],
    "tools":[{"type":"function","name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}]})");
  EXPECT_EQ(r.input_messages, json::parse(R"([
    {"role":"user","content":[{"type":"text","text":"Weather?"}]},
    {"role":"assistant","reasoning":"Look it up.","tool_calls":[{"id":"c1","type":"function",
      "function":{"name":"get_weather","arguments":"{\"city\": \"Paris\"}"}}]},
    {"role":"tool","content":"{\"temp\": 20}","tool_call_id":"c1"}])"));
  EXPECT_EQ(json(r.chat_tools_ordered), json::parse(R"([{"type":"function","function":{
    "name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}])"));
  // Key order of the schema is kept (the template prints it as sent).
  EXPECT_EQ(r.chat_tools_ordered[0]["function"]["parameters"].begin().key(), "type");
}

TEST(ResponsesRequest, OutputItemsJoinThePreviousAssistantMessage) {
  json msgs = json::array({{{"role", "user"}, {"content", "Q"}}});
  append_items_as_messages(json::parse(R"([
    {"type":"reasoning","id":"rs","summary":[{"type":"summary_text","text":"S"}]},
    {"type":"message","role":"assistant","status":"completed","id":"m",
     "content":[{"type":"output_text","text":"A","annotations":[]}]}])"),
                           msgs, "input");
  EXPECT_EQ(msgs, json::parse(R"([{"role":"user","content":"Q"},
                                  {"role":"assistant","reasoning":"S","content":"A"}])"));
}

TEST(ResponsesRequest, ImagesBecomeChatImageParts) {
  ResponsesRequest r = parse(R"({"input":[{"role":"user","content":[
    {"type":"input_text","text":"What is this?"},
    {"type":"input_image","image_url":"data:image/png;base64,AAAA","detail":"auto"}]}]})");
  EXPECT_EQ(r.input_messages[0]["content"][1],
            json::parse(R"({"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA",
                            "detail":"auto"}})"));
}

TEST(ResponsesRequest, BadRequestsNameTheField) {
  EXPECT_EQ(param_of(R"({})"), "input");
  EXPECT_EQ(param_of(R"({"input":[]})"), "input");
  EXPECT_EQ(param_of(R"({"input":5})"), "input");
  EXPECT_EQ(param_of(R"({"input":[{"type":"web_search_call"}]})"), "input[0].type");
  EXPECT_EQ(param_of(R"({"input":[{"role":"robot","content":"x"}]})"), "input[0].role");
  EXPECT_EQ(param_of(R"({"input":[{"type":"function_call","name":"f","arguments":"{}"}]})"),
            "input[0].call_id");
  EXPECT_EQ(param_of(R"({"input":"x","tools":[{"type":"web_search_preview"}]})"), "tools[0].type");
  EXPECT_EQ(param_of(R"({"input":"x","tools":[{"type":"function"}]})"), "tools[0].name");
  EXPECT_EQ(param_of(R"({"input":"x","tool_choice":{"type":"function","name":"nope"}})"),
            "tool_choice.name");
  EXPECT_EQ(param_of(R"({"input":"x","text":{"format":{"type":"json_schema","schema":{}}}})"),
            "text.format");
  EXPECT_EQ(param_of(R"({"input":"x","reasoning":{"effort":"max"}})"), "reasoning.effort");
  EXPECT_EQ(param_of(R"({"input":"x","max_output_tokens":0})"), "max_output_tokens");
  EXPECT_EQ(param_of(R"({"input":"x","background":true,"store":false})"), "background");
  EXPECT_EQ(param_of(R"({"input":"x","prompt":{"id":"p"}})"), "prompt");
  EXPECT_EQ(param_of(R"({"input":"x","include":["nope"]})"), "include");
  EXPECT_EQ(param_of(R"({"input":"x","metadata":{"k":1}})"), "metadata");
  EXPECT_EQ(param_of(R"({"input":[{"type":"reasoning","encrypted_content":"zz"}]})"),
            "input[0].encrypted_content");
  EXPECT_EQ(param_of(R"({"input":"x","truncation":"middle"})"), "truncation");
}

TEST(ResponsesRequest, ChatErrorsAreRenamed) {
  ResponsesRequest r = parse(R"({"input":"x","top_k":"many"})");
  try {
    responses_chat_request(r, r.input_messages);
    FAIL() << "top_k \"many\" accepted";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status(), 400);
  }
  try {
    rethrow_as_responses_error(
        ApiError::bad_request("max_completion_tokens: too big", "max_completion_tokens"));
  } catch (const ApiError& e) {
    EXPECT_EQ(e.param(), "max_output_tokens");
    EXPECT_STREQ(e.what(), "max_output_tokens: too big");
  }
  try {
    rethrow_as_responses_error(
        ApiError::bad_request("tools[1].function.name: bad", "tools[1].function.name"));
  } catch (const ApiError& e) {
    EXPECT_EQ(e.param(), "tools[1].name");
    EXPECT_STREQ(e.what(), "tools[1].name: bad");
  }
}

}  // namespace
}  // namespace fc
