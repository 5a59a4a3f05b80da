// OpenAI message normalisation before templating (spec §2.3, vLLM chat_utils).
#include <gtest/gtest.h>

#include "chat/gemma4/normalize.h"
#include "core/json_limits.h"

namespace fc::chat::gemma4 {
namespace {

using json = nlohmann::json;

json norm(const json& messages, const NormalizeOptions& o = {}) {
  return normalize_messages(messages, o).messages;
}

TEST(Gemma4Normalize, StringContentBecomesTextParts) {
  json out = norm(json::parse(R"([
    {"role":"system","content":"You are X"},
    {"role":"user","content":"Hi","extra_field":1},
    {"role":"assistant","content":null}])"));
  EXPECT_EQ(out, json::parse(R"([
    {"role":"system","content":[{"type":"text","text":"You are X"}]},
    {"role":"user","content":[{"type":"text","text":"Hi"}]},
    {"role":"assistant","content":[]}])"));
}

TEST(Gemma4Normalize, ContentPartsMapped) {
  NormalizedMessages n = normalize_messages(json::parse(R"([{"role":"user","content":[
    {"type":"text","text":"Look:"},
    {"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}},
    {"type":"input_audio","input_audio":{"data":"UklG","format":"wav"}},
    {"type":"video_url","video_url":{"url":"http://v/x.mp4"}},
    {"type":"audio_url","audio_url":{"url":"http://a/x.wav"}},
    {"image_url":{"url":"http://i/untyped.png"}},
    "bare string part",
    {"type":"refusal","refusal":"no"},
    {"type":"input_text","text":"it"},
    {"type":"text","text":null}]}])"));
  EXPECT_EQ(n.messages[0]["content"], json::parse(R"([
    {"type":"text","text":"Look:"},{"type":"image"},{"type":"audio"},{"type":"video"},
    {"type":"audio"},{"type":"image"},{"type":"text","text":"bare string part"},
    {"type":"text","text":"no"},{"type":"text","text":"it"}])"));
  ASSERT_EQ(n.media.size(), 5u);
  EXPECT_EQ(n.media[0].modality, "image");
  EXPECT_EQ(n.media[0].part["image_url"]["url"], "data:image/png;base64,AAAA");
  EXPECT_EQ(n.media[1].modality, "audio");
  EXPECT_EQ(n.media[2].modality, "video");
  EXPECT_EQ(n.media[4].message_index, 0u);
}

TEST(Gemma4Normalize, StringFormatJoinsText) {
  NormalizeOptions o;
  o.content_format = ContentFormat::kString;
  json out = norm(json::parse(R"([{"role":"user","content":[{"type":"text","text":"a"},
    {"type":"image_url","image_url":{"url":"u"}},{"type":"text","text":"b"}]},
    {"role":"assistant","content":null}])"),
                  o);
  EXPECT_EQ(out[0]["content"], "a\nb");
  EXPECT_EQ(out[1]["content"], "");
}

TEST(Gemma4Normalize, ToolCallArgumentsParsed) {
  json out = norm(json::parse(R"([
    {"role":"user","content":"Weather?"},
    {"role":"assistant","content":null,"tool_calls":[
      {"id":"c1","type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Paris\", \"n\": 2}"}},
      {"id":"c2","function":{"name":"noargs","arguments":""}},
      {"id":"c3","type":"function","function":{"name":"nullargs","arguments":null}},
      {"id":"c4","type":"function","function":{"name":"dictargs","arguments":{"k":[1,2]}}},
      {"id":"c5","type":"function","function":{"name":"listargs","arguments":"[1,2]"}},
      {"id":"c6","type":"function","function":{"name":"blank","arguments":"  "}},
      {"id":"c7","type":"function","function":{"name":"missing"}}]},
    {"role":"tool","tool_call_id":"c1","content":"{\"temp\": 20}"}])"));
  const json& calls = out[1]["tool_calls"];
  ASSERT_EQ(calls.size(), 7u);
  EXPECT_EQ(calls[0]["function"]["arguments"], json::parse(R"({"city":"Paris","n":2})"));
  EXPECT_TRUE(calls[0]["function"]["arguments"]["n"].is_number_integer());
  EXPECT_EQ(calls[0]["id"], "c1");
  for (int i : {1, 2, 4, 5, 6}) EXPECT_EQ(calls[i]["function"]["arguments"], json::object()) << i;
  EXPECT_EQ(calls[3]["function"]["arguments"], json::parse(R"({"k":[1,2]})"));
  EXPECT_EQ(out[2],
            json::parse(R"({"role":"tool","tool_call_id":"c1","content":"{\"temp\": 20}"})"));
}

TEST(Gemma4Normalize, MalformedArgumentsAreInvalidRequest) {
  json msgs = json::parse(R"([{"role":"assistant","tool_calls":[
    {"id":"c1","type":"function","function":{"name":"f","arguments":"{\"city\": \"Par"}}]}])");
  try {
    norm(msgs);
    FAIL() << "expected InvalidRequest";
  } catch (const InvalidRequest& e) {
    EXPECT_NE(std::string(e.what()).find("messages[0].tool_calls[0].function.arguments"),
              std::string::npos)
        << e.what();
    EXPECT_EQ(e.param(), "messages");
  }
  // InvalidRequest is an fc::Error, so generic handlers still catch it.
  EXPECT_THROW(norm(msgs), fc::Error);
  NormalizeOptions lenient;
  lenient.coerce_invalid_tool_arguments = true;
  EXPECT_EQ(norm(msgs, lenient)[0]["tool_calls"][0]["function"]["arguments"], json::object());
}

TEST(Gemma4Normalize, DeeplyNestedArgumentsStringIsRefusedNotCopied) {
  // A tool-call arguments string is JSON text inside the request: parsed with the same nesting
  // bound as the body (10^6 levels would overflow the stack in the copy into the message).
  const std::string deep = std::string(1'000'000, '[') + std::string(1'000'000, ']');
  json msgs = json::array(
      {{{"role", "assistant"},
        {"tool_calls", json::array({{{"type", "function"},
                                     {"function", {{"name", "f"}, {"arguments", deep}}}}})}}});
  for (bool lenient : {false, true}) {
    NormalizeOptions o;
    o.coerce_invalid_tool_arguments = lenient;  // too deep is refused even when lenient
    try {
      norm(msgs, o);
      FAIL() << "accepted";
    } catch (const InvalidRequest& e) {
      EXPECT_NE(std::string(e.what()).find("256 levels (the limit)"), std::string::npos)
          << e.what();
      EXPECT_EQ(e.param(), "messages");
    }
  }
  // At the limit it is valid JSON (not an object here, so {} as vLLM coerces it).
  msgs[0]["tool_calls"][0]["function"]["arguments"] =
      "{\"a\":" + std::string(254, '[') + std::string(254, ']') + "}";
  EXPECT_EQ(json_depth(norm(msgs)[0]["tool_calls"][0]["function"]["arguments"]), 255);
}

TEST(Gemma4Normalize, EmptyToolCallsDropped) {
  json out = norm(json::parse(R"([{"role":"assistant","content":"x","tool_calls":[]},
                                  {"role":"assistant","content":"y","tool_calls":null}])"));
  EXPECT_FALSE(out[0].contains("tool_calls"));
  EXPECT_FALSE(out[1].contains("tool_calls"));
}

TEST(Gemma4Normalize, BadToolCallsRejected) {
  EXPECT_THROW(norm(json::parse(R"([{"role":"assistant","tool_calls":["x"]}])")), InvalidRequest);
  EXPECT_THROW(
      norm(json::parse(R"([{"role":"assistant","tool_calls":[{"type":"code","function":{}}]}])")),
      InvalidRequest);
  EXPECT_THROW(norm(json::parse(R"([{"role":"assistant","tool_calls":[{"type":"function"}]}])")),
               InvalidRequest);
  EXPECT_THROW(norm(json::parse(R"([{"role":"assistant","tool_calls":{"a":1}}])")), InvalidRequest);
}

TEST(Gemma4Normalize, ReasoningBothNamesAccepted) {
  json out = norm(json::parse(R"([
    {"role":"assistant","content":"a","reasoning_content":"old name"},
    {"role":"assistant","content":"b","reasoning":"new name"},
    {"role":"assistant","content":"c","reasoning":"wins","reasoning_content":"loses"},
    {"role":"assistant","content":"d","reasoning":null,"reasoning_content":"fallback"},
    {"role":"user","content":"e","reasoning":"dropped for users"}])"));
  EXPECT_EQ(out[0]["reasoning"], "old name");
  EXPECT_EQ(out[0]["reasoning_content"], "old name");
  EXPECT_EQ(out[1]["reasoning"], "new name");
  EXPECT_EQ(out[1]["reasoning_content"], "new name");
  EXPECT_EQ(out[2]["reasoning"], "wins");
  EXPECT_EQ(out[3]["reasoning"], "fallback");
  EXPECT_FALSE(out[4].contains("reasoning"));
  EXPECT_THROW(norm(json::parse(R"([{"role":"assistant","reasoning":5}])")), InvalidRequest);
}

TEST(Gemma4Normalize, ToolMessages) {
  json out = norm(json::parse(R"([
    {"role":"tool","tool_call_id":"c1","content":"plain"},
    {"role":"tool","tool_call_id":"c2","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},
    {"role":"tool","tool_call_id":"c3","name":"snap","content":[{"type":"text","text":"see"},
      {"type":"image_url","image_url":{"url":"u"}}]},
    {"role":"tool","content":null}])"));
  EXPECT_EQ(out[0]["content"], "plain");
  EXPECT_EQ(out[1]["content"], "a\nb");
  EXPECT_EQ(out[2]["content"], json::parse(R"([{"type":"text","text":"see"},{"type":"image"}])"));
  EXPECT_EQ(out[2]["name"], "snap");
  EXPECT_EQ(out[3], json::parse(R"({"role":"tool","content":""})"));
}

TEST(Gemma4Normalize, DeveloperGetsTools) {
  json out = norm(json::parse(R"([{"role":"developer","content":"d"}])"));
  EXPECT_TRUE(out[0].contains("tools"));
  EXPECT_TRUE(out[0]["tools"].is_null());
}

TEST(Gemma4Normalize, InvalidShapesRejected) {
  EXPECT_THROW(norm(json::object()), InvalidRequest);
  EXPECT_THROW(norm(json::parse(R"([1])")), InvalidRequest);
  EXPECT_THROW(norm(json::parse(R"([{"content":"no role"}])")), InvalidRequest);
  EXPECT_THROW(norm(json::parse(R"([{"role":"user","content":5}])")), InvalidRequest);
  EXPECT_THROW(norm(json::parse(R"([{"role":"user","content":[{"type":"hologram"}]}])")),
               InvalidRequest);
  EXPECT_THROW(norm(json::parse(R"([{"role":"user","content":[{"foo":1}]}])")), InvalidRequest);
  EXPECT_THROW(norm(json::parse(R"([{"role":"user","content":[{"type":3}]}])")), InvalidRequest);
  EXPECT_THROW(norm(json::parse(R"([{"role":"user","content":[{"type":"text","text":1}]}])")),
               InvalidRequest);
  EXPECT_THROW(norm(json::parse(R"([{"role":"user","content":[7]}])")), InvalidRequest);
}

}  // namespace
}  // namespace fc::chat::gemma4
