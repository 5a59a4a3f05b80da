// Completions as event-driven jobs (serving.h): one JSON body, or SSE chunks. Every prompt's
// choices are submitted at once (index = prompt * n + choice).
#include "server/api_error.h"
#include "server/serving_internal.h"

namespace fc {
namespace {

using namespace serving_detail;

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

class CompletionJobBase : public JobBase {
 protected:
  CompletionJobBase(ServingContext& ctx, const CompletionRequest& req)
      : JobBase(ctx), req_(req), prompts_(completion_prompts(ctx, req)) {
    // Every prompt's limits first, so a refusal leaves nothing submitted.
    std::vector<int> max_tokens;
    for (const auto& p : prompts_)
      max_tokens.push_back(resolve_limits(ctx, req, p.size(), "prompt"));
    // Compiled (or taken from the cache) before anything is submitted.
    const ConstraintPlan plan = plan_completion_constraint(ctx, req);
    std::vector<Choice> all;
    try {
      for (size_t pi = 0; pi < prompts_.size(); ++pi) {
        std::vector<Choice> cs =
            submit_choices(ctx, req, prompts_[pi], max_tokens[pi], completion_output_options(req),
                           static_cast<int>(pi) * req.n, plan);
        for (Choice& c : cs) all.push_back(std::move(c));
      }
    } catch (...) {
      for (Choice& c : all) ctx.engine.abort(c.stream->id());
      throw;
    }
    add_choices(std::move(all));
  }
  size_t prompt_of(const Choice& c) const { return static_cast<size_t>(c.index / req_.n); }

  CompletionRequest req_;
  std::vector<std::vector<int32_t>> prompts_;
};

class CompletionJob final : public CompletionJobBase {
 public:
  CompletionJob(ServingContext& ctx, const CompletionRequest& req) : CompletionJobBase(ctx, req) {}
  bool streaming() const override { return false; }

  bool pump(const SseSink&) override {
    return drive_pending([&](Choice& c, const OutputStep& s, bool) { accumulate(c, s, true); });
  }

  json result() override {
    if (any_aborted())  // cut short (server shutdown): never a 200 with truncated output
      throw ApiError(503,
                     "the request was aborted before it finished: the server is shutting down");
    json out_choices = json::array();
    int prompt_tokens = 0, completion = 0;
    for (const auto& p : prompts_) prompt_tokens += static_cast<int>(p.size());
    for (Choice& c : choices_) {
      const size_t pi = prompt_of(c);
      const std::string echo = !req_.echo ? ""
                               : req_.prompts[pi].text
                                   ? *req_.prompts[pi].text
                                   : ctx_.tok.decode(prompts_[pi], req_.skip_special_tokens);
      completion += c.tokens;
      json lp = nullptr;
      if (req_.echo && req_.logprobs && req_.prompt_logprobs >= 0) {
        // The prompt's tokens first, offsets over the token texts from 0, as vLLM builds them.
        json entries = echo_logprob_entries(ctx_.tok, prompts_[pi], c.prompt_logprobs);
        for (const json& e : c.logprobs) entries.push_back(e);
        lp = completion_logprobs(entries, 0);
      } else if (req_.logprobs) {
        lp = completion_logprobs(c.logprobs, echo.size());
      }
      out_choices.push_back({{"index", c.index},
                             {"text", echo + c.content},
                             {"logprobs", lp},
                             {"finish_reason", c.finish_reason},
                             {"stop_reason", c.stop_reason}});
      if (req_.prompt_logprobs >= 0)
        out_choices.back()["prompt_logprobs"] =
            vllm_prompt_logprobs(ctx_.tok, prompts_[pi], c.prompt_logprobs);
      if (req_.return_token_ids) {
        out_choices.back()["prompt_token_ids"] = prompts_[pi];
        out_choices.back()["token_ids"] = c.token_ids;
      }
    }
    json usage = usage_json(prompt_tokens, completion);
    add_usage_details(ctx_, usage, choices_, req_.n);
    return {
        {"id", random_id("cmpl-")}, {"object", "text_completion"},
        {"created", now_unix()},    {"model", req_.model.empty() ? ctx_.model_name : req_.model},
        {"choices", out_choices},   {"usage", usage}};
  }
};

class CompletionStreamJob final : public CompletionJobBase {
 public:
  CompletionStreamJob(ServingContext& ctx, const CompletionRequest& req)
      : CompletionJobBase(ctx, req),
        chunks_("cmpl-", "text_completion", req.model.empty() ? ctx.model_name : req.model),
        echoed_(choices_.size(), !req.echo) {}
  bool streaming() const override { return true; }

  bool pump(const SseSink& sink) override {
    auto send = [&](json choices, const json* usage) {
      chunks_.send(sink, std::move(choices), usage);
    };
    auto echo_chunk = [&](const Choice& c) {
      const size_t pi = prompt_of(c);
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
    if (!started_) {
      started_ = true;
      if (req_.echo && !echo_later) {
        for (const Choice& c : choices_) echo_chunk(c);
        echoed_.assign(choices_.size(), true);
      }
    }
    const bool finished = drive_pending([&](Choice& c, const OutputStep& s, bool done) {
      const size_t ci = static_cast<size_t>(&c - choices_.data());
      if (!echoed_[ci]) {
        if (!done && c.prompt_logprobs.size() + 1 < prompts_[prompt_of(c)].size()) return;
        echo_chunk(c);
        echoed_[ci] = true;
      }
      if (s.delta.content.empty() && !done && s.logprobs.empty()) return;
      json ch = {{"index", c.index},
                 {"text", s.delta.content},
                 {"logprobs", req_.logprobs ? completion_logprobs(s.logprobs) : json(nullptr)},
                 {"finish_reason", done ? json(c.finish_reason) : json(nullptr)}};
      if (done) ch["stop_reason"] = c.stop_reason;
      send(json::array({ch}), nullptr);
    });
    if (!chunks_.client_ok()) {
      abort();
      return true;
    }
    if (!finished) return false;
    int prompt_tokens = 0, completion = 0;
    for (const auto& p : prompts_) prompt_tokens += static_cast<int>(p.size());
    for (const Choice& c : choices_) completion += c.tokens;
    if (req_.include_usage) {
      json u = usage_json(prompt_tokens, completion);
      add_usage_details(ctx_, u, choices_, req_.n);
      send(json::array(), &u);
    }
    return true;
  }

 private:
  ChunkWriter chunks_;
  std::vector<bool> echoed_;
  bool started_ = false;
};

}  // namespace

std::unique_ptr<ResponseJob> start_completion(ServingContext& ctx, const CompletionRequest& req) {
  if (req.stream) return std::make_unique<CompletionStreamJob>(ctx, req);
  return std::make_unique<CompletionJob>(ctx, req);
}

}  // namespace fc
