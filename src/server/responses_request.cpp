#include "server/responses_request.h"

#include <cstring>
#include <set>
#include <utility>
#include <vector>

#include "server/api_error.h"
#include "server/json_fields.h"

namespace fc {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;

using json_fields::bad;
using json_fields::boolean;
using json_fields::field;
using json_fields::string;

// An integer field within [lo, hi] (5.0 accepted as 5, as pydantic does).
std::optional<int64_t> integer(const json& b, const char* k, int64_t lo, int64_t hi) {
  const std::optional<int64_t> x = json_fields::integer(b, k);
  if (x && (*x < lo || *x > hi))
    bad(k, "must be between " + std::to_string(lo) + " and " + std::to_string(hi) + ", got " +
               std::to_string(*x));
  return x;
}

// One text-like part's text; `param` names the part in errors.
std::string part_text(const json& part, const std::string& param) {
  if (!part.contains("text") || !part["text"].is_string()) bad(param + ".text", "must be a string");
  return part["text"].get<std::string>();
}

// An input_image part in the shape of the chat path's image part. The chat path refuses media
// today with its usual 400 ("image, audio and video inputs are not supported yet"); once images
// are supported there, Responses images work through this one conversion.
json input_image_to_chat_part(const json& part, const std::string& param) {
  if (part.contains("file_id") && !part["file_id"].is_null())
    bad(param + ".file_id", "file ids are not supported (send image_url as a URL or data URL)");
  const json* url = field(part, "image_url");
  if (!url || !url->is_string() || url->get<std::string>().empty())
    bad(param + ".image_url", "must be a URL or data URL string");
  json img = {{"url", *url}};
  if (const json* d = field(part, "detail")) img["detail"] = *d;
  return {{"type", "image_url"}, {"image_url", img}};
}

// A message item's content as chat content: a string stays a string; parts become chat parts.
json message_content(const json& content, const std::string& param) {
  if (content.is_string()) return content;
  if (!content.is_array()) bad(param, "must be a string or a list of content parts");
  json parts = json::array();
  for (size_t i = 0; i < content.size(); ++i) {
    const json& p = content[i];
    const std::string pp = param + "[" + std::to_string(i) + "]";
    if (!p.is_object() || !p.contains("type") || !p["type"].is_string())
      bad(pp, "must be an object with a string \"type\"");
    const std::string t = p["type"];
    if (t == "input_text" || t == "output_text" || t == "text" || t == "refusal") {
      parts.push_back({{"type", "text"},
                       {"text", t == "refusal" && p.contains("refusal")
                                    ? part_text({{"text", p["refusal"]}}, pp)
                                    : part_text(p, pp)}});
    } else if (t == "input_image") {
      parts.push_back(input_image_to_chat_part(p, pp));
    } else if (t == "input_file" || t == "input_audio") {
      bad(pp + ".type", "'" + t + "' parts are not supported");
    } else {
      bad(pp + ".type", "unknown content part type '" + t + "'");
    }
  }
  return parts;
}

// The first text of an assistant message item (vLLM keeps only content[0].text).
std::string assistant_text(const json& content, const std::string& param) {
  if (content.is_string()) return content;
  if (content.is_null()) return "";
  if (!content.is_array()) bad(param, "must be a string or a list of content parts");
  if (content.empty()) return "";
  const json& p = content[0];
  if (!p.is_object()) bad(param + "[0]", "must be an object");
  if (p.value("type", "") == "refusal" && p.contains("refusal") && p["refusal"].is_string())
    return p["refusal"];
  return part_text(p, param + "[0]");
}

json* last_assistant(json& messages) {
  if (messages.empty() || messages.back().value("role", "") != "assistant") return nullptr;
  return &messages.back();
}

bool unset(const json& m, const char* k) {
  return !m.contains(k) || m[k].is_null();
}

// One reasoning item's text: content[0].text, else summary[0].text (vLLM).
std::string reasoning_text(const json& item, const std::string& param) {
  if (const json* e = field(item, "encrypted_content"))
    if (!(e->is_string() && e->get<std::string>().empty()))
      bad(param + ".encrypted_content", "encrypted reasoning content is not supported");
  for (const char* k : {"content", "summary"}) {
    const json* v = field(item, k);
    if (!v) continue;
    if (!v->is_array()) bad(param + "." + k, "must be a list");
    if (v->empty()) continue;
    return part_text((*v)[0], param + "." + k + "[0]");
  }
  return "";
}

}  // namespace

void append_items_as_messages(const json& items, json& messages, const std::string& param) {
  for (size_t i = 0; i < items.size(); ++i) {
    const json& it = items[i];
    const std::string p = param + "[" + std::to_string(i) + "]";
    if (!it.is_object()) bad(p, "must be an object");
    std::string type;
    if (const json* t = field(it, "type")) {
      if (!t->is_string()) bad(p + ".type", "must be a string");
      type = *t;
    } else if (it.contains("role")) {
      type = "message";  // EasyInputMessage
    } else {
      bad(p, "needs a \"type\" (or a \"role\" for a message)");
    }
    json* prev = last_assistant(messages);
    if (type == "message") {
      const std::optional<std::string> role = string(it, "role");
      if (!role) bad(p + ".role", "is required");
      if (!it.contains("content")) bad(p + ".content", "is required");
      if (*role == "assistant") {
        const std::string text = assistant_text(it["content"], p + ".content");
        if (prev && unset(*prev, "content")) {
          (*prev)["content"] = text;
        } else {
          messages.push_back({{"role", "assistant"}, {"content", text}});
        }
      } else if (*role == "user" || *role == "system" || *role == "developer") {
        messages.push_back(
            {{"role", *role}, {"content", message_content(it["content"], p + ".content")}});
      } else {
        bad(p + ".role", "must be user, assistant, system or developer, got '" + *role + "'");
      }
    } else if (type == "function_call") {
      const std::optional<std::string> call_id = string(it, "call_id");
      const std::optional<std::string> name = string(it, "name");
      const std::optional<std::string> args = string(it, "arguments");
      if (!call_id || call_id->empty()) bad(p + ".call_id", "is required");
      if (!name || name->empty()) bad(p + ".name", "is required");
      if (!args) bad(p + ".arguments", "is required (a JSON object as a string)");
      json call = {{"id", *call_id},
                   {"type", "function"},
                   {"function", {{"name", *name}, {"arguments", *args}}}};
      if (prev) {
        if (unset(*prev, "tool_calls")) (*prev)["tool_calls"] = json::array();
        (*prev)["tool_calls"].push_back(std::move(call));
      } else {
        messages.push_back({{"role", "assistant"}, {"tool_calls", json::array({call})}});
      }
    } else if (type == "function_call_output") {
      const std::optional<std::string> call_id = string(it, "call_id");
      if (!call_id || call_id->empty()) bad(p + ".call_id", "is required");
      const json* out = field(it, "output");
      if (!out) bad(p + ".output", "is required");
      json content;
      if (out->is_string())
        content = *out;
      else if (out->is_array())
        content = message_content(*out, p + ".output");
      else
        bad(p + ".output", "must be a string or a list of content parts");
      messages.push_back({{"role", "tool"}, {"content", content}, {"tool_call_id", *call_id}});
    } else if (type == "reasoning") {
      const std::string text = reasoning_text(it, p);
      if (prev && unset(*prev, "reasoning"))
        (*prev)["reasoning"] = text;
      else
        messages.push_back({{"role", "assistant"}, {"reasoning", text}});
    } else if (type == "item_reference") {
      bad(p + ".type", "item references are not supported (send the item itself)");
    } else {
      bad(p + ".type", "input item type '" + type +
                           "' is not supported (message, function_call, function_call_output, "
                           "reasoning)");
    }
  }
}

namespace {

// Responses function tools -> chat tools (keys kept in request order).
ordered_json chat_tools(const ordered_json& tools) {
  ordered_json out = ordered_json::array();
  for (size_t i = 0; i < tools.size(); ++i) {
    const ordered_json& t = tools[i];
    const std::string p = "tools[" + std::to_string(i) + "]";
    if (!t.is_object()) bad(p, "must be an object");
    if (!t.contains("type") || !t["type"].is_string()) bad(p + ".type", "is required");
    const std::string type = t["type"];
    if (type != "function")
      bad(p + ".type", "built-in tool type '" + type +
                           "' is not supported; only function tools ({\"type\": \"function\", "
                           "\"name\": ...}) are");
    if (!t.contains("name") || !t["name"].is_string() || t["name"].get<std::string>().empty())
      bad(p + ".name", "is required and must be a non-empty string");
    if (t.contains("parameters") && !t["parameters"].is_null() && !t["parameters"].is_object())
      bad(p + ".parameters", "must be a JSON Schema object");
    if (t.contains("description") && !t["description"].is_null() && !t["description"].is_string())
      bad(p + ".description", "must be a string");
    ordered_json fn = ordered_json::object();
    fn["name"] = t["name"];
    for (const char* k : {"description", "parameters", "strict"})
      if (t.contains(k) && !t[k].is_null()) fn[k] = t[k];
    out.push_back({{"type", "function"}, {"function", fn}});
  }
  return out;
}

// Responses tool_choice -> the chat path's.
json chat_tool_choice(const json& tc, const json& tools) {
  if (tc.is_string()) {
    const std::string v = tc;
    if (v != "none" && v != "auto" && v != "required")
      bad("tool_choice", "must be none, auto, required or {\"type\": \"function\", \"name\": ...}");
    return tc;
  }
  if (!tc.is_object() || !tc.contains("type") || !tc["type"].is_string())
    bad("tool_choice", "must be none, auto, required or {\"type\": \"function\", \"name\": ...}");
  const std::string type = tc["type"];
  if (type != "function")
    bad("tool_choice.type", "'" + type + "' is not supported (function tools only)");
  if (!tc.contains("name") || !tc["name"].is_string())
    bad("tool_choice.name", "is required for a function tool choice");
  bool found = false;
  for (const json& t : tools) found |= t.value("name", "") == tc["name"];
  if (!found) bad("tool_choice.name", "names a function not in tools: " + tc["name"].dump());
  return {{"type", "function"}, {"function", {{"name", tc["name"]}}}};
}

// text.format -> the chat request's response_format (json_object) or, for json_schema, the
// structured-output request itself (`structured`), read from the order-preserving body so that
// the schema's property order is the output order.
void apply_text_format(const json& text, const ordered_json* otext, json& chat,
                       StructuredRequest& structured) {
  if (!text.is_object()) bad("text", "must be an object");
  const json* f = field(text, "format");
  if (!f) return;
  if (!f->is_object() || !f->contains("type") || !(*f)["type"].is_string())
    bad("text.format", "must be an object with a string \"type\"");
  const std::string t = (*f)["type"];
  if (t == "text") return;
  if (t == "json_object") {
    chat["response_format"] = {{"type", "json_object"}};
  } else if (t == "json_schema") {
    const ordered_json of = otext && otext->is_object() && otext->contains("format")
                                ? otext->at("format")
                                : ordered_json(*f);
    if (!of.contains("name") || !of["name"].is_string())  // required by OpenAI
      bad("text.format", "json_schema needs a string \"name\"");
    try {
      structured = structured_from_text_format(of);
    } catch (const ApiError& e) {  // the same messages, the Responses field as param
      throw ApiError::bad_request(e.what(), "text.format");
    }
  } else {
    bad("text.format.type", "must be text, json_object or json_schema, got '" + t + "'");
  }
}

const std::set<std::string> kIncludable = {
    "code_interpreter_call.outputs",  "computer_call_output.output.image_url",
    "file_search_call.results",       "message.input_image.image_url",
    "message.output_text.logprobs",   "reasoning.encrypted_content",
    "web_search_call.action.sources", "web_search_call.results"};

// vLLM extension fields passed to the chat request unchanged (same meaning there).
const char* const kPassThrough[] = {"temperature",
                                    "top_p",
                                    "top_k",
                                    "seed",
                                    "stop",
                                    "repetition_penalty",
                                    "ignore_eos",
                                    "skip_special_tokens",
                                    "include_stop_str_in_output",
                                    "logit_bias",
                                    "structured_outputs",
                                    "chat_template_kwargs",
                                    "min_tokens",
                                    "priority"};

}  // namespace

ResponsesRequest parse_responses_request(const json& b, const ordered_json& ob) {
  if (!b.is_object()) throw ApiError::bad_request("the request body must be a JSON object");
  ResponsesRequest r;
  r.model = string(b, "model").value_or("");
  for (const char* k : {"prompt", "conversation", "previous_input_messages", "previous_response"})
    if (field(b, k))
      bad(k, std::string(k) == "prompt" ? "prompt templates are not supported"
                                        : "is not supported (use previous_response_id or send "
                                          "the whole conversation as input)");
  r.stream = boolean(b, "stream").value_or(false);
  r.background = boolean(b, "background").value_or(false);
  r.store = boolean(b, "store").value_or(true);
  if (r.background && !r.store) bad("background", "can only be used when `store` is true");
  if (auto prev = string(b, "previous_response_id")) {
    if (prev->empty()) bad("previous_response_id", "must not be empty");
    r.previous_response_id = prev;
  }
  r.instructions = string(b, "instructions");

  const json* input = field(b, "input");
  if (!input) bad("input", "is required");
  if (input->is_string()) {
    r.input_messages.push_back({{"role", "user"}, {"content", *input}});
  } else if (input->is_array()) {
    if (input->empty()) bad("input", "must not be an empty list");
    if (input->size() > kMaxResponseInputItems)
      bad("input", "at most " + std::to_string(kMaxResponseInputItems) + " items");
    append_items_as_messages(*input, r.input_messages, "input");
    const json& last = input->back();
    const std::string lt = last.value("type", last.contains("role") ? "message" : "");
    if ((lt == "message" || lt == "reasoning") && last.value("role", "assistant") == "assistant") {
      const std::string st = last.contains("status") && last["status"].is_string()
                                 ? last["status"].get<std::string>()
                                 : "";
      r.continue_final = st == "in_progress" || st == "incomplete";
    }
  } else {
    bad("input", "must be a string or a list of input items");
  }

  json& chat = r.chat_body;
  chat = json::object();
  if (!r.model.empty()) chat["model"] = r.model;
  if (const json* t = field(b, "tools")) {
    if (!t->is_array()) bad("tools", "must be a list");
    if (t->size() > kMaxResponseTools)
      bad("tools", "at most " + std::to_string(kMaxResponseTools) + " tools");
    r.chat_tools_ordered =
        chat_tools(ob.is_object() && ob.contains("tools") ? ob.at("tools") : ordered_json(*t));
    r.tools = *t;
    if (!t->empty()) chat["tools"] = json(r.chat_tools_ordered);
  }
  if (const json* tc = field(b, "tool_choice")) {
    r.tool_choice = *tc;
    json ctc = chat_tool_choice(*tc, r.tools);
    if (!(r.tools.empty() && ctc == "auto")) chat["tool_choice"] = ctc;
  }
  if (auto ptc = boolean(b, "parallel_tool_calls")) {
    r.parallel_tool_calls = *ptc;
    chat["parallel_tool_calls"] = *ptc;
  }
  if (const json* re = field(b, "reasoning")) {
    if (!re->is_object()) bad("reasoning", "must be an object");
    r.reasoning = *re;
    if (const json* eff = field(*re, "effort")) {
      static const std::set<std::string> efforts = {"none",   "minimal", "low",
                                                    "medium", "high",    "xhigh"};
      if (!eff->is_string() || !efforts.count(eff->get<std::string>()))
        bad("reasoning.effort", "must be one of none, minimal, low, medium, high, xhigh");
      chat["reasoning_effort"] = *eff;  // Gemma 4: thinking on unless "none"
    }
    if (const json* s = field(*re, "summary"))
      if (!s->is_string()) bad("reasoning.summary", "must be a string");
  }
  r.max_output_tokens = integer(b, "max_output_tokens", 1, INT32_MAX);
  if (r.max_output_tokens) chat["max_completion_tokens"] = *r.max_output_tokens;
  r.max_tool_calls = integer(b, "max_tool_calls", 0, INT32_MAX);
  r.top_logprobs = static_cast<int>(integer(b, "top_logprobs", 0, 20).value_or(0));
  if (const json* inc = field(b, "include")) {
    if (!inc->is_array()) bad("include", "must be a list");
    for (const json& x : *inc) {
      if (!x.is_string() || !kIncludable.count(x.get<std::string>()))
        bad("include", "unknown value " + x.dump());
      r.logprobs |= x == "message.output_text.logprobs";
    }
  }
  if (r.logprobs) {
    chat["logprobs"] = true;
    chat["top_logprobs"] = r.top_logprobs;
  }
  if (const json* text = field(b, "text")) {
    r.text = *text;
    const ordered_json* otext = ob.is_object() && ob.contains("text") ? &ob.at("text") : nullptr;
    apply_text_format(*text, otext, chat, r.structured);
  }
  if (const json* md = field(b, "metadata")) {  // OpenAI's limits: 16 pairs, 64/512 chars
    if (!md->is_object()) bad("metadata", "must be an object of string values");
    if (md->size() > 16) bad("metadata", "at most 16 key-value pairs");
    for (auto it = md->begin(); it != md->end(); ++it) {
      if (it.key().size() > 64) bad("metadata", "keys are at most 64 characters");
      if (!it.value().is_string() || it.value().get<std::string>().size() > 512)
        bad("metadata", "values must be strings of at most 512 characters");
    }
    r.metadata = *md;
  }
  if (auto tr = string(b, "truncation")) {
    if (*tr != "auto" && *tr != "disabled") bad("truncation", "must be auto or disabled");
    r.truncation = *tr;
    if (*tr == "auto") chat["truncate_prompt_tokens"] = -1;  // vLLM: keep the last tokens
  }
  if (auto st = string(b, "service_tier")) r.service_tier = *st;
  if (const json* u = field(b, "user")) {
    if (!u->is_string()) bad("user", "must be a string");
    r.user = *u;
  }
  for (const char* k : kPassThrough)
    if (const json* v = field(b, k)) chat[k] = *v;
  if (r.continue_final) {
    chat["continue_final_message"] = true;
    chat["add_generation_prompt"] = false;
  }
  // Every response runs as a stream internally (events, cancellation, token ids for usage).
  chat["stream"] = true;
  chat["stream_options"] = {{"include_usage", true}};
  chat["return_token_ids"] = true;
  return r;
}

void rethrow_as_responses_error(const ApiError& e) {
  static const std::pair<const char*, const char*> renames[] = {
      {"max_completion_tokens", "max_output_tokens"},
      {"max_tokens", "max_output_tokens"},
      {"messages", "input"},
      {"response_format", "text.format"},
      {"top_logprobs", "top_logprobs"}};
  std::string param = e.param(), msg = e.what();
  for (const auto& [from, to] : renames) {
    if (param != from) continue;
    param = to;
    if (msg.rfind(std::string(from) + ":", 0) == 0) msg = to + msg.substr(std::strlen(from));
    break;
  }
  // tools[i].function.X -> tools[i].X (Responses tools are flat).
  if (param.rfind("tools[", 0) == 0) {
    const size_t at = param.find(".function");
    if (at != std::string::npos) {
      const std::string old = param;
      param.erase(at, 9);
      if (msg.rfind(old, 0) == 0) msg = param + msg.substr(old.size());
    }
  }
  throw ApiError(e.status(), msg, param);
}

ChatRequest responses_chat_request(const ResponsesRequest& r, const json& messages) {
  json body = r.chat_body;
  body["messages"] = messages;
  try {
    ChatRequest cr = parse_chat_request(body);
    if (!r.chat_tools_ordered.is_null() && !r.chat_tools_ordered.empty())
      cr.tools_ordered = r.chat_tools_ordered;
    if (r.structured.spec) {
      if (cr.structured.spec)
        throw ApiError::bad_request(
            "text.format json_schema and structured_outputs cannot both be given", "text.format");
      cr.structured = r.structured;
    }
    return cr;
  } catch (const ApiError& e) {
    rethrow_as_responses_error(e);
  }
}

}  // namespace fc
