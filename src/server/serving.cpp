#include "server/serving.h"

#include <chrono>
#include <random>

#include "chat/gemma4/normalize.h"
#include "chat/template_error.h"
#include "server/api_error.h"
#include "server/output_processor.h"

namespace fc {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

std::string random_id(const char* prefix) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  char buf[40];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(rng()),
                static_cast<unsigned long long>(rng()));
  return std::string(prefix) + buf;
}

int64_t now_unix() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Limits shared by chat and completions: the prompt must leave room, and max_tokens defaults to
// the room left (vLLM), capped by generation_config's max_new_tokens.
int resolve_limits(ServingContext& ctx, const CommonRequest& req, size_t prompt_len,
                   const char* prompt_param) {
  const int64_t L = ctx.max_model_len, P = static_cast<int64_t>(prompt_len);
  if (P >= L)
    throw ApiError::bad_request("This model's maximum context length is " + std::to_string(L) +
                                    " tokens. However, your request has " + std::to_string(P) +
                                    " input tokens. Please reduce the length of the input.",
                                prompt_param);
  if (req.max_tokens && P + *req.max_tokens > L)
    throw ApiError::bad_request(
        "This model's maximum context length is " + std::to_string(L) +
            " tokens. However, you requested " + std::to_string(*req.max_tokens) +
            " output tokens and your prompt contains " + std::to_string(P) +
            " input tokens, for a total of " + std::to_string(P + *req.max_tokens) +
            " tokens. Please reduce the length of the input prompt or the number of requested "
            "output tokens.",
        "max_tokens");
  if (req.max_tokens && *req.max_tokens == 0) return 0;  // echo only (parse checked)
  try {
    return static_cast<int>(resolve_max_tokens(req.max_tokens, ctx.gen, L - P));
  } catch (const Error& e) {
    throw ApiError::bad_request(e.what(), "max_tokens");
  }
}

// vLLM's prompt_logprobs: per prompt position null (position 0), else {token id: {logprob, rank,
// decoded_token}} for the prompt token and the top alternatives.
json vllm_prompt_logprobs(const tok::Tokenizer& tok, const std::vector<int32_t>& ids,
                          const std::vector<SampleResult>& lps) {
  json out = json::array({nullptr});
  auto entry = [&](int32_t id, float lp, int64_t rank) {
    return json{{"logprob", std::max(lp, -9999.0f)},
                {"rank", rank},
                {"decoded_token", tok.decode(std::span<const int32_t>(&id, 1))}};
  };
  for (size_t j = 0; j < lps.size() && j + 1 < ids.size(); ++j) {
    json d = json::object();
    for (size_t r = 0; r < lps[j].top.size(); ++r)
      d[std::to_string(lps[j].top[r].token)] =
          entry(lps[j].top[r].token, lps[j].top[r].logprob, static_cast<int64_t>(r) + 1);
    d[std::to_string(ids[j + 1])] = entry(ids[j + 1], lps[j].logprob, lps[j].rank);
    out.push_back(std::move(d));
  }
  return out;
}

// vLLM's tokenization of bad_words (SamplingParams.update_from_tokenizer): each word without
// leading spaces, and with one leading space when that gives a different first token and the
// same number of tokens (the word in the middle of text).
std::vector<std::vector<int32_t>> bad_words_ids(const tok::Tokenizer& tok,
                                                const std::vector<std::string>& words) {
  std::vector<std::vector<int32_t>> out;
  tok::EncodeOptions eo;
  eo.add_special_tokens = false;
  for (const std::string& w : words) {
    const std::string bare = w.substr(w.find_first_not_of(' '));
    std::vector<int32_t> a = tok.encode(bare, eo);
    std::vector<int32_t> b = tok.encode(" " + bare, eo);
    const bool add_b = !a.empty() && !b.empty() && b.front() != a.front() && b.size() == a.size();
    if (!a.empty()) out.push_back(std::move(a));
    if (add_b) out.push_back(std::move(b));
  }
  return out;
}

// vLLM's truncate_prompt_tokens: the last N tokens of the prompt (-1: max_model_len).
void truncate_prompt(std::vector<int32_t>& ids, const CommonRequest& req, int max_model_len) {
  if (!req.truncate_prompt_tokens) return;
  const int64_t keep =
      *req.truncate_prompt_tokens == -1 ? max_model_len : *req.truncate_prompt_tokens;
  if (static_cast<int64_t>(ids.size()) > keep)
    ids.erase(ids.begin(), ids.end() - static_cast<std::ptrdiff_t>(keep));
}

// One engine request per choice, sharing the prompt.
struct Choice {
  int index = 0;
  std::shared_ptr<RequestStream> stream;
  std::unique_ptr<OutputProcessor> out;
  bool done = false;
  int tokens = 0;
  int32_t last_token = -1;
  int spec_drafts = 0, spec_draft_tokens = 0, spec_accepted = 0;  // cumulative, from the engine
  int cached_tokens = 0;           // prompt tokens the engine served from the prefix cache
  std::vector<int32_t> token_ids;  // generated ids (return_token_ids)
  std::string finish_reason;
  json stop_reason = nullptr;
  bool keep_stop_token_text = false;  // include_stop_str_in_output
  // Non-streaming accumulation.
  std::string reasoning, content;
  std::vector<json> tool_calls;  // {"id","type","function":{"name","arguments"}}
  json logprobs = json::array();
  std::vector<SampleResult> prompt_logprobs;  // prompt positions 1.. (CommonRequest)
  Clock::time_point last_event;
};

std::vector<Choice> submit_choices(ServingContext& ctx, const CommonRequest& req,
                                   const std::vector<int32_t>& ids, int max_tokens,
                                   const OutputOptions& oo, int first_index,
                                   const std::vector<EngineMedia>* media = nullptr) {
  SamplingParams sp;
  try {
    sp = resolve_sampling_params(req.sampling, ctx.gen);
    sp.bad_words_ids = bad_words_ids(ctx.tok, req.bad_words);
  } catch (const Error& e) {
    throw ApiError::bad_request(e.what());
  }
  std::vector<Choice> choices;
  for (int i = 0; i < req.n; ++i) {
    EngineRequest er;
    er.prompt = ids;
    if (media) er.media = *media;
    er.sampling = sp;
    if (sp.seed && i > 0) er.sampling.seed = *sp.seed + static_cast<uint64_t>(i);
    er.max_tokens = max_tokens;
    if (req.num_speculative_tokens) er.num_speculative_tokens = *req.num_speculative_tokens;
    if (!req.ignore_eos) er.stop_token_ids = ctx.eos_ids;
    er.stop_token_ids.insert(er.stop_token_ids.end(), req.stop_token_ids.begin(),
                             req.stop_token_ids.end());
    if (req.logprobs) er.logprobs = LogprobsOptions{req.top_logprobs, LogprobsMode::kRawLogprobs};
    er.prompt_logprobs = req.prompt_logprobs;
    if ((req.json_object || !req.choice.empty()) && er.stop_token_ids.empty())
      throw ApiError::bad_request(
          "a constrained output needs a stop token (ignore_eos without stop_token_ids)",
          req.json_object ? "response_format" : "structured_outputs");
    if (req.json_object) {
      er.sampling.make_constraint = [bytes = ctx.token_bytes, stops = er.stop_token_ids] {
        return std::unique_ptr<TokenConstraint>(new JsonObjectConstraint(bytes, stops));
      };
    } else if (!req.choice.empty()) {
      er.sampling.make_constraint = [bytes = ctx.token_bytes, choices = req.choice,
                                     stops = er.stop_token_ids] {
        return std::unique_ptr<TokenConstraint>(new ChoiceConstraint(bytes, choices, stops));
      };
    }
    Choice c;
    c.index = first_index + i;
    c.keep_stop_token_text = req.include_stop_str_in_output;
    try {
      c.stream = ctx.engine.submit(std::move(er));
    } catch (const Error& e) {
      for (Choice& done : choices) ctx.engine.abort(done.stream->id());
      throw ApiError::bad_request(e.what());
    }
    c.out = std::make_unique<OutputProcessor>(ctx.tok, oo);
    c.last_event = Clock::now();
    choices.push_back(std::move(c));
  }
  return choices;
}

// Runs the choices to completion. on_step(choice, step, finished) is called for every output
// step; alive() is polled while waiting. Returns false if the client went away (all aborted).
template <typename OnStep, typename Alive>
bool drive(ServingContext& ctx, std::vector<Choice>& choices, Clock::time_point start,
           OnStep on_step, Alive alive) {
  bool first_token = true;
  size_t remaining = choices.size();
  while (remaining > 0) {
    for (Choice& c : choices) {
      if (c.done) continue;
      std::optional<RequestEvent> ev = c.stream->next(choices.size() == 1 ? 100 : 5);
      if (!ev) {
        if (!alive()) {
          for (Choice& a : choices)
            if (!a.done) ctx.engine.abort(a.stream->id());
          return false;
        }
        continue;
      }
      const auto now = Clock::now();
      c.prompt_logprobs.insert(c.prompt_logprobs.end(), ev->prompt_logprobs.begin(),
                               ev->prompt_logprobs.end());
      if (!ev->tokens.empty()) {
        if (first_token)
          ctx.metrics.observe_ttft(std::chrono::duration<double>(now - start).count());
        else
          ctx.metrics.observe_itl(std::chrono::duration<double>(now - c.last_event).count());
        first_token = false;
        c.last_event = now;
        c.tokens += static_cast<int>(ev->tokens.size());
        c.token_ids.insert(c.token_ids.end(), ev->tokens.begin(), ev->tokens.end());
        c.spec_drafts = ev->spec_drafts;
        c.spec_draft_tokens = ev->spec_draft_tokens;
        c.spec_accepted = ev->spec_accepted_tokens;
        c.cached_tokens = std::max(c.cached_tokens, ev->num_cached_tokens);
        c.last_token = ev->tokens.back();
      }
      if (ev->finished && ev->finish_reason == "error") {
        for (Choice& a : choices)
          if (!a.done) ctx.engine.abort(a.stream->id());
        throw ApiError(500, "engine error: " + ev->error);
      }
      const bool stop_token = ev->finished && ev->finish_reason == "stop" && !ev->tokens.empty();
      OutputStep step =
          c.out->push(ev->tokens, ev->logprobs, stop_token && !c.keep_stop_token_text);
      bool finished = ev->finished;
      if (step.stop_hit) {
        ctx.engine.abort(c.stream->id());
        c.finish_reason = "stop";
        c.stop_reason = *step.stop_hit;
        finished = true;
      } else if (ev->finished) {
        c.finish_reason = ev->finish_reason;
        if (ev->finish_reason == "stop" && c.last_token >= 0 && c.last_token != ctx.eos_ids.front())
          c.stop_reason = c.last_token;
      }
      if (finished) {
        OutputStep tail = c.out->finish();
        step.delta.reasoning += tail.delta.reasoning;
        step.delta.content += tail.delta.content;
        for (auto& tc : tail.delta.tool_calls) step.delta.tool_calls.push_back(std::move(tc));
        if (c.out->tools_called() && (c.finish_reason == "stop" || c.finish_reason == "length"))
          c.finish_reason = c.finish_reason == "stop" ? "tool_calls" : c.finish_reason;
        c.done = true;
        --remaining;
        ctx.metrics.count_finished(c.finish_reason);
      }
      on_step(c, step, finished);
      if (!alive()) {
        for (Choice& a : choices)
          if (!a.done) ctx.engine.abort(a.stream->id());
        return false;
      }
    }
  }
  ctx.metrics.observe_e2e(std::chrono::duration<double>(Clock::now() - start).count());
  return true;
}

// Merges a step into a choice's non-streaming result.
void accumulate(Choice& c, const OutputStep& step, bool parallel_tool_calls) {
  c.reasoning += step.delta.reasoning;
  c.content += step.delta.content;
  for (const auto& tc : step.delta.tool_calls) {
    if (tc.index >= static_cast<int>(c.tool_calls.size())) {
      c.tool_calls.push_back({{"id", tc.id.value_or("")},
                              {"type", "function"},
                              {"function", {{"name", tc.name.value_or("")}, {"arguments", ""}}}});
    }
    json& fn = c.tool_calls[static_cast<size_t>(tc.index)]["function"];
    fn["arguments"] = fn["arguments"].get<std::string>() + tc.arguments;
  }
  if (!parallel_tool_calls && c.tool_calls.size() > 1) c.tool_calls.resize(1);
  for (const json& lp : step.logprobs) c.logprobs.push_back(lp);
}

json usage_json(int prompt_tokens, int completion_tokens) {
  return {{"prompt_tokens", prompt_tokens},
          {"completion_tokens", completion_tokens},
          {"total_tokens", prompt_tokens + completion_tokens},
          {"prompt_tokens_details", nullptr}};
}

// Usage details: with --enable-prompt-tokens-details, prompt_tokens_details.cached_tokens (the
// prefix-cache hit of each prompt's first choice, as vLLM reports it per request); and the
// fourcast extension `speculative`, what speculative decoding did for these choices.
void add_usage_details(const ServingContext& ctx, json& usage, const std::vector<Choice>& choices,
                       int n) {
  if (ctx.opts.enable_prompt_tokens_details) {
    int cached = 0;
    for (const Choice& c : choices)
      if (c.index % n == 0) cached += c.cached_tokens;
    usage["prompt_tokens_details"] = {{"cached_tokens", cached}};
  }
  int drafts = 0, draft_tokens = 0, accepted = 0;
  for (const Choice& c : choices) {
    drafts += c.spec_drafts;
    draft_tokens += c.spec_draft_tokens;
    accepted += c.spec_accepted;
  }
  if (drafts == 0) return;
  usage["speculative"] = {{"drafts", drafts},
                          {"draft_tokens", draft_tokens},
                          {"accepted_tokens", accepted},
                          {"mean_acceptance_length", 1.0 + double(accepted) / drafts}};
}

OutputOptions chat_output_options(ServingContext& ctx, const ChatRequest& req,
                                  const PreparedChat& p) {
  OutputOptions oo;
  oo.reasoning = ctx.opts.reasoning_parser == "gemma4";
  oo.tools = ctx.opts.enable_auto_tool_choice && !req.tools.is_null() && req.tool_choice != "none";
  oo.start_in_reasoning = p.start_in_reasoning;
  oo.skip_special_tokens = req.skip_special_tokens;
  oo.stop = req.stop;
  oo.include_stop_str_in_output = req.include_stop_str_in_output;
  oo.min_tokens = req.sampling.min_tokens;
  oo.logprobs = req.logprobs;
  oo.forced_prefix = p.forced_prefix;
  return oo;
}

}  // namespace

std::shared_ptr<const TokenBytes> make_token_bytes(const tok::Tokenizer& tok) {
  auto tb = std::make_shared<TokenBytes>();
  const int32_t n = tok.id_bound();
  tb->bytes.resize(static_cast<size_t>(n));
  tb->special.resize(static_cast<size_t>(n));
  for (int32_t id = 0; id < n; ++id) {
    tb->special[static_cast<size_t>(id)] = tok.is_special(id);
    const std::optional<std::string> piece = tok.id_to_token(id);
    if (!piece) continue;
    const std::string& pc = *piece;
    if (pc.size() == 6 && pc.rfind("<0x", 0) == 0 && pc[5] == '>') {
      tb->bytes[static_cast<size_t>(id)] =
          std::string(1, static_cast<char>(std::stoi(pc.substr(3, 2), nullptr, 16)));
      continue;
    }
    tb->bytes[static_cast<size_t>(id)] = tok.decode(std::span<const int32_t>(&id, 1));
  }
  index_token_bytes(*tb);
  return tb;
}

PreparedChat prepare_chat(ServingContext& ctx, const ChatRequest& req) {
  chat::gemma4::NormalizedMessages nm;
  try {
    nm = chat::gemma4::normalize_messages(req.messages);
  } catch (const chat::gemma4::InvalidRequest& e) {
    throw ApiError::bad_request(e.what(), e.param().empty() ? "messages" : e.param());
  }
  // Media parts: limits, fetch, decode, preprocess (before the template; placed after tokenizing).
  const std::vector<LoadedMedia> loaded =
      load_chat_media(ctx.media.get(), nm.media, {req.mm_processor_kwargs, req.media_io_kwargs});
  nlohmann::ordered_json c = nlohmann::ordered_json::object();
  c["messages"] = nm.messages;
  if (!req.tools_ordered.is_null())
    c["tools"] = req.tools_ordered;
  else if (!req.tools.is_null())
    c["tools"] = req.tools;
  c["add_generation_prompt"] = req.add_generation_prompt;
  c["bos_token"] = ctx.tmpl_src.bos_token;
  if (!ctx.tmpl_src.eos_token.empty()) c["eos_token"] = ctx.tmpl_src.eos_token;
  for (auto it = ctx.opts.default_chat_template_kwargs.begin();
       it != ctx.opts.default_chat_template_kwargs.end(); ++it)
    c[it.key()] = it.value();
  for (auto it = req.chat_template_kwargs.begin(); it != req.chat_template_kwargs.end(); ++it)
    c[it.key()] = it.value();
  PreparedChat p;
  try {
    p.prompt = ctx.tmpl.render(c);
  } catch (const chat::TemplateError& e) {
    throw ApiError::bad_request(std::string("chat template: ") + e.what(), "messages");
  }
  if (req.continue_final_message) {
    // Continue the last message: cut the rendered prompt right after its text.
    const json& last = nm.messages.back();
    std::string text;
    if (last.contains("content") && last["content"].is_string())
      text = last["content"];
    else if (last.contains("content") && last["content"].is_array())
      for (const json& part : last["content"])
        if (part.contains("text") && part["text"].is_string()) text = part["text"];
    const size_t at = text.empty() ? std::string::npos : p.prompt.rfind(text);
    if (at != std::string::npos) p.prompt.resize(at + text.size());
  }
  if (ctx.opts.reasoning_parser == "gemma4")
    p.start_in_reasoning = chat::gemma4::prompt_ends_in_open_reasoning(p.prompt);
  if (p.start_in_reasoning && (req.json_object || !req.choice.empty()))
    throw ApiError::bad_request(
        "a constrained output is not supported when the prompt opens a thought channel",
        req.json_object ? "response_format" : "structured_outputs");
  const bool tools_on = ctx.opts.enable_auto_tool_choice && !req.tools.is_null();
  if (req.tool_choice == "required" || req.tool_choice == "named") {
    if (!tools_on)
      throw ApiError::bad_request("tool_choice \"" + req.tool_choice +
                                      "\" needs the server started with --enable-auto-tool-choice "
                                      "--tool-call-parser gemma4",
                                  "tool_choice");
    // Without constrained decoding, force the call header into the output (the model writes
    // the rest): the required form leaves the name to the model.
    p.forced_prefix = req.tool_choice == "named" ? "<|tool_call>call:" + req.tool_choice_name + "{"
                                                 : "<|tool_call>call:";
  }
  try {
    tok::EncodeOptions eo;
    eo.parse_special = true;
    p.ids = ctx.tok.encode(p.prompt + p.forced_prefix, eo);
  } catch (const Error& e) {
    throw ApiError::bad_request(e.what(), "messages");
  }
  if (!loaded.empty()) {
    p.media = ctx.media->expand(ctx.tok, p.ids, loaded);
    if (req.truncate_prompt_tokens)
      throw ApiError::bad_request(
          "truncate_prompt_tokens cannot be used with image, audio or "
          "video input",
          "truncate_prompt_tokens");
  }
  truncate_prompt(p.ids, req, ctx.max_model_len);
  return p;
}

json serve_chat(ServingContext& ctx, const ChatRequest& req) {
  const auto start = Clock::now();
  const PreparedChat p = prepare_chat(ctx, req);
  const int max_tokens = resolve_limits(ctx, req, p.ids.size(), "messages");
  std::vector<Choice> choices =
      submit_choices(ctx, req, p.ids, max_tokens, chat_output_options(ctx, req, p), 0, &p.media);
  drive(
      ctx, choices, start,
      [&](Choice& c, const OutputStep& s, bool) { accumulate(c, s, req.parallel_tool_calls); },
      [] { return true; });
  json out_choices = json::array();
  int completion = 0;
  for (Choice& c : choices) {
    completion += c.tokens;
    json msg = {
        {"role", "assistant"},
        {"content", c.content.empty() && !c.tool_calls.empty() ? json(nullptr) : json(c.content)}};
    const bool show_reasoning = req.include_reasoning && !c.reasoning.empty();
    msg["reasoning"] = show_reasoning ? json(c.reasoning) : json(nullptr);
    msg["reasoning_content"] = msg["reasoning"];
    if (!c.tool_calls.empty()) msg["tool_calls"] = c.tool_calls;
    out_choices.push_back(
        {{"index", c.index},
         {"message", msg},
         {"logprobs", req.logprobs ? json{{"content", c.logprobs}} : json(nullptr)},
         {"finish_reason", c.finish_reason},
         {"stop_reason", c.stop_reason}});
  }
  json usage = usage_json(static_cast<int>(p.ids.size()), completion);
  add_usage_details(ctx, usage, choices, req.n);
  json resp = {
      {"id", random_id("chatcmpl-")}, {"object", "chat.completion"},
      {"created", now_unix()},        {"model", req.model.empty() ? ctx.model_name : req.model},
      {"choices", out_choices},       {"usage", usage}};
  if (req.prompt_logprobs >= 0)
    resp["prompt_logprobs"] = vllm_prompt_logprobs(ctx.tok, p.ids, choices.front().prompt_logprobs);
  if (req.return_token_ids) {
    resp["prompt_token_ids"] = p.ids;
    for (size_t i = 0; i < choices.size(); ++i)
      resp["choices"][i]["token_ids"] = choices[i].token_ids;
  }
  return resp;
}

namespace {

// Aborts whatever engine requests are still running when a job goes away early.
void abort_unfinished(ServingContext& ctx, std::vector<Choice>& choices) {
  for (Choice& c : choices)
    if (!c.done) ctx.engine.abort(c.stream->id());
}

class ChatStreamJob final : public StreamJob {
 public:
  ChatStreamJob(ServingContext& ctx, const ChatRequest& req)
      : ctx_(ctx), req_(req), start_(Clock::now()), p_(prepare_chat(ctx, req)) {
    const int max_tokens = resolve_limits(ctx, req, p_.ids.size(), "messages");
    choices_ = submit_choices(ctx, req, p_.ids, max_tokens, chat_output_options(ctx, req, p_), 0,
                              &p_.media);
  }
  ~ChatStreamJob() override { abort_unfinished(ctx_, choices_); }

  void run(const SseSink& sink) override {
    const std::string id = random_id("chatcmpl-");
    const int64_t created = now_unix();
    const std::string model = req_.model.empty() ? ctx_.model_name : req_.model;
    const int prompt_tokens = static_cast<int>(p_.ids.size());
    bool client_ok = true;
    auto send = [&](json choice_list, const json* usage) {
      json chunk = {{"id", id},
                    {"object", "chat.completion.chunk"},
                    {"created", created},
                    {"model", model},
                    {"choices", std::move(choice_list)}};
      if (usage) chunk["usage"] = *usage;
      if (client_ok) client_ok = sink(chunk.dump(-1, ' ', false, json::error_handler_t::replace));
    };
    for (const Choice& c : choices_)
      send(json::array({{{"index", c.index},
                         {"delta", {{"role", "assistant"}, {"content", ""}}},
                         {"logprobs", nullptr},
                         {"finish_reason", nullptr}}}),
           nullptr);
    const bool finished = drive(
        ctx_, choices_, start_,
        [&](Choice& c, const OutputStep& s, bool done) {
          chat::gemma4::Delta d = s.delta;
          if (!req_.include_reasoning) d.reasoning.clear();
          if (!req_.parallel_tool_calls) {  // keep only the first call
            std::vector<chat::gemma4::ToolCallDelta> keep;
            for (auto& tc : d.tool_calls)
              if (tc.index == 0) keep.push_back(std::move(tc));
            d.tool_calls = std::move(keep);
          }
          json delta = chat::gemma4::delta_to_json(d);
          const bool has_lp = req_.logprobs && !s.logprobs.empty();
          if (!(delta.is_object() && !delta.empty()) && !has_lp && !done) return;
          json ch = {{"index", c.index},
                     {"delta", delta.is_object() ? delta : json::object()},
                     {"logprobs", has_lp ? json{{"content", s.logprobs}} : json(nullptr)},
                     {"finish_reason", done ? json(c.finish_reason) : json(nullptr)}};
          if (done) ch["stop_reason"] = c.stop_reason;
          int so_far = 0;
          for (const Choice& x : choices_) so_far += x.tokens;
          json u = usage_json(prompt_tokens, so_far);
          send(json::array({ch}), req_.continuous_usage_stats ? &u : nullptr);
        },
        [&] { return client_ok && sink(""); });
    if (!finished || !client_ok) return;
    int completion = 0;
    for (const Choice& c : choices_) completion += c.tokens;
    if (req_.include_usage) {
      json u = usage_json(prompt_tokens, completion);
      add_usage_details(ctx_, u, choices_, req_.n);
      send(json::array(), &u);
    }
  }

 private:
  ServingContext& ctx_;
  ChatRequest req_;
  Clock::time_point start_;
  PreparedChat p_;
  std::vector<Choice> choices_;
};

}  // namespace

std::unique_ptr<StreamJob> start_chat_stream(ServingContext& ctx, const ChatRequest& req) {
  return std::make_unique<ChatStreamJob>(ctx, req);
}

namespace {

std::vector<std::vector<int32_t>> completion_prompts(ServingContext& ctx,
                                                     const CompletionRequest& req) {
  std::vector<std::vector<int32_t>> out;
  const int32_t bound = ctx.tok.id_bound();
  for (const auto& pr : req.prompts) {
    if (pr.text) {
      tok::EncodeOptions eo;
      eo.parse_special = true;
      eo.add_special_tokens = true;
      try {
        out.push_back(ctx.tok.encode(*pr.text, eo));
      } catch (const Error& e) {
        throw ApiError::bad_request(e.what(), "prompt");
      }
    } else {
      for (int32_t t : pr.ids)
        if (t >= bound)
          throw ApiError::bad_request("token id " + std::to_string(t) + " is out of vocabulary",
                                      "prompt");
      out.push_back(pr.ids);
    }
    if (out.back().empty())
      throw ApiError::bad_request("the prompt is empty after tokenization", "prompt");
    truncate_prompt(out.back(), req, ctx.max_model_len);
  }
  return out;
}

OutputOptions completion_output_options(const CompletionRequest& req) {
  OutputOptions oo;
  oo.skip_special_tokens = req.skip_special_tokens;
  oo.stop = req.stop;
  oo.include_stop_str_in_output = req.include_stop_str_in_output;
  oo.min_tokens = req.sampling.min_tokens;
  oo.logprobs = req.logprobs;
  return oo;
}

// OpenAI completions logprobs from chat-style entries; text_offset counts bytes from `offset`.
json completion_logprobs(const json& entries, size_t offset = 0) {
  json tokens = json::array(), lps = json::array(), tops = json::array(), offsets = json::array();
  for (const json& e : entries) {
    offsets.push_back(offset);
    offset += e["token"].get<std::string>().size();
    tokens.push_back(e["token"]);
    lps.push_back(e["logprob"]);
    if (e["top_logprobs"].is_null()) {  // the first prompt token: nothing predicts it
      tops.push_back(nullptr);
      continue;
    }
    json top = json::object();
    for (const json& t : e["top_logprobs"]) top[t["token"].get<std::string>()] = t["logprob"];
    tops.push_back(top);
  }
  return {{"tokens", tokens},
          {"token_logprobs", lps},
          {"top_logprobs", tops},
          {"text_offset", offsets}};
}

// Chat-style logprobs entries of an echoed prompt: its first token has none (null logprob and
// top_logprobs), the others come from the engine's prompt logprobs.
json echo_logprob_entries(const tok::Tokenizer& tok, const std::vector<int32_t>& ids,
                          const std::vector<SampleResult>& lps) {
  json entries = json::array();
  entries.push_back({{"token", tok.decode(std::span<const int32_t>(ids.data(), 1))},
                     {"logprob", nullptr},
                     {"top_logprobs", nullptr}});
  for (size_t j = 0; j < lps.size() && j + 1 < ids.size(); ++j)
    entries.push_back(logprob_entry(tok, ids[j + 1], lps[j]));
  return entries;
}

}  // namespace

json serve_completion(ServingContext& ctx, const CompletionRequest& req) {
  const auto start = Clock::now();
  const auto prompts = completion_prompts(ctx, req);
  json out_choices = json::array();
  int prompt_tokens = 0, completion = 0;
  std::vector<Choice> all;  // spent choices, for the usage totals
  for (size_t pi = 0; pi < prompts.size(); ++pi) {
    const int max_tokens = resolve_limits(ctx, req, prompts[pi].size(), "prompt");
    std::vector<Choice> choices =
        submit_choices(ctx, req, prompts[pi], max_tokens, completion_output_options(req),
                       static_cast<int>(pi) * req.n);
    drive(
        ctx, choices, start, [&](Choice& c, const OutputStep& s, bool) { accumulate(c, s, true); },
        [] { return true; });
    prompt_tokens += static_cast<int>(prompts[pi].size());
    const std::string echo = !req.echo ? ""
                             : req.prompts[pi].text
                                 ? *req.prompts[pi].text
                                 : ctx.tok.decode(prompts[pi], req.skip_special_tokens);
    for (Choice& c : choices) {
      completion += c.tokens;
      json lp = nullptr;
      if (req.echo && req.logprobs && req.prompt_logprobs >= 0) {
        // The prompt's tokens first, offsets over the token texts from 0, as vLLM builds them.
        json entries = echo_logprob_entries(ctx.tok, prompts[pi], c.prompt_logprobs);
        for (const json& e : c.logprobs) entries.push_back(e);
        lp = completion_logprobs(entries, 0);
      } else if (req.logprobs) {
        lp = completion_logprobs(c.logprobs, echo.size());
      }
      out_choices.push_back({{"index", c.index},
                             {"text", echo + c.content},
                             {"logprobs", lp},
                             {"finish_reason", c.finish_reason},
                             {"stop_reason", c.stop_reason}});
      if (req.prompt_logprobs >= 0)
        out_choices.back()["prompt_logprobs"] =
            vllm_prompt_logprobs(ctx.tok, prompts[pi], c.prompt_logprobs);
      if (req.return_token_ids) {
        out_choices.back()["prompt_token_ids"] = prompts[pi];
        out_choices.back()["token_ids"] = c.token_ids;
      }
    }
    for (Choice& c : choices) all.push_back(std::move(c));
  }
  json usage = usage_json(prompt_tokens, completion);
  add_usage_details(ctx, usage, all, req.n);
  return {{"id", random_id("cmpl-")}, {"object", "text_completion"},
          {"created", now_unix()},    {"model", req.model.empty() ? ctx.model_name : req.model},
          {"choices", out_choices},   {"usage", usage}};
}

namespace {

class CompletionStreamJob final : public StreamJob {
 public:
  CompletionStreamJob(ServingContext& ctx, const CompletionRequest& req)
      : ctx_(ctx), req_(req), start_(Clock::now()), prompts_(completion_prompts(ctx, req)) {
    for (size_t pi = 0; pi < prompts_.size(); ++pi) {
      const int max_tokens = resolve_limits(ctx, req, prompts_[pi].size(), "prompt");
      std::vector<Choice> cs =
          submit_choices(ctx, req, prompts_[pi], max_tokens, completion_output_options(req),
                         static_cast<int>(pi) * req.n);
      for (Choice& c : cs) choices_.push_back(std::move(c));
    }
  }
  ~CompletionStreamJob() override { abort_unfinished(ctx_, choices_); }

  void run(const SseSink& sink) override {
    const std::string id = random_id("cmpl-");
    const int64_t created = now_unix();
    const std::string model = req_.model.empty() ? ctx_.model_name : req_.model;
    bool client_ok = true;
    auto send = [&](json choices, const json* usage) {
      json chunk = {{"id", id},
                    {"object", "text_completion"},
                    {"created", created},
                    {"model", model},
                    {"choices", std::move(choices)}};
      if (usage) chunk["usage"] = *usage;
      if (client_ok) client_ok = sink(chunk.dump(-1, ' ', false, json::error_handler_t::replace));
    };
    auto echo_chunk = [&](const Choice& c) {
      const size_t pi = static_cast<size_t>(c.index / req_.n);
      json lp = nullptr;
      if (req_.logprobs && req_.prompt_logprobs >= 0)
        lp = completion_logprobs(echo_logprob_entries(ctx_.tok, prompts_[pi], c.prompt_logprobs));
      send(json::array({{{"index", c.index},
                         {"text", req_.prompts[pi].text
                                      ? *req_.prompts[pi].text
                                      : ctx_.tok.decode(prompts_[pi], req_.skip_special_tokens)},
                         {"logprobs", lp},
                         {"finish_reason", nullptr}}}),
           nullptr);
    };
    // With logprobs the echo waits for the prompt's logprobs (all computed before the first
    // generated token, or at the end with max_tokens 0).
    const bool echo_later = req_.echo && req_.logprobs && req_.prompt_logprobs >= 0;
    std::vector<bool> echoed(choices_.size(), !req_.echo);
    if (req_.echo && !echo_later) {
      for (const Choice& c : choices_) echo_chunk(c);
      echoed.assign(choices_.size(), true);
    }
    const bool ok = drive(
        ctx_, choices_, start_,
        [&](Choice& c, const OutputStep& s, bool done) {
          const size_t ci = static_cast<size_t>(&c - choices_.data());
          if (!echoed[ci]) {
            const size_t pi = static_cast<size_t>(c.index / req_.n);
            if (!done && c.prompt_logprobs.size() + 1 < prompts_[pi].size()) return;
            echo_chunk(c);
            echoed[ci] = true;
          }
          if (s.delta.content.empty() && !done && s.logprobs.empty()) return;
          json ch = {{"index", c.index},
                     {"text", s.delta.content},
                     {"logprobs", req_.logprobs ? completion_logprobs(s.logprobs) : json(nullptr)},
                     {"finish_reason", done ? json(c.finish_reason) : json(nullptr)}};
          if (done) ch["stop_reason"] = c.stop_reason;
          send(json::array({ch}), nullptr);
        },
        [&] { return client_ok && sink(""); });
    if (!ok || !client_ok) return;
    int prompt_tokens = 0, completion = 0;
    for (const auto& p : prompts_) prompt_tokens += static_cast<int>(p.size()) * req_.n;
    for (const Choice& c : choices_) completion += c.tokens;
    if (req_.include_usage) {
      json u = usage_json(prompt_tokens / req_.n, completion);
      add_usage_details(ctx_, u, choices_, req_.n);
      send(json::array(), &u);
    }
  }

 private:
  ServingContext& ctx_;
  CompletionRequest req_;
  Clock::time_point start_;
  std::vector<std::vector<int32_t>> prompts_;
  std::vector<Choice> choices_;
};

}  // namespace

std::unique_ptr<StreamJob> start_completion_stream(ServingContext& ctx,
                                                   const CompletionRequest& req) {
  return std::make_unique<CompletionStreamJob>(ctx, req);
}

}  // namespace fc
