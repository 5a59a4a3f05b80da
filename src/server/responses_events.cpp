#include "server/responses_events.h"

#include <random>

namespace fc {

using nlohmann::json;

std::string responses_random_id(const char* prefix) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  char buf[40];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(rng()),
                static_cast<unsigned long long>(rng()));
  return std::string(prefix) + buf;
}

namespace {

// A chat logprobs entry as a Responses delta-event logprob (no bytes).
json delta_logprob(const json& e) {
  json tops = json::array();
  for (const json& t : e.value("top_logprobs", json::array()))
    tops.push_back({{"token", t["token"]}, {"logprob", t["logprob"]}});
  return {{"token", e["token"]}, {"logprob", e["logprob"]}, {"top_logprobs", tops}};
}

}  // namespace

ResponseBuilder::ResponseBuilder(json skeleton, ResponseBuilderOptions opt, Emit emit)
    : resp_(std::move(skeleton)), opt_(opt), emit_(std::move(emit)) {
  resp_["output"] = json::array();
  resp_["usage"] = nullptr;
}

void ResponseBuilder::send(json ev) {
  ev["sequence_number"] = seq_++;
  if (emit_) emit_(ev);
}

void ResponseBuilder::start() {
  resp_["status"] = "in_progress";
  json r = response();
  send({{"type", "response.created"}, {"response", r}});
  send({{"type", "response.in_progress"}, {"response", r}});
}

void ResponseBuilder::close_item() {
  if (state_ == State::kNone) return;
  const int64_t idx = static_cast<int64_t>(output_.size());
  const std::string id = item_.value("id", "");
  switch (state_) {
    case State::kNone:
      return;
    case State::kReasoning:
    case State::kContent: {
      // The text's done event, then its part's, then the item's (below).
      const bool reasoning = state_ == State::kReasoning;
      json part = {{"type", reasoning ? "reasoning_text" : "output_text"}, {"text", text_}};
      json text_done = {
          {"type", reasoning ? "response.reasoning_text.done" : "response.output_text.done"},
          {"item_id", id},
          {"output_index", idx},
          {"content_index", 0},
          {"text", text_}};
      if (!reasoning) {
        part["annotations"] = json::array();
        part["logprobs"] = item_logprobs_;
        text_done["logprobs"] = item_logprobs_;
      }
      send(std::move(text_done));
      send({{"type", reasoning ? "response.reasoning_part.done" : "response.content_part.done"},
            {"item_id", id},
            {"output_index", idx},
            {"content_index", 0},
            {"part", part}});
      item_["content"] = json::array({part});
      break;
    }
    case State::kToolCall:
      send({{"type", "response.function_call_arguments.done"},
            {"item_id", id},
            {"output_index", idx},
            {"name", item_["name"]},
            {"arguments", text_}});
      item_["arguments"] = text_;
      break;
  }
  item_["status"] = "completed";
  send({{"type", "response.output_item.done"}, {"output_index", idx}, {"item", item_}});
  output_.push_back(std::move(item_));
  item_ = json();
  text_.clear();
  item_logprobs_ = json::array();
  state_ = State::kNone;
}

void ResponseBuilder::open_item(State state, json item, const char* part_event, json part) {
  close_item();
  state_ = state;
  item_ = std::move(item);
  const int64_t idx = static_cast<int64_t>(output_.size());
  send({{"type", "response.output_item.added"}, {"output_index", idx}, {"item", item_}});
  if (part_event)
    send({{"type", part_event},
          {"item_id", item_["id"]},
          {"output_index", idx},
          {"content_index", 0},
          {"part", std::move(part)}});
}

void ResponseBuilder::reasoning_delta(const std::string& d) {
  if (state_ != State::kReasoning)
    open_item(State::kReasoning,
              {{"id", responses_random_id("rs_")},
               {"type", "reasoning"},
               {"summary", json::array()},
               {"status", "in_progress"}},
              "response.reasoning_part.added", {{"type", "reasoning_text"}, {"text", ""}});
  text_ += d;
  send({{"type", "response.reasoning_text.delta"},
        {"item_id", item_["id"]},
        {"output_index", static_cast<int64_t>(output_.size())},
        {"content_index", 0},
        {"delta", d}});
}

void ResponseBuilder::content_delta(const std::string& d, const json& logprobs) {
  if (state_ != State::kContent)
    open_item(State::kContent,
              {{"id", responses_random_id("msg_")},
               {"type", "message"},
               {"role", "assistant"},
               {"content", json::array()},
               {"status", "in_progress"}},
              "response.content_part.added",
              {{"type", "output_text"},
               {"text", ""},
               {"annotations", json::array()},
               {"logprobs", json::array()}});
  text_ += d;
  json lps = json::array();
  for (const json& e : logprobs) {
    item_logprobs_.push_back(e);
    lps.push_back(delta_logprob(e));
  }
  send({{"type", "response.output_text.delta"},
        {"item_id", item_["id"]},
        {"output_index", static_cast<int64_t>(output_.size())},
        {"content_index", 0},
        {"delta", d},
        {"logprobs", lps}});
}

void ResponseBuilder::tool_delta(const json& tc) {
  const int index = tc.value("index", 0);
  if (state_ != State::kToolCall || index != tool_index_) {
    tool_index_ = index;
    const json fn = tc.value("function", json::object());
    std::string call_id = tc.value("id", "");
    if (call_id.empty()) call_id = responses_random_id("call_");
    open_item(State::kToolCall,
              {{"id", responses_random_id("fc_")},
               {"type", "function_call"},
               {"call_id", call_id},
               {"name", fn.value("name", "")},
               {"arguments", ""},
               {"status", "in_progress"}},
              nullptr, nullptr);
  }
  const std::string args =
      tc.contains("function") ? tc["function"].value("arguments", std::string()) : "";
  if (args.empty()) return;
  text_ += args;
  send({{"type", "response.function_call_arguments.delta"},
        {"item_id", item_["id"]},
        {"output_index", static_cast<int64_t>(output_.size())},
        {"delta", args}});
}

void ResponseBuilder::chunk(const json& c) {
  if (c.contains("prompt_token_ids") && c["prompt_token_ids"].is_array())
    prompt_ids_ = c["prompt_token_ids"].get<std::vector<int32_t>>();
  if (c.contains("usage") && c["usage"].is_object()) chat_usage_ = c["usage"];
  if (!c.contains("choices") || !c["choices"].is_array()) return;
  for (const json& ch : c["choices"]) {
    if (ch.value("index", 0) != 0) continue;
    if (ch.contains("token_ids") && ch["token_ids"].is_array())
      for (const json& t : ch["token_ids"]) token_ids_.push_back(t.get<int32_t>());
    const json d = ch.value("delta", json::object());
    if (d.contains("reasoning") && d["reasoning"].is_string() &&
        !d["reasoning"].get<std::string>().empty())
      reasoning_delta(d["reasoning"]);
    const json lps = ch.contains("logprobs") && ch["logprobs"].is_object()
                         ? ch["logprobs"].value("content", json::array())
                         : json::array();
    if (d.contains("content") && d["content"].is_string() &&
        !d["content"].get<std::string>().empty())
      content_delta(d["content"], lps);
    else if (state_ == State::kContent && opt_.logprobs)
      for (const json& e : lps) item_logprobs_.push_back(e);
    if (d.contains("tool_calls") && d["tool_calls"].is_array())
      for (const json& tc : d["tool_calls"]) tool_delta(tc);
    if (ch.contains("finish_reason") && ch["finish_reason"].is_string())
      finish_reason_ = ch["finish_reason"];
  }
}

int ResponseBuilder::reasoning_tokens() const {
  // vLLM's count_reasoning_tokens: the tokens after the first channel opener (or from the start
  // when the prompt left a channel open) up to the first closer, markers excluded.
  bool in = false;
  for (auto it = prompt_ids_.rbegin(); it != prompt_ids_.rend(); ++it) {
    if (*it == opt_.channel_open) {
      in = true;
      break;
    }
    if (*it == opt_.channel_close || *it == opt_.turn_open || *it == opt_.tool_call_open) break;
  }
  size_t start = 0;
  if (!in) {
    size_t i = 0;
    while (i < token_ids_.size() && token_ids_[i] != opt_.channel_open) ++i;
    if (i == token_ids_.size()) return 0;
    start = i + 1;
  }
  size_t end = start;
  while (end < token_ids_.size() && token_ids_[end] != opt_.channel_close) ++end;
  return static_cast<int>(end - start);
}

json ResponseBuilder::usage() const {
  if (!chat_usage_.is_object()) return nullptr;
  const int64_t in = chat_usage_.value("prompt_tokens", 0);
  const int64_t out = chat_usage_.value("completion_tokens", 0);
  int64_t cached = 0;
  if (chat_usage_.contains("prompt_tokens_details") &&
      chat_usage_["prompt_tokens_details"].is_object())
    cached = chat_usage_["prompt_tokens_details"].value("cached_tokens", 0);
  return {{"input_tokens", in},
          {"input_tokens_details", {{"cached_tokens", cached}, {"cache_write_tokens", 0}}},
          {"output_tokens", out},
          {"output_tokens_details", {{"reasoning_tokens", reasoning_tokens()}}},
          {"total_tokens", in + out}};
}

void ResponseBuilder::finish() {
  close_item();
  if (finish_reason_ == "length") {
    resp_["status"] = "incomplete";
    resp_["incomplete_details"] = {{"reason", "max_output_tokens"}};
  } else if (finish_reason_ == "abort") {
    resp_["status"] = "cancelled";
  } else {
    resp_["status"] = "completed";
  }
  resp_["usage"] = usage();
  send({{"type", "response.completed"}, {"response", response()}});
}

void ResponseBuilder::cancelled() {
  close_item();
  resp_["status"] = "cancelled";
  resp_["usage"] = usage();
}

void ResponseBuilder::fail(int http_status, const std::string& message) {
  resp_["status"] = "failed";
  const std::string code = http_status >= 500 ? "server_error" : "invalid_request";
  resp_["error"] = {{"code", code}, {"message", message}};
  send({{"type", "error"}, {"code", code}, {"message", message}, {"param", nullptr}});
}

json ResponseBuilder::response() const {
  json r = resp_;
  r["output"] = output_;
  return r;
}

}  // namespace fc
