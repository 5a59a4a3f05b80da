// Chat completions as event-driven jobs (serving.h): one JSON body, or SSE chunks.
#include "server/api_error.h"
#include "server/serving_internal.h"

namespace fc {
namespace {

using namespace serving_detail;

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

// vLLM refuses tools with tool_choice "auto" (the default when tools are given) unless the
// server parses tool calls (vllm/entrypoints/openai/serving_chat.py, create_chat_completion;
// the default comes from ChatCompletionRequest.check_tool_usage in protocol.py).
void check_tool_choice(const ServingContext& ctx, const ChatRequest& req) {
  const bool parser = ctx.opts.enable_auto_tool_choice && !ctx.opts.tool_call_parser.empty();
  if (req.tool_choice == "auto" && !req.tools.is_null() && !parser)
    throw ApiError::bad_request(
        "\"auto\" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set");
}

// Both kinds: prepared and submitted at construction.
class ChatJobBase : public JobBase {
 protected:
  ChatJobBase(ServingContext& ctx, const ChatRequest& req) : JobBase(ctx), req_(req) {
    check_tool_choice(ctx, req);
    p_ = prepare_chat(ctx, req);
    const int max_tokens = resolve_limits(ctx, req, p_.ids.size(), "messages");
    add_choices(submit_choices(ctx, req, p_.ids, max_tokens, chat_output_options(ctx, req, p_), 0,
                               plan_chat_constraint(ctx, req, p_.start_in_reasoning), &p_.media));
  }
  ChatRequest req_;
  PreparedChat p_;
};

class ChatJob final : public ChatJobBase {
 public:
  ChatJob(ServingContext& ctx, const ChatRequest& req) : ChatJobBase(ctx, req) {}
  bool streaming() const override { return false; }

  bool pump(const SseSink&) override {
    return drive_pending(
        [&](Choice& c, const OutputStep& s, bool) { accumulate(c, s, req_.parallel_tool_calls); });
  }

  json result() override {
    if (any_aborted())  // cut short (server shutdown): never a 200 with truncated output
      throw ApiError(503,
                     "the request was aborted before it finished: the server is shutting down");
    json out_choices = json::array();
    int completion = 0;
    for (Choice& c : choices_) {
      completion += c.tokens;
      json msg = {{"role", "assistant"},
                  {"content",
                   c.content.empty() && !c.tool_calls.empty() ? json(nullptr) : json(c.content)}};
      const bool show_reasoning = req_.include_reasoning && !c.reasoning.empty();
      msg["reasoning"] = show_reasoning ? json(c.reasoning) : json(nullptr);
      msg["reasoning_content"] = msg["reasoning"];
      if (!c.tool_calls.empty()) msg["tool_calls"] = c.tool_calls;
      out_choices.push_back(
          {{"index", c.index},
           {"message", msg},
           {"logprobs", req_.logprobs ? json{{"content", c.logprobs}} : json(nullptr)},
           {"finish_reason", c.finish_reason},
           {"stop_reason", c.stop_reason}});
    }
    json usage = usage_json(static_cast<int>(p_.ids.size()), completion);
    add_usage_details(ctx_, usage, choices_, req_.n);
    json resp = {{"id", random_id("chatcmpl-")},
                 {"object", "chat.completion"},
                 {"created", now_unix()},
                 {"model", req_.model.empty() ? ctx_.model_name : req_.model},
                 {"choices", out_choices},
                 {"usage", usage}};
    if (req_.prompt_logprobs >= 0)
      resp["prompt_logprobs"] =
          vllm_prompt_logprobs(ctx_.tok, p_.ids, choices_.front().prompt_logprobs);
    if (req_.return_token_ids) {
      resp["prompt_token_ids"] = p_.ids;
      for (size_t i = 0; i < choices_.size(); ++i)
        resp["choices"][i]["token_ids"] = choices_[i].token_ids;
    }
    return resp;
  }
};

class ChatStreamJob final : public ChatJobBase {
 public:
  ChatStreamJob(ServingContext& ctx, const ChatRequest& req)
      : ChatJobBase(ctx, req),
        chunks_("chatcmpl-", "chat.completion.chunk",
                req.model.empty() ? ctx.model_name : req.model) {}
  bool streaming() const override { return true; }

  bool pump(const SseSink& sink) override {
    const int prompt_tokens = static_cast<int>(p_.ids.size());
    auto send = [&](json choices, const json* usage) {
      chunks_.send(sink, std::move(choices), usage);
    };
    if (!started_) {
      started_ = true;
      ids_sent_.assign(choices_.size(), 0);
      // return_token_ids (vLLM): the prompt's ids with the first chunk, each step's ids per chunk.
      const json prompt_ids = req_.return_token_ids ? json(p_.ids) : json();
      for (const Choice& c : choices_)
        chunks_.send(sink,
                     json::array({{{"index", c.index},
                                   {"delta", {{"role", "assistant"}, {"content", ""}}},
                                   {"logprobs", nullptr},
                                   {"finish_reason", nullptr}}}),
                     nullptr, req_.return_token_ids ? &prompt_ids : nullptr);
    }
    const bool finished = drive_pending([&](Choice& c, const OutputStep& s, bool done) {
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
      size_t& sent = ids_sent_[static_cast<size_t>(&c - choices_.data())];
      const bool has_ids = req_.return_token_ids && c.token_ids.size() > sent;
      if (!(delta.is_object() && !delta.empty()) && !has_lp && !has_ids && !done) return;
      json ch = {{"index", c.index},
                 {"delta", delta.is_object() ? delta : json::object()},
                 {"logprobs", has_lp ? json{{"content", s.logprobs}} : json(nullptr)},
                 {"finish_reason", done ? json(c.finish_reason) : json(nullptr)}};
      if (done) ch["stop_reason"] = c.stop_reason;
      if (req_.return_token_ids) {
        ch["token_ids"] =
            std::vector<int32_t>(c.token_ids.begin() + static_cast<long>(sent), c.token_ids.end());
        sent = c.token_ids.size();
      }
      int so_far = 0;
      for (const Choice& x : choices_) so_far += x.tokens;
      json u = usage_json(prompt_tokens, so_far);
      send(json::array({ch}), req_.continuous_usage_stats ? &u : nullptr);
    });
    if (!chunks_.client_ok()) {
      abort();
      return true;
    }
    if (!finished) return false;
    if (req_.include_usage) {
      int completion = 0;
      for (const Choice& c : choices_) completion += c.tokens;
      json u = usage_json(prompt_tokens, completion);
      add_usage_details(ctx_, u, choices_, req_.n);
      send(json::array(), &u);
    }
    return true;
  }

 private:
  ChunkWriter chunks_;
  bool started_ = false;
  std::vector<size_t> ids_sent_;  // per choice: token ids already sent (return_token_ids)
};

}  // namespace

std::unique_ptr<ResponseJob> start_chat(ServingContext& ctx, const ChatRequest& req) {
  if (req.stream) return std::make_unique<ChatStreamJob>(ctx, req);
  return std::make_unique<ChatJob>(ctx, req);
}

}  // namespace fc
