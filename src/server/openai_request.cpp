#include "server/openai_request.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <set>

#include "core/json_limits.h"
#include "server/api_error.h"
#include "server/json_fields.h"

namespace fc {
namespace {

using nlohmann::json;

// Field readers (absent or null means "not given"), shared with the Responses parser.
using json_fields::bad;
using json_fields::boolean;
using json_fields::field;
using json_fields::integer;
using json_fields::num;
using json_fields::string;

const std::set<std::string> kCommonFields = {"model",
                                             "temperature",
                                             "top_p",
                                             "top_k",
                                             "min_p",
                                             "repetition_penalty",
                                             "presence_penalty",
                                             "frequency_penalty",
                                             "seed",
                                             "max_tokens",
                                             "n",
                                             "stop",
                                             "stop_token_ids",
                                             "include_stop_str_in_output",
                                             "ignore_eos",
                                             "num_speculative_tokens",
                                             "prompt_logprobs",
                                             "stream",
                                             "stream_options",
                                             "logprobs",
                                             "skip_special_tokens",
                                             "user",
                                             "logit_bias",
                                             "allowed_token_ids",
                                             "min_tokens",
                                             "bad_words",
                                             "truncate_prompt_tokens",
                                             "structured_outputs",
                                             "guided_choice",
                                             "guided_json",
                                             "guided_regex",
                                             "guided_grammar",
                                             "guided_json_object",
                                             "guided_whitespace_pattern",
                                             "guided_decoding_backend",
                                             "return_token_ids",
                                             "response_format",
                                             "priority",
                                             "request_id",
                                             "mm_processor_kwargs",
                                             "media_io_kwargs"};

std::vector<int32_t> id_list(const json& v, const char* k) {
  std::vector<int32_t> ids;
  for (const json& x : v) {
    if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() > INT32_MAX)
      bad(k, "token ids must be non-negative integers");
    ids.push_back(x.get<int32_t>());
  }
  return ids;
}

void parse_common(const json& b, CommonRequest& r, bool chat) {
  if (!b.is_object()) throw ApiError::bad_request("the request body must be a JSON object");
  r.model = string(b, "model").value_or("");
  for (const char* k : {"mm_processor_kwargs", "media_io_kwargs"})
    if (const json* v = field(b, k)) {
      if (!v->is_object()) bad(k, "must be an object");
      (k[1] == 'm' ? r.mm_processor_kwargs : r.media_io_kwargs) = *v;
    }
  RequestSampling& s = r.sampling;
  s.temperature = num(b, "temperature");
  s.top_p = num(b, "top_p");
  s.top_k = integer(b, "top_k");
  s.min_p = num(b, "min_p");
  s.repetition_penalty = num(b, "repetition_penalty");
  s.presence_penalty = num(b, "presence_penalty");
  s.frequency_penalty = num(b, "frequency_penalty");
  s.seed = integer(b, "seed");
  std::optional<int64_t> mt = integer(b, "max_tokens");
  if (chat) {
    if (auto mct = integer(b, "max_completion_tokens")) mt = mct;
  }
  if (mt && (*mt < 0 || (chat && *mt < 1)))  // completions: 0 is checked against echo below
    bad(chat && b.contains("max_completion_tokens") ? "max_completion_tokens" : "max_tokens",
        std::string("must be at least 1") + (chat ? "" : " (0 with echo)") + ", got " +
            std::to_string(*mt));
  r.max_tokens = mt;
  const int64_t n = integer(b, "n").value_or(1);
  if (n < 1 || n > 16) bad("n", "must be between 1 and 16");
  r.n = static_cast<int>(n);
  if (const json* st = field(b, "stop")) {
    if (st->is_string()) {
      r.stop.push_back(st->get<std::string>());
    } else if (st->is_array()) {
      if (st->size() > 16) bad("stop", "at most 16 stop strings");
      for (const json& x : *st) {
        if (!x.is_string()) bad("stop", "must be a string or a list of strings");
        r.stop.push_back(x.get<std::string>());
      }
    } else {
      bad("stop", "must be a string or a list of strings");
    }
    for (const std::string& x : r.stop)
      if (x.empty()) bad("stop", "stop strings must not be empty");
  }
  if (const json* st = field(b, "stop_token_ids")) {
    if (!st->is_array()) bad("stop_token_ids", "must be a list of integers");
    for (const json& x : *st) {
      if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() > INT32_MAX)
        bad("stop_token_ids", "must be a list of non-negative integers");
      r.stop_token_ids.push_back(x.get<int32_t>());
    }
  }
  r.include_stop_str_in_output = boolean(b, "include_stop_str_in_output").value_or(false);
  r.ignore_eos = boolean(b, "ignore_eos").value_or(false);
  if (auto pl = integer(b, "prompt_logprobs")) {  // vLLM extension
    if (*pl < 0 || *pl > 20) bad("prompt_logprobs", "must be between 0 and 20");
    if (boolean(b, "stream").value_or(false))
      bad("prompt_logprobs", "is not compatible with streaming");
    r.prompt_logprobs = static_cast<int>(*pl);
  }
  if (auto k = integer(b, "num_speculative_tokens")) {
    if (*k < 0 || *k > 16) bad("num_speculative_tokens", "must be between 0 and 16");
    r.num_speculative_tokens = static_cast<int>(*k);
  }
  r.stream = boolean(b, "stream").value_or(false);
  if (const json* so = field(b, "stream_options")) {
    if (!so->is_object()) bad("stream_options", "must be an object");
    if (!r.stream) bad("stream_options", "can only be set when stream is true");
    r.include_usage = boolean(*so, "include_usage").value_or(false);
    r.continuous_usage_stats = boolean(*so, "continuous_usage_stats").value_or(false);
  }
  r.skip_special_tokens = boolean(b, "skip_special_tokens").value_or(true);
  if (const json* lb = field(b, "logit_bias")) {  // OpenAI: {"token id": bias in [-100, 100]}
    if (!lb->is_object()) bad("logit_bias", "must be an object mapping token ids to numbers");
    for (auto it = lb->begin(); it != lb->end(); ++it) {
      int64_t id = -1;
      try {
        size_t used = 0;
        id = std::stoll(it.key(), &used);
        if (used != it.key().size()) id = -1;
      } catch (const std::exception&) {
        id = -1;
      }
      if (id < 0 || id > INT32_MAX || !it.value().is_number())
        bad("logit_bias", "must map token ids to numbers, got \"" + it.key() + "\"");
      const double v = it.value().get<double>();
      if (!std::isfinite(v)) bad("logit_bias", "values must be finite numbers");
      // vLLM clamps the bias to [-100, 100] (OpenAI's documented range).
      s.logit_bias.emplace_back(static_cast<int32_t>(id),
                                static_cast<float>(std::clamp(v, -100.0, 100.0)));
    }
  }
  if (const json* a = field(b, "allowed_token_ids")) {
    if (!a->is_array() || a->empty()) bad("allowed_token_ids", "must be a non-empty list of ids");
    s.allowed_token_ids = id_list(*a, "allowed_token_ids");
  }
  if (const json* bw = field(b, "bad_words")) {
    if (!bw->is_array()) bad("bad_words", "must be a list of strings");
    for (const json& w : *bw) {
      if (!w.is_string() || w.get<std::string>().find_first_not_of(" ") == std::string::npos)
        bad("bad_words", "must be a list of non-blank strings");
      r.bad_words.push_back(w.get<std::string>());
    }
  }
  if (auto tp = integer(b, "truncate_prompt_tokens")) {
    if (*tp < -1 || *tp == 0) bad("truncate_prompt_tokens", "must be -1 or a positive integer");
    r.truncate_prompt_tokens = tp;
  }
  r.return_token_ids = boolean(b, "return_token_ids").value_or(false);
  if (auto mt = integer(b, "min_tokens")) {
    if (*mt < 0 || *mt > INT32_MAX) bad("min_tokens", "must be a non-negative integer");
    s.min_tokens = static_cast<int>(*mt);
  }
  // Structured outputs (structured_request.h); the HTTP layer parses them again from the
  // order-preserving body, so schemas keep their property order.
  if (b.contains("structured_outputs") || b.contains("response_format") ||
      b.contains("extra_body") || b.contains("guided_json") || b.contains("guided_regex") ||
      b.contains("guided_choice") || b.contains("guided_grammar") ||
      b.contains("guided_json_object"))
    r.structured = parse_structured_request(parse_ordered_json(b.dump()));
}

}  // namespace

ChatRequest parse_chat_request(const json& b) {
  ChatRequest r;
  parse_common(b, r, true);
  const json* msgs = field(b, "messages");
  if (!msgs) bad("messages", "is required");
  if (!msgs->is_array() || msgs->empty()) bad("messages", "must be a non-empty list");
  r.messages = *msgs;
  if (const json* lp = field(b, "logprobs")) {
    if (!lp->is_boolean()) bad("logprobs", "must be true or false");
    r.logprobs = lp->get<bool>();
  }
  if (auto tl = integer(b, "top_logprobs")) {
    if (*tl < 0 || *tl > 20) bad("top_logprobs", "must be between 0 and 20");
    if (!r.logprobs && *tl > 0) bad("top_logprobs", "requires logprobs to be true");
    r.top_logprobs = static_cast<int>(*tl);
  }
  if (const json* t = field(b, "tools")) {
    if (!t->is_array()) bad("tools", "must be a list");
    std::set<std::string> names;
    for (size_t i = 0; i < t->size(); ++i) {
      const json& tool = (*t)[i];
      const std::string p = "tools[" + std::to_string(i) + "]";
      if (!tool.is_object()) bad(p, "must be an object");
      if (tool.value("type", "function") != "function") bad(p + ".type", "must be \"function\"");
      if (!tool.contains("function") || !tool["function"].is_object())
        bad(p + ".function", "is required and must be an object");
      const json& fn = tool["function"];
      if (!fn.contains("name") || !fn["name"].is_string() || fn["name"].get<std::string>().empty())
        bad(p + ".function.name", "is required and must be a non-empty string");
      if (fn.contains("parameters") && !fn["parameters"].is_null() && !fn["parameters"].is_object())
        bad(p + ".function.parameters", "must be a JSON Schema object");
      if (fn.contains("description") && !fn["description"].is_null() &&
          !fn["description"].is_string())
        bad(p + ".function.description", "must be a string");
      names.insert(fn["name"].get<std::string>());
    }
    if (!t->empty()) r.tools = *t;
  }
  r.tool_choice = r.tools.is_null() ? "none" : "auto";
  if (const json* tc = field(b, "tool_choice")) {
    if (tc->is_string()) {
      const std::string v = tc->get<std::string>();
      if (v != "none" && v != "auto" && v != "required")
        bad("tool_choice", "must be none, auto, required or a named function");
      r.tool_choice = v;
    } else if (tc->is_object() && tc->contains("function") && (*tc)["function"].is_object() &&
               (*tc)["function"].contains("name") && (*tc)["function"]["name"].is_string()) {
      r.tool_choice = "named";
      r.tool_choice_name = (*tc)["function"]["name"].get<std::string>();
    } else {
      bad("tool_choice",
          "must be none, auto, required or {\"type\": \"function\", \"function\": {\"name\": "
          "...}}");
    }
    if (r.tool_choice != "none" && r.tools.is_null())
      bad("tool_choice", "\"" + r.tool_choice + "\" requires tools");
    if (r.tool_choice == "named") {
      bool found = false;
      for (const json& t : r.tools) found |= t["function"]["name"] == r.tool_choice_name;
      if (!found) bad("tool_choice", "names a function not in tools: " + r.tool_choice_name);
    }
  }
  r.parallel_tool_calls = boolean(b, "parallel_tool_calls").value_or(true);
  r.add_generation_prompt = boolean(b, "add_generation_prompt").value_or(true);
  r.continue_final_message = boolean(b, "continue_final_message").value_or(false);
  if (r.continue_final_message && field(b, "add_generation_prompt") && r.add_generation_prompt)
    bad("continue_final_message", "cannot be combined with add_generation_prompt");
  if (r.continue_final_message) r.add_generation_prompt = false;
  if (const json* k = field(b, "chat_template_kwargs")) {
    if (!k->is_object()) bad("chat_template_kwargs", "must be an object");
    r.chat_template_kwargs = *k;
  }
  if (const json* re = field(b, "reasoning_effort")) {
    if (!re->is_string()) bad("reasoning_effort", "must be a string");
    // Gemma 4 has thinking on or off: any effort but "none" turns it on unless kwargs say
    // otherwise.
    if (!r.chat_template_kwargs.contains("enable_thinking"))
      r.chat_template_kwargs["enable_thinking"] = re->get<std::string>() != "none";
  }
  r.include_reasoning = boolean(b, "include_reasoning").value_or(true);
  r.echo = boolean(b, "echo").value_or(false);
  static const std::set<std::string> chat_fields = {"messages",
                                                    "logprobs",
                                                    "top_logprobs",
                                                    "tools",
                                                    "tool_choice",
                                                    "parallel_tool_calls",
                                                    "add_generation_prompt",
                                                    "continue_final_message",
                                                    "chat_template_kwargs",
                                                    "reasoning_effort",
                                                    "include_reasoning",
                                                    "echo",
                                                    "max_completion_tokens"};
  for (auto it = b.begin(); it != b.end(); ++it)
    if (!kCommonFields.count(it.key()) && !chat_fields.count(it.key()))
      r.ignored.push_back(it.key());
  return r;
}

CompletionRequest parse_completion_request(const json& b) {
  CompletionRequest r;
  parse_common(b, r, false);
  const json* p = field(b, "prompt");
  if (!p) bad("prompt", "is required");
  if (p->is_string()) {
    r.prompts.push_back({p->get<std::string>(), {}});
  } else if (p->is_array() && !p->empty()) {
    if ((*p)[0].is_number_integer()) {
      r.prompts.push_back({std::nullopt, id_list(*p, "prompt")});
    } else {
      for (const json& x : *p) {
        if (x.is_string())
          r.prompts.push_back({x.get<std::string>(), {}});
        else if (x.is_array() && !x.empty())
          r.prompts.push_back({std::nullopt, id_list(x, "prompt")});
        else
          bad("prompt",
              "must be a string, a list of strings, a list of token ids or a list of lists");
      }
    }
  } else {
    bad("prompt", "must be a string, a list of strings, a list of token ids or a list of lists");
  }
  if (r.prompts.size() > 64) bad("prompt", "at most 64 prompts per request");
  for (const auto& pr : r.prompts)
    if (pr.text && pr.text->empty()) bad("prompt", "must not be empty");
  if (auto lp = integer(b, "logprobs")) {
    if (*lp < 0 || *lp > 20) bad("logprobs", "must be between 0 and 20");
    r.logprobs = true;
    r.top_logprobs = static_cast<int>(*lp);
  }
  if (field(b, "suffix")) bad("suffix", "is not supported");
  if (!r.max_tokens) r.max_tokens = 16;  // vLLM's CompletionRequest default
  r.echo = boolean(b, "echo").value_or(false);
  if (*r.max_tokens == 0 && !r.echo)
    bad("max_tokens", "must be at least 1, got 0 (0 is only allowed with echo)");
  // vLLM: echo with logprobs reports the prompt's logprobs too (prompt_logprobs = logprobs).
  if (r.echo && r.logprobs && r.prompt_logprobs < 0) r.prompt_logprobs = r.top_logprobs;
  static const std::set<std::string> fields = {"prompt", "echo", "suffix", "best_of",
                                               "add_special_tokens"};
  for (auto it = b.begin(); it != b.end(); ++it)
    if (!kCommonFields.count(it.key()) && !fields.count(it.key())) r.ignored.push_back(it.key());
  return r;
}

}  // namespace fc
