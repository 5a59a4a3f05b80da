#include "server/serving.h"

#include <condition_variable>
#include <mutex>
#include <random>

#include "chat/gemma4/normalize.h"
#include "chat/template_error.h"
#include "server/api_error.h"
#include "server/serving_internal.h"

namespace fc {

namespace serving_detail {

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

std::vector<Choice> submit_choices(ServingContext& ctx, const CommonRequest& req,
                                   const std::vector<int32_t>& ids, int max_tokens,
                                   const OutputOptions& oo, int first_index,
                                   const ConstraintPlan& plan,
                                   const std::vector<EngineMedia>* media) {
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
    install_constraint(plan, er);
    Choice c;
    c.index = first_index + i;
    c.keep_stop_token_text = req.include_stop_str_in_output;
    try {
      c.stream = ctx.engine.submit(std::move(er));
    } catch (const Error& e) {
      for (Choice& done : choices) ctx.engine.abort(done.stream->id());
      if (!ctx.engine.accepting()) throw ApiError(503, "the server is shutting down");
      throw ApiError::bad_request(e.what());
    }
    c.out = std::make_unique<OutputProcessor>(ctx.tok, oo);
    c.last_event = Clock::now();
    choices.push_back(std::move(c));
  }
  return choices;
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

void ChunkWriter::send(const SseSink& sink, json choices, const json* usage,
                       const json* prompt_token_ids) {
  json chunk = {{"id", id_},
                {"object", object_},
                {"created", created_},
                {"model", model_},
                {"choices", std::move(choices)}};
  if (usage) chunk["usage"] = *usage;
  if (prompt_token_ids) chunk["prompt_token_ids"] = *prompt_token_ids;
  if (client_ok_) client_ok_ = sink(chunk.dump(-1, ' ', false, json::error_handler_t::replace));
}

// ------------------------------------------------------------------ JobBase

JobBase::~JobBase() {
  abort_unfinished();
  for (Choice& c : choices_) c.stream->set_notify(nullptr);
}

void JobBase::add_choices(std::vector<Choice> cs) {
  for (Choice& c : cs) choices_.push_back(std::move(c));
  remaining_ = 0;
  for (const Choice& c : choices_) remaining_ += c.done ? 0 : 1;
}

void JobBase::on_output(std::function<void()> wake) {
  for (Choice& c : choices_) c.stream->set_notify(wake);
}

void JobBase::abort() {
  // Stream ids never change after construction, so this is safe next to a running pump().
  aborted_ = true;
  for (const Choice& c : choices_) ctx_.engine.abort(c.stream->id());
}

// A job that goes away with engine requests still running (the client left): they stop at the
// next engine step, and count as aborted (vLLM's request_success_total{finished_reason="abort"}).
void JobBase::abort_unfinished() {
  for (Choice& c : choices_) {
    if (c.done) continue;
    ctx_.engine.abort(c.stream->id());
    ctx_.metrics.count_finished("abort");
    c.done = true;
  }
}

bool JobBase::any_aborted() const {
  for (const Choice& c : choices_)
    if (c.finish_reason == "abort") return true;
  return false;
}

json JobBase::result() {
  throw ApiError(500, "internal error: result() of a streaming response");
}

bool JobBase::drive_pending(const OnStep& on_step) {
  for (Choice& c : choices_) {
    if (c.done) continue;
    std::optional<RequestEvent> ev = c.stream->next(0);  // all pending events, merged
    if (!ev) continue;
    const auto now = Clock::now();
    c.prompt_logprobs.insert(c.prompt_logprobs.end(), ev->prompt_logprobs.begin(),
                             ev->prompt_logprobs.end());
    if (!ev->tokens.empty()) {
      if (first_token_)
        ctx_.metrics.observe_ttft(std::chrono::duration<double>(now - start_).count());
      else
        ctx_.metrics.observe_itl(std::chrono::duration<double>(now - c.last_event).count());
      first_token_ = false;
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
      c.done = true;
      --remaining_;
      ctx_.metrics.count_finished("error");
      abort_unfinished();
      remaining_ = 0;
      throw ApiError(500, "engine error: " + ev->error);
    }
    const bool stop_token = ev->finished && ev->finish_reason == "stop" && !ev->tokens.empty();
    OutputStep step = c.out->push(ev->tokens, ev->logprobs, stop_token && !c.keep_stop_token_text);
    bool finished = ev->finished;
    if (step.stop_hit) {
      ctx_.engine.abort(c.stream->id());
      c.finish_reason = "stop";
      c.stop_reason = *step.stop_hit;
      finished = true;
    } else if (ev->finished) {
      c.finish_reason = ev->finish_reason;
      if (ev->finish_reason == "stop" && c.last_token >= 0 && c.last_token != ctx_.eos_ids.front())
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
      --remaining_;
      ctx_.metrics.count_finished(c.finish_reason);
    }
    on_step(c, step, finished);
  }
  if (remaining_ > 0) return false;
  if (!any_aborted() && !aborted_)
    ctx_.metrics.observe_e2e(std::chrono::duration<double>(Clock::now() - start_).count());
  return true;
}

}  // namespace serving_detail

using namespace serving_detail;

PreparedChat prepare_chat(ServingContext& ctx, const ChatRequest& req) {
  chat::gemma4::NormalizedMessages nm;
  try {
    nm = chat::gemma4::normalize_messages(req.messages);
  } catch (const chat::gemma4::InvalidRequest& e) {
    throw ApiError::bad_request(e.what(), e.param().empty() ? "messages" : e.param());
  }
  // Media parts: limits, fetch, decode, preprocess (before the template; placed after tokenizing).
  const std::vector<LoadedMedia> loaded =
      load_chat_media(ctx.media.get(), nm.media,
                      {req.mm_processor_kwargs, req.media_io_kwargs, req.prefetched_media});
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
  const bool tools_on = ctx.opts.enable_auto_tool_choice && !req.tools.is_null();
  if (req.tool_choice == "required" || req.tool_choice == "named") {
    if (!tools_on)
      throw ApiError::bad_request("tool_choice \"" + req.tool_choice +
                                      "\" needs the server started with --enable-auto-tool-choice "
                                      "--tool-call-parser gemma4",
                                  "tool_choice");
    // The calls themselves are constrained (structured_serving.h plan_chat_constraint).
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
json run_to_end(ResponseJob& job, const SseSink& sink) {
  std::mutex mu;
  std::condition_variable cv;
  bool pending = false;
  job.on_output([&] {
    std::lock_guard<std::mutex> lk(mu);
    pending = true;
    cv.notify_one();
  });
  const SseSink discard = [](const std::string&) { return true; };
  try {
    while (!job.pump(sink ? sink : discard)) {
      std::unique_lock<std::mutex> lk(mu);
      cv.wait_for(lk, std::chrono::milliseconds(100), [&] { return pending; });
      pending = false;
    }
  } catch (...) {
    job.on_output(nullptr);
    throw;
  }
  job.on_output(nullptr);
  return job.streaming() ? json(nullptr) : job.result();
}

}  // namespace fc
